"""Local wall time on a local date → UTC instant, with one rule for DST gaps and folds.

Business calendars (``owners.business_time``) and rotas (``owners.rota_schedule``) both turn
"09:00 on 2026-03-29 in Europe/Berlin" into an instant and must agree on the awkward days:

* A wall time that does not exist (spring-forward gap, Berlin 2026-03-29 02:00-03:00) maps to
  the transition, the first instant at which the clock reads that time or later (02:30 →
  03:00 CEST). ``dateutil.tz.resolve_imaginary`` instead shifts by the gap's length (02:30 →
  03:30), which would make 02:30-03:15 end before it starts; we use dateutil to detect the gap
  and measure it, and keep the first-instant rule, which is monotonic in the wall time.
* A wall time that happens twice (fall-back fold, Berlin 2026-10-25 02:00-03:00) maps to its
  first occurrence (``fold=0``), whatever ``fold`` the given time carries.
"""

from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache

from dateutil import tz as dateutil_tz

__all__ = ["first_instant"]

_MICROSECOND = timedelta(microseconds=1)


@lru_cache(maxsize=32768)
def first_instant(day: date, wall: time, zone: tzinfo) -> datetime:
    """The first instant (aware, UTC) at which the clock in ``zone`` reads ``day`` ``wall`` or later.

    Cached: calendars and rotas ask for the same few instants again and again.
    """
    local = datetime.combine(day, wall.replace(tzinfo=None, fold=0), tzinfo=zone)
    if dateutil_tz.datetime_exists(local):
        return local.astimezone(UTC)  # fold=0: the first of two occurrences in a fold
    # In a gap. ``after`` is where resolve_imaginary lands (``wall`` + the gap's length, on
    # the far side); the transition lies less than one gap length before it. Bisect to the
    # microsecond: before the transition the offset is the old one, from it on the new one.
    resolved = dateutil_tz.resolve_imaginary(local)
    after = resolved.astimezone(UTC)
    gap = resolved.replace(tzinfo=None) - local.replace(tzinfo=None)
    new_offset = after.astimezone(zone).utcoffset()
    low, high = after - gap, after  # offset is old at low, new at high
    while high - low > _MICROSECOND:
        middle = low + (high - low) // 2
        if middle.astimezone(zone).utcoffset() == new_offset:
            high = middle
        else:
            low = middle
    return high
