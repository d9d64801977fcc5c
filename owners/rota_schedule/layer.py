"""One layer on its own: its handoffs in local wall time and who holds each shift."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from datetime import date, datetime, timedelta, tzinfo

from owners.localtime import first_instant
from owners.rota_schedule.spec import (
    _PERIOD_DAYS,
    OPEN_END,
    OPEN_START,
    Layer,
)
from owners.rota_schedule.validation import validate_layer


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
