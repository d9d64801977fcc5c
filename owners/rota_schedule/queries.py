"""The questions a rota answers: on duty now, shifts, coverage gaps and handoffs in a range."""

from __future__ import annotations

from datetime import datetime

from owners.rota_schedule.resolve import _range, _Rota
from owners.rota_schedule.spec import (
    _MAX_SEARCH_STEPS,
    _TICK,
    OPEN_END,
    OPEN_START,
    Duty,
    Handoff,
    RotaSpec,
    Shift,
)
from owners.rota_schedule.validation import _require_aware


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
