"""Adapters from the calendar and rota rows to the pure schedule modules, and the one
service that answers "who is on duty for role R at time T"."""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.utils import timezone

from owners import business_time, rota_schedule
from owners.models import BusinessCalendar, OwnerRole, Rota, WaitKind, parse_working_hours

log = logging.getLogger(__name__)
ALWAYS = business_time.CalendarSpec.always("UTC")


def calendar_spec(calendar: BusinessCalendar | None) -> business_time.CalendarSpec:
    """The pure spec of a calendar row; no calendar means wall-clock (24x7) time."""
    if calendar is None:
        return ALWAYS
    return business_time.CalendarSpec(
        tz=ZoneInfo(calendar.timezone),
        intervals=parse_working_hours(calendar.working_hours),
        holidays=frozenset(calendar.holidays.values_list("date", flat=True)),
    )


def calendar_for(organization, client=None) -> BusinessCalendar | None:
    """The client's own calendar if it has one, else the organization's default."""
    if client is not None:
        own = BusinessCalendar.objects.filter(organization=organization, client=client).first()
        if own is not None:
            return own
    return BusinessCalendar.objects.filter(organization=organization, is_default=True).first()


def business_calendar(organization, client=None):
    """``(calendar, spec)`` for the client (``calendar_for``, ``calendar_spec``); read once
    per processing batch, whichever step asks (flows' deadlines, the tickets it opens)."""
    from deliveries.services.processing import current_batch

    def compute():
        calendar = calendar_for(organization, client)
        return calendar, calendar_spec(calendar)

    batch = current_batch()
    if batch is None or batch.organization.pk != organization.pk:
        return compute()
    return batch.remember(("owners.calendar", client.pk if client else None), compute)


def deadline(
    spec: business_time.CalendarSpec, start: datetime, minutes: int, kind: str
) -> datetime:
    """``minutes`` after ``start``, in business time or wall-clock time."""
    if kind == WaitKind.WALL:
        # In UTC: aware arithmetic in a local zone adds clock time, an hour off across DST.
        return start.astimezone(UTC) + timedelta(minutes=minutes)
    return business_time.add_business_time(spec, start, timedelta(minutes=minutes))


def _windows(raw) -> tuple:
    return tuple(
        rota_schedule.Window(
            weekdays=frozenset(int(day) for day in window["weekdays"]),
            start=time.fromisoformat(window["start"]),
            end=time.fromisoformat(window["end"]),
        )
        for window in raw or []
    )


def layer_spec(layer) -> rota_schedule.Layer:
    return rota_schedule.Layer(
        name=layer.name,
        priority=layer.priority,
        people=tuple(layer.people or ()),
        frequency=layer.frequency,
        handoff_time=layer.handoff_time,
        start=layer.start_date,
        interval=layer.interval,
        windows=_windows(layer.windows),
        until=layer.until,
    )


def rota_spec(rota: Rota) -> rota_schedule.RotaSpec:
    """The pure spec of a rota. A layer that does not validate is left out (and logged)
    rather than taking the whole rota down; the admin refuses to save such a layer."""
    layers = []
    for layer in rota.layers.all():
        try:
            spec = layer_spec(layer)
        except (KeyError, TypeError, ValueError):
            spec = None
        if spec is None or rota_schedule.validate_layer(spec):
            log.warning("rota %s: layer %s is invalid and ignored", rota.pk, layer.pk)
            continue
        layers.append(spec)
    overrides = tuple(
        rota_schedule.Override(person=o.person_id, start=o.start, end=o.end)
        for o in rota.overrides.all()
    )
    return rota_schedule.RotaSpec(
        tz=ZoneInfo(rota.timezone), layers=tuple(layers), overrides=overrides
    )


@dataclass
class OnDuty:
    role: OwnerRole
    primary: object | None  # User
    backup: object | None
    layer: str | None
    until: datetime | None


def who_is_on_duty(role: OwnerRole, at: datetime | None = None) -> OnDuty:
    """The person holding ``role`` at ``at`` (now by default), with their backup."""
    return DutyRoster(role).at(at or timezone.now())


class DutyRoster:
    """Who holds ``role`` at any moment, its rota read once: tickets opened together at
    different moments (a batch's billing exceptions, each at its event's time) ask one
    role many times."""

    def __init__(self, role: OwnerRole):
        self.role = role
        rota = (
            Rota.objects.filter(organization=role.organization_id, role=role)
            .prefetch_related("layers", "overrides")
            .first()
        )
        self.spec = rota_spec(rota) if rota is not None else None
        self._people: dict = {}  # person id -> user, None once known to have left

    def at(self, at: datetime) -> OnDuty:
        if self.spec is None:
            return OnDuty(self.role, None, None, None, None)
        duty = rota_schedule.on_duty(self.spec, at)
        self._load([p for p in (duty.primary, duty.backup) if p and p not in self._people])
        return OnDuty(
            self.role,
            self._people.get(duty.primary),
            self._people.get(duty.backup),
            duty.layer,
            duty.shift_end if duty.primary is not None else None,
        )

    def _load(self, ids: list) -> None:
        """A rota names people by id; someone who has left the organization is on nobody's
        duty."""
        if not ids:
            return
        users = get_user_model().objects.filter(memberships__organization=self.role.organization_id)
        found = users.in_bulk(ids)
        self._people.update({pk: found.get(pk) for pk in ids})
