"""The schedule's vocabulary: the input spec (layers, windows, overrides) and the answers."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DAILY = "daily"
WEEKLY = "weekly"
_PERIOD_DAYS = {DAILY: 1, WEEKLY: 7}

#: ``Duty.layer`` / ``Shift.layer`` / ``Handoff.layer`` for time supplied by an override.
OVERRIDE_LAYER = "override"
#: Bounds of a ``Duty`` segment that never started / never ends (e.g. a gap before any layer).
OPEN_START = datetime.min.replace(tzinfo=UTC)
OPEN_END = datetime.max.replace(tzinfo=UTC)

_TICK = timedelta(microseconds=1)
# Safety net for the segment search in on_duty(); real rotas need a handful of steps.
_MAX_SEARCH_STEPS = 100_000


# --------------------------------------------------------------------------- public data


@dataclass(frozen=True)
class Window:
    """A local weekly window restricting a layer, e.g. weekdays 09:00-18:00.

    ``weekdays`` are the days a window *starts* on (0=Monday). ``end <= start`` wraps past
    midnight into the next day (18:00-09:00 is a night shift; ``end == start`` is 24 hours).
    """

    weekdays: frozenset[int]
    start: time
    end: time


@dataclass(frozen=True)
class Layer:
    """A rotation: shift k goes to ``people[k % len(people)]``.

    Shift 0 begins on local date ``start`` at ``handoff_time``; shift k begins ``k * interval``
    days (daily) or weeks (weekly) later, at the same local wall time.
    """

    name: str
    priority: int
    people: tuple[Hashable, ...]
    frequency: str
    handoff_time: time
    start: date
    interval: int = 1
    windows: tuple[Window, ...] = ()
    until: date | None = None


@dataclass(frozen=True)
class Override:
    """Someone else on duty for ``[start, end)``; see the module docstring for precedence."""

    person: Hashable
    start: datetime
    end: datetime
    replaces: Hashable | None = None


@dataclass(frozen=True)
class RotaSpec:
    """Everything needed to answer "who is on duty": time zone, layers and overrides."""

    tz: ZoneInfo
    layers: tuple[Layer, ...]
    overrides: tuple[Override, ...] = ()


@dataclass(frozen=True)
class Duty:
    """The answer for one instant.

    ``shift_start``/``shift_end`` bound the current segment: the longest interval around the
    instant with the same primary, backup and layer that does not cross a handoff of that layer
    (or the override's edges). An open-ended gap uses ``OPEN_START``/``OPEN_END``.
    """

    primary: Hashable | None
    backup: Hashable | None
    layer: str | None
    shift_start: datetime
    shift_end: datetime


@dataclass(frozen=True)
class Shift:
    """One segment of the final schedule (UTC, half-open)."""

    person: Hashable
    backup: Hashable | None
    layer: str | None
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Handoff:
    """A change of primary at ``at``; ``layer`` is the incoming side's (None into a gap)."""

    at: datetime
    from_person: Hashable | None
    to_person: Hashable | None
    layer: str | None
