"""FilterSets shared by the Connections page and the connectors API."""

import django_filters

from connectors.models import InboundDelivery, InboxState


class InboundDeliveryFilter(django_filters.FilterSet):
    state = django_filters.ChoiceFilter(choices=InboxState.choices)
    endpoint = django_filters.UUIDFilter(field_name="endpoint__public_id", label="Endpoint id")
    q = django_filters.CharFilter(
        field_name="vendor_delivery_id", lookup_expr="icontains", label="Vendor delivery id"
    )

    class Meta:
        model = InboundDelivery
        fields = ["state", "endpoint", "q"]
