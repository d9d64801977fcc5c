"""FilterSets shared by the billing portal pages and the API."""

import django_filters

from billing.models import (
    BillableItem,
    Dispute,
    DisputeStatus,
    Invoice,
    InvoiceStatus,
    ItemStatus,
    ScopeAgreement,
)


class ItemFilter(django_filters.FilterSet):
    client = django_filters.CharFilter(field_name="client__client_id", label="Client")
    deliverable = django_filters.CharFilter(
        field_name="deliverable__deliverable_id", label="Deliverable"
    )
    status = django_filters.ChoiceFilter(choices=ItemStatus.choices)

    class Meta:
        model = BillableItem
        fields = ["client", "deliverable", "status"]


class AgreementFilter(django_filters.FilterSet):
    client = django_filters.CharFilter(field_name="client__client_id")
    deliverable = django_filters.CharFilter(field_name="deliverable__deliverable_id")

    class Meta:
        model = ScopeAgreement
        fields = ["client", "deliverable"]


class InvoiceFilter(django_filters.FilterSet):
    client = django_filters.CharFilter(field_name="client__client_id")
    status = django_filters.ChoiceFilter(choices=InvoiceStatus.choices)

    class Meta:
        model = Invoice
        fields = ["client", "status"]


class DisputeFilter(django_filters.FilterSet):
    client = django_filters.CharFilter(field_name="client__client_id")
    status = django_filters.ChoiceFilter(choices=DisputeStatus.choices)

    class Meta:
        model = Dispute
        fields = ["client", "status"]
