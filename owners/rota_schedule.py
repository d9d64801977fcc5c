"""Rota schedules: who is on duty for a role at an instant.

Pure Python, no Django: the models are wired to these dataclasses elsewhere, so the rules can be
tested exhaustively without a database.

Why it is built this way: on-call tools keep shipping the same bug, a schedule that moves an hour
after a daylight-saving change, because handoffs are stored as UTC instants or computed by adding
24-hour timedeltas. Here a handoff is a *local wall time on a local date* in the rota's time zone
and is converted to UTC only at the end, so a 09:00 Europe/Berlin handoff stays at 09:00 on both
transition days; the shift that spans a transition is 23 h or 25 h long in UTC.

Time-zone rules (the same for handoffs, window edges and ``until``):

* A local time that does not exist (inside a spring-forward gap, e.g. 02:30 on 2026-03-29 in
  Berlin) maps to the first valid instant after the gap (03:00 local, 01:00Z): the handoff happens
  as soon as the clock allows, never an hour "late" and never before the previous day's shift.
* A local time that happens twice (fall-back, e.g. 02:30 on 2026-10-25 in Berlin) uses
  ``fold=0``, the first occurrence (still summer time, 00:30Z).

Both rules are :func:`owners.localtime.first_instant`, shared with the business calendars.

Who wins at an instant:

1. Overrides, over every layer. An override with ``replaces=None`` applies for its whole window,
   gaps included; with ``replaces=X`` it applies only while the layers would put X on duty. When
   several apply, the one listed last in ``RotaSpec.overrides`` wins (like "last edit wins").
2. Layers that cover the instant, highest ``priority`` first; ties go to the layer listed first.
3. Nobody: a coverage gap (``primary is None``).

Backup: the next *different* person after the primary in the winning layer's rolling list (None if
the layer has a single distinct person). For an override, the backup is the layer primary it
displaced (or, if there was none or it is the override person, that layer's backup).

All results are aware UTC datetimes; all inputs must be aware (naive ones raise ``ValueError``).
Intervals are half-open ``[start, end)``.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from owners.localtime import first_instant

__all__ = [
    "DAILY",
    "OPEN_END",
    "OPEN_START",
    "OVERRIDE_LAYER",
    "WEEKLY",
    "Duty",
    "Handoff",
    "Layer",
    "Override",
    "RotaSpec",
    "Shift",
    "Window",
    "coverage_gaps",
    "handoffs",
    "on_duty",
    "shifts",
    "validate_layer",
]

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


# --------------------------------------------------------------------------- validation


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


# --------------------------------------------------------------------------- local time


def _local_day(instant: datetime, tz: tzinfo) -> date:
    return instant.astimezone(tz).date()


def _days(start: date, stop: date) -> Iterable[date]:
    day = start
    while day <= stop:
        yield day
        day += timedelta(days=1)


# --------------------------------------------------------------------------- one layer


class _Plan:
    """A validated layer with the derived values the arithmetic needs."""

    def __init__(self, layer: Layer, position: int, tz: tzinfo) -> None:
        problems = validate_layer(layer)
        if problems:
            raise ValueError(f"invalid layer {layer.name!r}: " + "; ".join(problems))
        self.layer = layer
        self.position = position
        self.tz = tz
        self.step = _PERIOD_DAYS[layer.frequency] * layer.interval  # days between handoffs
        self.people = layer.people
        self.windows = layer.windows
        self.first = self.handoff(0)
        self.last = (
            None if layer.until is None else first_instant(layer.until, layer.handoff_time, tz)
        )
        self.ever = self.last is None or self.last > self.first  # can it cover anything?

    def handoff(self, k: int) -> datetime:
        """UTC start of shift k: local date arithmetic first, zone conversion last."""
        try:
            day = self.layer.start + timedelta(days=k * self.step)
        except OverflowError:
            return OPEN_END if k > 0 else OPEN_START
        return first_instant(day, self.layer.handoff_time, self.tz)

    def shift_index(self, t: datetime) -> int:
        """Index of the shift containing ``t`` (>= first), from the local date difference: O(1)."""
        k = (_local_day(t, self.tz) - self.layer.start).days // self.step
        while k > 0 and self.handoff(k) > t:
            k -= 1
        while self.handoff(k + 1) <= t:
            k += 1
        return k

    def window_spans(self, first_day: date, last_day: date) -> Iterable[tuple[datetime, datetime]]:
        """UTC spans of the windows starting on local dates first_day..last_day."""
        for day in _days(first_day, last_day):
            weekday = day.weekday()
            for window in self.windows:
                if weekday in window.weekdays:
                    end_day = day + timedelta(days=1) if window.end <= window.start else day
                    yield (
                        first_instant(day, window.start, self.tz),
                        first_instant(end_day, window.end, self.tz),
                    )

    def in_window(self, t: datetime) -> bool:
        if not self.windows:
            return True
        day = _local_day(t, self.tz)
        return any(s <= t < e for s, e in self.window_spans(day - timedelta(days=2), day))

    def active(self, t: datetime) -> int | None:
        """Shift index if this layer covers ``t``, else None."""
        if not self.ever or t < self.first or (self.last is not None and t >= self.last):
            return None
        if not self.in_window(t):
            return None
        return self.shift_index(t)

    def next_change(self, t: datetime) -> datetime | None:
        """The first instant > t where this layer's contribution may change."""
        if not self.ever:
            return None
        if t < self.first:
            return self.first
        if self.last is not None and t >= self.last:
            return None
        candidates = [self.handoff(self.shift_index(t) + 1)]
        if self.last is not None:
            candidates.append(self.last)
        if self.windows:
            day = _local_day(t, self.tz)
            edges = self.window_spans(day - timedelta(days=2), day + timedelta(days=8))
            candidates.extend(x for span in edges for x in span if x > t)
        return min(candidates)

    def last_change(self, t: datetime) -> datetime | None:
        """The last instant <= t where this layer's contribution may have changed."""
        if not self.ever or t < self.first:
            return None
        if self.last is not None and t >= self.last:
            return self.last
        candidates = [self.handoff(self.shift_index(t))]
        if self.windows:
            day = _local_day(t, self.tz)
            edges = self.window_spans(day - timedelta(days=9), day + timedelta(days=1))
            candidates.extend(x for span in edges for x in span if x <= t)
        return max(candidates)

    def changes_between(self, a: datetime, b: datetime) -> set[datetime]:
        """Every instant in (a, b] where this layer's contribution may change (a superset)."""
        if not self.ever or b < self.first:
            return set()
        end = b if self.last is None else min(b, self.last)
        points = {self.first}
        if self.last is not None:
            points.add(self.last)
        k0 = self.shift_index(max(a, self.first))
        k1 = self.shift_index(end)
        points.update(self.handoff(k) for k in range(k0, k1 + 2))
        if self.windows:
            day_a = _local_day(max(a, self.first), self.tz) - timedelta(days=2)
            day_b = _local_day(end, self.tz) + timedelta(days=1)
            points.update(x for span in self.window_spans(day_a, day_b) for x in span)
        return {p for p in points if a < p <= end and p >= self.first}


