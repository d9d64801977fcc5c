"""Escalation policies and their steps: who is told, how, after how long."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from simple_history.models import HistoricalRecords

from meshline.models import TenantModel
from owners.models.roles import OwnerRole


class WaitKind(models.TextChoices):
    BUSINESS = "business", "Business minutes"
    WALL = "wall", "Wall-clock minutes"


class StepAction(models.TextChoices):
    NOTIFY_PRIMARY = "notify_primary", "Notify the on-duty primary"
    NOTIFY_BACKUP = "notify_backup", "Notify the on-duty backup"
    NOTIFY_ROLE = "notify_role", "Notify another role's on-duty person"
    NOTIFY_PEOPLE = "notify_people", "Notify named people"
    WEBHOOK = "webhook", "Call a webhook"


class EscalationPolicy(TenantModel):
    """Ordered steps taken while a ticket waits; the steps repeat ``repeat`` more times."""

    name = models.CharField(max_length=100)
    repeat = models.PositiveSmallIntegerField(
        default=0, help_text="How many more times to run the steps after the first pass."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "escalation policies"

    def __str__(self) -> str:
        return self.name

    def snapshot(self) -> dict:
        """The policy as it stands, frozen into each ticket that opens under it."""
        return {
            "id": self.pk,
            "name": self.name,
            "repeat": self.repeat,
            # One query for every step's people, not one per step (this runs in open_ticket).
            "steps": [step.snapshot() for step in self.steps.prefetch_related("people")],
        }


class EscalationStep(TenantModel):
    policy = models.ForeignKey(
        EscalationPolicy, on_delete=models.CASCADE, related_name="steps", db_index=False
    )
    position = models.PositiveSmallIntegerField(default=0)
    wait_minutes = models.PositiveIntegerField(
        default=30, help_text="Wait this long (after opening or the previous step) before acting."
    )
    wait_kind = models.CharField(max_length=10, choices=WaitKind.choices, default=WaitKind.BUSINESS)
    action = models.CharField(max_length=20, choices=StepAction.choices)
    target_role = models.ForeignKey(
        OwnerRole, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    people = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    webhook = models.ForeignKey(
        "owners.WebhookEndpoint",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )

    history = HistoricalRecords(m2m_fields=[people])

    class Meta:
        ordering = ["policy", "position", "pk"]

    def __str__(self) -> str:
        return f"{self.position}: {self.get_action_display()} after {self.wait_minutes} min"

    def clean(self) -> None:
        if self.action == StepAction.NOTIFY_ROLE and self.target_role_id is None:
            raise ValidationError(
                {"target_role": "Choose the role whose on-duty person to notify."}
            )
        if self.action == StepAction.WEBHOOK and self.webhook_id is None:
            raise ValidationError({"webhook": "Choose the webhook to call."})

    def snapshot(self) -> dict:
        return {
            "position": self.position,
            "wait_minutes": self.wait_minutes,
            "wait_kind": self.wait_kind,
            "action": self.action,
            "target_role": self.target_role_id,
            "people": sorted(person.pk for person in self.people.all()),
            "webhook": self.webhook_id,
        }
