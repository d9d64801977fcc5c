"""FilterSets shared by the portal list pages and the API."""

import django_filters
from django import forms
from django.db.models import Q

from deliveries.models import (
    Client,
    Deliverable,
    DeliverableType,
    Event,
    EventSource,
    LifecycleState,
    ProcessingStatus,
    Tier,
)

# Portal pages offer the organization's clients as suggestions
# (templates/partials/client_options.html renders the datalist).
CLIENT_INPUT = forms.TextInput(attrs={"list": "client-options"})


class DeliverableFilter(django_filters.FilterSet):
    client = django_filters.CharFilter(
        field_name="client__client_id", label="Client", widget=CLIENT_INPUT
    )
    type = django_filters.ChoiceFilter(choices=DeliverableType.choices)
    state = django_filters.ChoiceFilter(choices=LifecycleState.choices)
    q = django_filters.CharFilter(method="search", label="Search")

    class Meta:
        model = Deliverable
        fields = ["client", "type", "state", "q"]

    def search(self, queryset, name, value):
        return queryset.filter(Q(deliverable_id__icontains=value) | Q(title__icontains=value))


class EventFilter(django_filters.FilterSet):
    event_type = django_filters.CharFilter()
    deliverable = django_filters.CharFilter(field_name="deliverable__deliverable_id")
    client = django_filters.CharFilter(field_name="client__client_id", widget=CLIENT_INPUT)
    occurred_after = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = django_filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")
    received_after = django_filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="gte")
    received_before = django_filters.IsoDateTimeFilter(field_name="received_at", lookup_expr="lt")
    processing = django_filters.ChoiceFilter(
        field_name="processing__status", choices=ProcessingStatus.choices, label="Processing"
    )
    # Repeatable: ?source=api&source=webhook is what was submitted, Meshline's own left out.
    source = django_filters.MultipleChoiceFilter(choices=EventSource.choices, label="Source")

    class Meta:
        model = Event
        fields = ["event_type", "deliverable", "client"]


class ClientFilter(django_filters.FilterSet):
    tier = django_filters.ChoiceFilter(choices=Tier.choices)

    class Meta:
        model = Client
        fields = ["tier"]
