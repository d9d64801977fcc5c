"""The whole rota: layers in precedence order with overrides on top, segment by segment."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime, tzinfo

from owners.rota_schedule.layer import _backup_after, _Plan
from owners.rota_schedule.spec import (
    OVERRIDE_LAYER,
    RotaSpec,
)
from owners.rota_schedule.validation import _require_aware


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
