"""FilterSets shared by the portal's flow pages and the flows API."""

import django_filters
from django import forms

from flows.models import Change, ChangeKind, ChangeStatus, FlowRun, FlowTicketLink, RunState


class FlowRunFilter(django_filters.FilterSet):
    flow = django_filters.CharFilter(field_name="flow__slug", label="Flow")
    client = django_filters.CharFilter(field_name="client__client_id", label="Client")
    deliverable = django_filters.CharFilter(
        field_name="deliverable__deliverable_id", label="Deliverable"
    )
    state = django_filters.MultipleChoiceFilter(choices=RunState.choices)
    breached = django_filters.BooleanFilter(
        field_name="breached_at",
        lookup_expr="isnull",
        exclude=True,
        label="Breached",
        widget=forms.Select(choices=[("", "Any"), ("true", "Breached"), ("false", "Not breached")]),
    )
    reached = django_filters.CharFilter(
        field_name="reached", lookup_expr="has_key", label="Reached (event type)"
    )
    handed_off = django_filters.BooleanFilter(
        method="filter_handed_off",
        label="Handed off",
        widget=forms.Select(
            choices=[("", "Any"), ("true", "Reassigned by hand"), ("false", "Never reassigned")]
        ),
    )

    class Meta:
        model = FlowRun
        fields = ["flow", "client", "deliverable", "state", "breached", "reached", "handed_off"]

    def filter_handed_off(self, queryset, name, value):
        """Runs whose tickets someone reassigned (manual handoffs), or none of them."""
        if value is None:
            return queryset
        handed = FlowTicketLink.objects.filter(ticket__reassignments__gt=0).values("run_id")
        return queryset.filter(pk__in=handed) if value else queryset.exclude(pk__in=handed)


class ChangeFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=ChangeStatus.choices)
    kind = django_filters.ChoiceFilter(choices=ChangeKind.choices)

    class Meta:
        model = Change
        fields = ["status", "kind"]
