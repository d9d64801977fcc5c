"""Periodic reviews and the weekly assurance check (the first source document's "periodic
reviews" and role-holders confirming the SLA status of what they own)."""

from django.conf import settings
from django.db import models

from meshline.ids import uuid7
from meshline.models import TenantModel
from owners.models import OwnerRole, Ticket


class ReviewKind(models.TextChoices):
    FLOW = "flow", "Flow"
    GATE = "gate", "Gate"
    OWNER_RULE = "owner_rule", "Owner rule"


class Review(TenantModel):
    """When a flow, gate or owner rule was last reviewed by its owner, and when it is due
    again. Created for every active row by the daily review sweep; overdue ones show on the
    owner role's people's queue until one of them marks it reviewed."""

    DEFAULT_INTERVAL_DAYS = 90

    kind = models.CharField(max_length=20, choices=ReviewKind.choices)
    target_id = models.PositiveBigIntegerField()
    target_label = models.CharField(max_length=200)
    owner_role = models.ForeignKey(
        OwnerRole,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        help_text="Who reviews it: the flow's owner, the rule's role, the gate's owner.",
    )
    interval_days = models.PositiveIntegerField(default=DEFAULT_INTERVAL_DAYS)
    due_at = models.DateTimeField()
    last_reviewed_at = models.DateTimeField(null=True, blank=True)
    last_reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    last_note = models.TextField(blank=True)
    overdue_told_for = models.DateTimeField(
        null=True, blank=True, help_text="The due time its owner was last told is past."
    )

    class Meta:
        ordering = ["due_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "kind", "target_id"], name="review_once_per_target"
            )
        ]
        indexes = [models.Index(fields=["organization", "due_at"], name="review_due")]

    def __str__(self) -> str:
        return f"Review of {self.get_kind_display().lower()} {self.target_label}"

    def is_overdue(self, now) -> bool:
        return self.due_at <= now


class AssuranceCheck(TenantModel):
    """One person's confirmation, for one week, of the SLA status of their open tickets.

    ``items`` is the list as it was shown when the week's check opened (ticket id, title,
    SLA status, deadline) with each item's ``confirmed_at``; ``confirmed_at`` is set when the
    last item is. Past ``due_at`` unconfirmed, it escalates: one ticket through the owner
    map (event type ``governance.assurance_missed``), resolved by itself when the person
    confirms.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    week = models.DateField(help_text="The Monday of the ISO week it covers.")
    requested_at = models.DateTimeField()
    due_at = models.DateTimeField()
    items = models.JSONField(default=list)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    escalated_at = models.DateTimeField(null=True, blank=True)
    ticket = models.OneToOneField(
        Ticket,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="assurance_check",
    )
    ticket_error = models.TextField(blank=True, help_text="Why the escalation has no ticket.")

    class Meta:
        ordering = ["-week"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "person", "week"], name="assurance_once_a_week"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "confirmed_at", "due_at"], name="assurance_due")
        ]

    def __str__(self) -> str:
        return f"Assurance check of week {self.week:%G-W%V}"

    @property
    def pending_items(self) -> list[dict]:
        return [item for item in self.items if not item.get("confirmed_at")]

    def public_ids(self) -> dict:
        """For the tickets API's ``opened_by``."""
        return {
            "kind": "assurance_check",
            "check_id": str(self.pk),
            "week": self.week.isoformat(),
        }
