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

from owners.rota_schedule.queries import coverage_gaps, handoffs, on_duty, shifts
from owners.rota_schedule.spec import (
    DAILY,
    OPEN_END,
    OPEN_START,
    OVERRIDE_LAYER,
    WEEKLY,
    Duty,
    Handoff,
    Layer,
    Override,
    RotaSpec,
    Shift,
    Window,
)
from owners.rota_schedule.validation import validate_layer

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
