"""Business calendars and their holidays: what "business time" means per client."""

from datetime import time

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from meshline.models import TenantModel, validate_timezone


def parse_working_hours(raw) -> dict[int, tuple[tuple[time, time], ...]]:
    """``{"0": [["09:00", "17:30"]], ...}`` (0 = Monday) → weekday → ((start, end), ...)."""
    if not isinstance(raw, dict):
        raise ValidationError("Working hours must map weekday numbers (0=Monday) to intervals.")
    parsed: dict[int, tuple[tuple[time, time], ...]] = {}
    for key, intervals in raw.items():
        try:
            weekday = int(key)
        except (TypeError, ValueError):
            raise ValidationError(
                f"'{key}' is not a weekday number (0=Monday ... 6=Sunday)."
            ) from None
        if not 0 <= weekday <= 6 or not isinstance(intervals, list):
            raise ValidationError(f"Weekday {key}: use 0-6 and a list of [start, end] pairs.")
        pairs = []
        for pair in intervals:
            try:
                # "24:00" means midnight at the end of the day (stored as time(0)).
                start, end = (
                    time(0) if part == "24:00" else time.fromisoformat(part) for part in pair
                )
            except (TypeError, ValueError):
                raise ValidationError(
                    f'Weekday {key}: {pair!r} is not ["HH:MM", "HH:MM"].'
                ) from None
            pairs.append((start, end))
        parsed[weekday] = tuple(sorted(pairs))
    return parsed


class BusinessCalendar(TenantModel):
    """Working hours and holidays in a time zone; deadlines are measured in this time.

    One calendar per organization is the default; a client may have its own.
    """

    name = models.CharField(max_length=100)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    working_hours = models.JSONField(
        default=dict,
        help_text='Weekday (0=Monday) to local intervals, e.g. {"0": [["09:00", "17:30"]]}.',
    )
    is_default = models.BooleanField(default=False)
    # At most one per client (calendar_once_per_client).
    client = models.ForeignKey(
        "deliveries.Client",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        db_index=False,
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "client"], name="calendar_once_per_client"
            ),
            models.UniqueConstraint(
                fields=["organization"],
                condition=Q(is_default=True),
                name="one_default_calendar_per_org",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.timezone})"

    def clean(self) -> None:
        from owners.business_time import validate_intervals

        try:
            problems = validate_intervals(parse_working_hours(self.working_hours))
        except ValidationError as exc:
            problems = exc.messages
        if problems:
            raise ValidationError({"working_hours": problems})


class Holiday(TenantModel):
    calendar = models.ForeignKey(
        BusinessCalendar, on_delete=models.CASCADE, related_name="holidays", db_index=False
    )

    date = models.DateField()
    name = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["date"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "calendar", "date"], name="holiday_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.name}"
