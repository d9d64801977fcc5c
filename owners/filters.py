"""FilterSets shared by the portal's ticket pages and the tickets API."""

import django_filters
from django import forms
from django.utils import timezone

from owners.models import Priority, Ticket, TicketSource, TicketStatus, overdue_q


class TicketFilter(django_filters.FilterSet):
    status = django_filters.MultipleChoiceFilter(choices=TicketStatus.choices)
    priority = django_filters.ChoiceFilter(choices=Priority.choices)
    source = django_filters.ChoiceFilter(choices=TicketSource.choices)
    role = django_filters.CharFilter(field_name="owner_role__slug", label="Owner role")
    assignee = django_filters.CharFilter(field_name="assignee__email", label="Assignee email")
    deliverable = django_filters.CharFilter(
        field_name="deliverable__deliverable_id", label="Deliverable"
    )
    client = django_filters.CharFilter(field_name="deliverable__client__client_id", label="Client")
    overdue = django_filters.BooleanFilter(
        method="filter_overdue",
        label="Overdue",
        widget=forms.Select(choices=[("", "Any"), ("true", "Overdue"), ("false", "On time")]),
    )

    class Meta:
        model = Ticket
        fields = ["status", "priority", "source", "role", "assignee", "deliverable", "client"]

    def filter_overdue(self, queryset, name, value):
        overdue = overdue_q(timezone.now())
        return queryset.filter(overdue) if value else queryset.exclude(overdue)
