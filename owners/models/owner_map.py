"""The owner map: which role owns a deliverable, by client, tier, type and event."""

from django.db import models
from simple_history.models import HistoricalRecords

from deliveries.models import DeliverableType, Tier
from meshline.models import TenantModel
from owners.models.escalation import EscalationPolicy
from owners.models.roles import OwnerRole


class OwnerRule(TenantModel):
    """(event type, client tier, deliverable type) → owner role, SLOs and escalation policy.

    Blank keys match anything. The most specific matching rule wins (most keys set); among
    equally specific rules the lowest ``position`` wins, then the lowest id.
    """

    event_type = models.CharField(max_length=64, blank=True, help_text="Blank: any event type.")
    client_tier = models.CharField(
        max_length=20, choices=Tier.choices, blank=True, help_text="Blank: any tier."
    )
    deliverable_type = models.CharField(
        max_length=20, choices=DeliverableType.choices, blank=True, help_text="Blank: any type."
    )
    owner_role = models.ForeignKey(
        OwnerRole, on_delete=models.PROTECT, related_name="rules", db_index=False
    )
    backup_role = models.ForeignKey(
        OwnerRole,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="backup_rules",
        db_index=False,
    )
    respond_minutes = models.PositiveIntegerField(default=60)
    resolve_minutes = models.PositiveIntegerField(default=8 * 60)
    escalation_policy = models.ForeignKey(
        EscalationPolicy,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="rules",
        db_index=False,
    )

    position = models.PositiveIntegerField(default=100, help_text="Tie-break: lower wins.")
    is_active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        keys = [
            self.event_type or "any event",
            self.client_tier or "any tier",
            self.deliverable_type or "any type",
        ]
        return f"{' / '.join(keys)} → {self.owner_role}"

    @property
    def specificity(self) -> int:
        return sum(bool(key) for key in (self.event_type, self.client_tier, self.deliverable_type))

    def matches(self, event_type: str, client_tier: str, deliverable_type: str) -> bool:
        return (
            (not self.event_type or self.event_type == event_type)
            and (not self.client_tier or self.client_tier == client_tier)
            and (not self.deliverable_type or self.deliverable_type == deliverable_type)
        )

    def sort_key(self) -> tuple:
        return (-self.specificity, self.position, self.pk)

    def snapshot(self) -> dict:
        return {
            "id": self.pk,
            "event_type": self.event_type,
            "client_tier": self.client_tier,
            "deliverable_type": self.deliverable_type,
            "owner_role": self.owner_role_id,
            "owner_role_name": self.owner_role.name,
            "backup_role": self.backup_role_id,
            "respond_minutes": self.respond_minutes,
            "resolve_minutes": self.resolve_minutes,
            "escalation_policy": self.escalation_policy_id,
            "position": self.position,
        }
