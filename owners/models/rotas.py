"""Rotas: the people behind a role, in layers of shifts, with overrides."""

from datetime import time

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from simple_history.models import HistoricalRecords

from meshline.models import TenantModel, validate_timezone
from owners.models.roles import OwnerRole


class Frequency(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"


class Rota(TenantModel):
    """Who holds a role over time: layers of rotations plus overrides, in one time zone."""

    role = models.OneToOneField(OwnerRole, on_delete=models.CASCADE, related_name="rota")
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    # Handoffs up to here are in the trail (owners.services.rotas.record_handoffs).
    handoffs_recorded_until = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"Rota for {self.role}"


class RotaLayer(TenantModel):
    rota = models.ForeignKey(Rota, on_delete=models.CASCADE, related_name="layers", db_index=False)
    name = models.CharField(max_length=100)
    priority = models.IntegerField(default=1, help_text="Higher wins where layers overlap.")
    frequency = models.CharField(max_length=10, choices=Frequency.choices, default=Frequency.WEEKLY)
    interval = models.PositiveSmallIntegerField(default=1)
    handoff_time = models.TimeField(default=time(9))
    start_date = models.DateField(help_text="Local date of the first handoff.")
    until = models.DateField(null=True, blank=True)
    people = models.JSONField(
        default=list, help_text="User ids in rotation order: shift k goes to people[k % n]."
    )
    windows = models.JSONField(
        default=list,
        blank=True,
        help_text='Optional: [{"weekdays": [0,1,2,3,4], "start": "09:00", "end": "18:00"}].',
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["-priority", "pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_frequency_display()})"

    def clean(self) -> None:
        from owners.rota_schedule import validate_layer
        from owners.services.schedules import layer_spec

        try:
            problems = validate_layer(layer_spec(self))
        except (KeyError, TypeError, ValueError) as exc:
            problems = [f"Invalid windows: {exc}"]
        if problems:
            raise ValidationError(problems)
        # Someone outside the organization on its rota would be sent its tickets.
        organization_id = self.organization_id or (
            self.rota.organization_id if self.rota_id else None
        )
        if organization_id is not None:
            from meshline.models import Membership

            members = set(
                Membership.objects.filter(organization=organization_id).values_list(
                    "user_id", flat=True
                )
            )
            strangers = [person for person in self.people if person not in members]
            if strangers:
                raise ValidationError({"people": f"Not members of this organization: {strangers}."})


class RotaOverride(TenantModel):
    rota = models.ForeignKey(
        Rota, on_delete=models.CASCADE, related_name="overrides", db_index=False
    )
    person = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )

    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["start"]

    def __str__(self) -> str:
        return f"{self.person} {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        if self.start and self.end and self.end <= self.start:
            raise ValidationError({"end": "The override must end after it starts."})