def _backup_after(people: tuple[Hashable, ...], k: int) -> Hashable | None:
    """The next person in the rolling list who is not the primary (None if there is nobody)."""
    primary = people[k % len(people)]
    for step in range(1, len(people)):
        candidate = people[(k + step) % len(people)]
        if candidate != primary:
            return candidate
    return None


# --------------------------------------------------------------------------- whole rota


@dataclass(frozen=True)
class _State:
    """What the schedule says on one elementary interval; ``source`` separates equal people."""

    primary: Hashable | None = None
    backup: Hashable | None = None
    layer: str | None = None
    source: tuple[object, ...] | None = None


_GAP = _State()


@dataclass(frozen=True)
class _Ov:
    position: int
    person: Hashable
    start: datetime
    end: datetime
    replaces: Hashable | None


class _Rota:
    """A validated spec: layers in precedence order, overrides in UTC."""

    def __init__(self, spec: RotaSpec, within: tuple[datetime, datetime] | None = None) -> None:
        """``within=(a, b)`` drops overrides outside [a, b]: keeps range queries linear in time."""
        if not isinstance(spec.tz, tzinfo):
            raise TypeError(f"RotaSpec.tz must be a tzinfo (ZoneInfo), not {spec.tz!r}")
        self.tz = spec.tz
        plans = [_Plan(layer, i, spec.tz) for i, layer in enumerate(spec.layers)]
        self.plans = sorted(plans, key=lambda p: (-p.layer.priority, p.position))
        self.overrides: list[_Ov] = []
        for i, ov in enumerate(spec.overrides):
            if ov.person is None:
                raise ValueError(f"override {i}: person must not be None")
            start = _require_aware(ov.start, f"override {i} start")
            end = _require_aware(ov.end, f"override {i} end")
            if end <= start:
                continue  # an empty override never applies
            if within is not None and (end <= within[0] or start > within[1]):
                continue
            self.overrides.append(_Ov(i, ov.person, start, end, ov.replaces))

    def state_at(self, t: datetime) -> _State:
        base = _GAP
        for plan in self.plans:
            k = plan.active(t)
            if k is not None:
                people = plan.people
                base = _State(
                    people[k % len(people)],
                    _backup_after(people, k),
                    plan.layer.name,
                    ("layer", plan.position, k),
                )
                break
        winner: _Ov | None = None
        for ov in self.overrides:
            if ov.start <= t < ov.end and (ov.replaces is None or ov.replaces == base.primary):
                winner = ov  # the last applicable override wins
        if winner is None:
            return base
        if base.primary is not None and base.primary != winner.person:
            backup = base.primary
        elif base.backup != winner.person:
            backup = base.backup
        else:
            backup = None
        return _State(winner.person, backup, OVERRIDE_LAYER, ("override", winner.position))

    def next_change(self, t: datetime) -> datetime | None:
        candidates = [plan.next_change(t) for plan in self.plans]
        candidates.extend(x for ov in self.overrides for x in (ov.start, ov.end) if x > t)
        found = [c for c in candidates if c is not None]
        return min(found) if found else None

    def last_change(self, t: datetime) -> datetime | None:
        candidates = [plan.last_change(t) for plan in self.plans]
        candidates.extend(x for ov in self.overrides for x in (ov.start, ov.end) if x <= t)
        found = [c for c in candidates if c is not None]
        return max(found) if found else None

    def changes_between(self, a: datetime, b: datetime) -> list[datetime]:
        """Sorted instants in (a, b] where the schedule may change."""
        points: set[datetime] = set()
        for plan in self.plans:
            points |= plan.changes_between(a, b)
        points.update(x for ov in self.overrides for x in (ov.start, ov.end) if a < x <= b)
        return sorted(points)

    def timeline(self, a: datetime, b: datetime) -> list[tuple[datetime, datetime, _State]]:
        """[a, b) cut into maximal pieces of equal state (gaps included)."""
        pieces: list[tuple[datetime, datetime, _State]] = []
        cursor, state = a, self.state_at(a)
        for point in self.changes_between(a, b):
            if point >= b:
                break
            new = self.state_at(point)
            if new != state:
                pieces.append((cursor, point, state))
                cursor, state = point, new
        pieces.append((cursor, b, state))
        return pieces


