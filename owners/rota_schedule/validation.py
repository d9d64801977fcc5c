"""What makes a layer invalid, said in words the admin form can show."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from owners.rota_schedule.spec import (
    _PERIOD_DAYS,
    DAILY,
    WEEKLY,
    Layer,
    Window,
)


def validate_layer(layer: Layer) -> list[str]:
    """Human-readable problems with a layer; empty when it is usable.

    The schedule functions raise ``ValueError`` on an invalid layer rather than guess, so call
    this when a layer is edited (e.g. from a model's ``clean()``).
    """
    problems: list[str] = []
    if not isinstance(layer.name, str) or not layer.name.strip():
        problems.append("the layer needs a name")
    if not isinstance(layer.priority, int) or isinstance(layer.priority, bool):
        problems.append("priority must be an integer")
    if not layer.people:
        problems.append("the layer has no people")
    else:
        for person in layer.people:
            if person is None:
                problems.append("people must not include None (None means nobody on duty)")
                break
            try:
                hash(person)
            except TypeError:
                problems.append(f"person {person!r} is not hashable")
                break
    if layer.frequency not in _PERIOD_DAYS:
        problems.append(
            f"frequency must be {DAILY!r} or {WEEKLY!r}, not {layer.frequency!r}",
        )
    if not isinstance(layer.interval, int) or isinstance(layer.interval, bool):
        problems.append("interval must be an integer")
    elif layer.interval < 1:
        problems.append(f"interval must be at least 1, not {layer.interval}")
    if not isinstance(layer.handoff_time, time):
        problems.append("handoff_time must be a time")
    elif layer.handoff_time.tzinfo is not None:
        problems.append("handoff_time must be a naive local time (the rota's zone applies)")
    start_ok = _is_date(layer.start)
    if not start_ok:
        problems.append("start must be a date (not a datetime)")
    if layer.until is not None:
        if not _is_date(layer.until):
            problems.append("until must be a date (not a datetime)")
        elif start_ok and layer.until <= layer.start:
            problems.append(f"until ({layer.until}) must be after start ({layer.start})")
    for number, window in enumerate(layer.windows, start=1):
        problems.extend(f"window {number}: {p}" for p in _window_problems(window))
    return problems


def _is_date(value: object) -> bool:
    """A plain date: a datetime would smuggle in a time and maybe a zone."""
    return isinstance(value, date) and not isinstance(value, datetime)


def _window_problems(window: Window) -> list[str]:
    if not isinstance(window, Window):
        return ["not a Window"]
    problems: list[str] = []
    if not window.weekdays:
        problems.append("no weekdays, so it never applies")
    elif any(not isinstance(d, int) or not 0 <= d <= 6 for d in window.weekdays):
        problems.append("weekdays must be integers 0 (Monday) to 6 (Sunday)")
    for label, value in (("start", window.start), ("end", window.end)):
        if not isinstance(value, time):
            problems.append(f"{label} must be a time")
        elif value.tzinfo is not None:
            problems.append(f"{label} must be a naive local time")
    return problems


def _require_aware(value: datetime, what: str) -> datetime:
    """Reject naive datetimes: guessing a zone is exactly how schedules drift."""
    if not isinstance(value, datetime):
        raise TypeError(f"{what} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {value!r}")
    return value.astimezone(UTC)
