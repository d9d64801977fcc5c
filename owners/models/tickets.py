"""Tickets: work opened by a source, owned by a role, escalated until resolved."""

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import models
from django.db.models import Q

from deliveries.models import Deliverable
from meshline.ids import uuid7
from meshline.models import TenantModel
from owners.models.calendars import BusinessCalendar
from owners.models.roles import OwnerRole


class TicketSource(models.TextChoices):
    GATE_FAILURE = "gate_failure", "Gate failure"
    CHANGE_REQUEST = "change_request", "Change request"
    INCIDENT = "incident", "Incident"
    TRIAGE = "triage", "Gate triage"
    ATTRIBUTION = "attribution", "Attribution forensics"
    BILLING = "billing", "Billing exception"
    FLOW = "flow", "Flow breach or exception"
    ASSURANCE = "assurance", "Weekly assurance check missed"
    MANUAL = "manual", "Manual"


class TicketStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (TicketStatus.OPEN, TicketStatus.ACKNOWLEDGED)


def overdue_q(now) -> Q:
    """Active tickets past a deadline: respond-by while still open, resolve-by while active.
    The one definition the board filter and the dashboard count by."""
    return Q(status__in=ACTIVE_STATUSES) & (
        Q(status=TicketStatus.OPEN, respond_due_at__lt=now) | Q(resolve_due_at__lt=now)
    )


class Priority(models.TextChoices):
    P1 = "p1", "P1 (urgent)"
    P2 = "p2", "P2 (high)"
    P3 = "p3", "P3 (normal)"
    P4 = "p4", "P4 (low)"


class Ticket(TenantModel):
    """A unit of owned work. Opened once per source key; every change is in the trail."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    source = models.CharField(max_length=20, choices=TicketSource.choices)
    source_key = models.CharField(max_length=200)
    title = models.CharField(max_length=300)
    deliverable = models.ForeignKey(
        Deliverable,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="tickets",
        db_index=False,
    )
    priority = models.CharField(max_length=2, choices=Priority.choices, default=Priority.P3)
    status = models.CharField(
        max_length=20, choices=TicketStatus.choices, default=TicketStatus.OPEN
    )
    owner_role = models.ForeignKey(
        OwnerRole, on_delete=models.PROTECT, related_name="tickets", db_index=False
    )
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    calendar = models.ForeignKey(
        BusinessCalendar,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    rule_snapshot = models.JSONField(default=dict, blank=True)
    policy_snapshot = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    opened_at = models.DateTimeField()
    respond_due_at = models.DateTimeField(null=True, blank=True)
    resolve_due_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_note = models.TextField(blank=True)
    # How many escalation steps have run, and when the next one is due (None: none left).
    escalation_level = models.PositiveIntegerField(default=0)
    next_escalation_at = models.DateTimeField(null=True, blank=True)
    # Manual handoffs: how often a person reassigned it (flows count them per flow). A
    # database default too, so rows written by COPY or an older release get 0.
    reassignments = models.PositiveIntegerField(default=0, db_default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "source", "source_key"], name="ticket_source_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["organization", "next_escalation_at"],
                condition=Q(status__in=list(ACTIVE_STATUSES), next_escalation_at__isnull=False),
                name="ticket_escalation_due",
            ),
            models.Index(fields=["organization", "status", "owner_role"], name="ticket_board"),
            models.Index(fields=["organization", "deliverable"], name="ticket_deliverable"),
            # "My tickets" (the portal's assignee view and ?assignee=).
            models.Index(fields=["organization", "assignee"], name="ticket_assignee"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def opened_by(self) -> dict | None:
        """Public ids of what opened this ticket, from the app whose link row names it."""
        from meshline.extensions import ticket_sources

        for source in ticket_sources:
            try:
                return source.describe(getattr(self, source.relation))
            except ObjectDoesNotExist:
                continue
        return None

    @staticmethod
    def source_relations() -> list[str]:
        """select_related paths that make ``opened_by()`` free for a list of tickets."""
        from meshline.extensions import ticket_sources

        return [path for source in ticket_sources for path in source.select]
