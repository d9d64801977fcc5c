"""FilterSets shared by the portal list pages and the API."""

from datetime import datetime

import django_filters
from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Q
from django_filters.fields import IsoDateTimeField

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
from meshline.instants import RANGE_MESSAGE, instant_problem

# Portal pages offer the organization's clients as suggestions
# (templates/partials/client_options.html renders the datalist).
CLIENT_INPUT = forms.TextInput(attrs={"list": "client-options"})


class InstantField(IsoDateTimeField):
    """An ISO 8601 date-time within what Meshline stores (meshline.instants): a form error
    (a 400 in the API) instead of a database error or an OverflowError."""

    def to_python(self, value):
        try:
            result = super().to_python(value)
        except OverflowError:
            raise ValidationError(RANGE_MESSAGE, code="out_of_range") from None
        if isinstance(result, datetime):
            problem = instant_problem(result)
            if problem is not None:
                code, message = problem
                raise ValidationError(message, code=code)
        return result


class InstantFilter(django_filters.IsoDateTimeFilter):
    field_class = InstantField


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
    # Exact match, served by the event_correlation index (organization first).
    correlation_id = django_filters.CharFilter(max_length=100, label="Correlation id")
    occurred_after = InstantFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = InstantFilter(field_name="occurred_at", lookup_expr="lt")
    received_after = InstantFilter(field_name="received_at", lookup_expr="gte")
    received_before = InstantFilter(field_name="received_at", lookup_expr="lt")
    processing = django_filters.ChoiceFilter(
        field_name="processing__status", choices=ProcessingStatus.choices, label="Processing"
    )
    # Repeatable: ?source=api&source=webhook is what was submitted, Meshline's own left out.
    source = django_filters.MultipleChoiceFilter(choices=EventSource.choices, label="Source")

    class Meta:
        model = Event
        fields = ["event_type", "deliverable", "client", "correlation_id"]


class ClientFilter(django_filters.FilterSet):
    tier = django_filters.ChoiceFilter(choices=Tier.choices)

    class Meta:
        model = Client
        fields = ["tier"]
