"""Backlog incidents: processing fell behind for one organization (the seeds' "lost event")."""

from django.db import models
from django.db.models import Q

from meshline.ids import uuid7
from meshline.models import TenantModel
from owners.models.tickets import Ticket


class BacklogIncident(TenantModel):
    """One stretch of time an organization's processing backlog was past a limit.

    Opened by the backlog check when the oldest pending event has waited longer than the
    lag limit or too many events are pending, closed by the check once both are back under;
    at most one is open per organization (the database refuses a second). It is its ticket's
    link row (``ticket_sources`` "owners.backlog"); with no owner rule for the event type
    ``processing.lagging`` it stays open without a ticket and says why in ``ticket_error``.
    """

    # Its ticket's event type in the owner map: route it to the operator role.
    EVENT_TYPE = "processing.lagging"

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    ticket = models.OneToOneField(
        Ticket,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="backlog_incident",
    )
    opened_at = models.DateTimeField(help_text="The measurement that found a limit passed.")
    closed_at = models.DateTimeField(
        null=True, blank=True, help_text="The measurement that found both limits met again."
    )
    # The limits in force when it opened (the ticket's reasons quote them).
    lag_limit_seconds = models.PositiveIntegerField()
    depth_limit = models.PositiveIntegerField()
    # The latest measurement, and the worst one while open.
    measured_at = models.DateTimeField()
    pending = models.PositiveIntegerField()
    lag_seconds = models.PositiveIntegerField()
    peak_pending = models.PositiveIntegerField()
    peak_lag_seconds = models.PositiveIntegerField()
    ticket_error = models.TextField(blank=True, help_text="Why there is no ticket (yet).")

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=Q(closed_at__isnull=True),
                name="backlog_incident_one_open",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "-opened_at"], name="backlog_incident_recent")
        ]

    def __str__(self) -> str:
        state = "open" if self.is_open else "closed"
        return f"Backlog incident opened {self.opened_at:%Y-%m-%d %H:%M} ({state})"

    @property
    def is_open(self) -> bool:
        return self.closed_at is None

    def public_ids(self) -> dict:
        """For the tickets API's ``opened_by``: its UUID and times, never integer keys."""
        return {
            "kind": "backlog_incident",
            "incident_id": str(self.pk),
            "opened_at": self.opened_at.isoformat(),
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
        }