def _range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    a = _require_aware(start, "start")
    b = _require_aware(end, "end")
    if b < a:
        raise ValueError(f"end ({end}) is before start ({start})")
    return a, b


# --------------------------------------------------------------------------- public API


def on_duty(spec: RotaSpec, at: datetime) -> Duty:
    """Who is on duty at ``at``, with backup, layer and the bounds of the current segment.

    Finding the shift is arithmetic (O(layers + overrides)); the segment bounds take a few more
    such steps, one per schedule boundary that does not change the answer.
    """
    t = _require_aware(at, "at")
    rota = _Rota(spec)
    state = rota.state_at(t)

    start = OPEN_START
    cursor = t
    for _ in range(_MAX_SEARCH_STEPS):
        point = rota.last_change(cursor)
        if point is None:
            break
        if rota.state_at(point - _TICK) != state:
            start = point
            break
        cursor = point - _TICK
    else:  # pragma: no cover - defensive
        raise RuntimeError("rota segment search did not converge")

    end = OPEN_END
    cursor = t
    for _ in range(_MAX_SEARCH_STEPS):
        point = rota.next_change(cursor)
        if point is None:
            break
        if rota.state_at(point) != state:
            end = point
            break
        cursor = point
    else:  # pragma: no cover - defensive
        raise RuntimeError("rota segment search did not converge")

    return Duty(state.primary, state.backup, state.layer, start, end)


def shifts(spec: RotaSpec, start: datetime, end: datetime) -> list[Shift]:
    """The final schedule over [start, end): layers and overrides merged, clipped to the range.

    Consecutive segments with the same person are merged (``backup``/``layer`` are those at the
    merged segment's start; ``on_duty`` gives exact values at an instant). Gaps are omitted.
    """
    a, b = _range(start, end)
    if a == b:
        return []
    result: list[Shift] = []
    for s, e, state in _Rota(spec, within=(a, b)).timeline(a, b):
        if state.primary is None:
            continue
        if result and result[-1].end == s and result[-1].person == state.primary:
            prev = result[-1]
            result[-1] = Shift(prev.person, prev.backup, prev.layer, prev.start, e)
        else:
            result.append(Shift(state.primary, state.backup, state.layer, s, e))
    return result


def coverage_gaps(
    spec: RotaSpec, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The parts of [start, end) where nobody is on duty, as UTC (start, end) pairs."""
    a, b = _range(start, end)
    if a == b:
        return []
    timeline = _Rota(spec, within=(a, b)).timeline(a, b)
    return [(s, e) for s, e, state in timeline if state.primary is None]


def handoffs(spec: RotaSpec, start: datetime, end: datetime) -> list[Handoff]:
    """Every change of primary at an instant in (start, end], including to and from nobody.

    A boundary where the same person simply continues (next shift, another layer) is not a
    handoff.
    """
    a, b = _range(start, end)
    rota = _Rota(spec, within=(a, b))
    result: list[Handoff] = []
    previous = rota.state_at(a)
    for point in rota.changes_between(a, b):
        state = rota.state_at(point)
        if state.primary != previous.primary:
            result.append(Handoff(point, previous.primary, state.primary, state.layer))
        previous = state
    return result
