"""The one local-time rule shared by business calendars and rotas: DST gaps and folds.

Europe/Berlin 2027: clocks jump 02:00 → 03:00 on 28 March and fall 03:00 → 02:00 on 31 October.
"""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil import tz as dateutil_tz

from owners import business_time, rota_schedule
from owners.localtime import first_instant

BERLIN = ZoneInfo("Europe/Berlin")
SPRING = date(2027, 3, 28)
AUTUMN = date(2027, 10, 31)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    "wall, expected",
    [
        (time(1, 59, 59, 999999), utc(2027, 3, 28, 0, 59, 59, 999999)),  # last CET instant
        (time(2, 0), utc(2027, 3, 28, 1)),  # the gap's start is the transition
        (time(2, 30), utc(2027, 3, 28, 1)),  # inside the gap: the transition (03:00 CEST)
        (time(2, 59, 59, 999999), utc(2027, 3, 28, 1)),
        (time(3, 0), utc(2027, 3, 28, 1)),  # the first CEST wall time
        (time(3, 30), utc(2027, 3, 28, 1, 30)),
    ],
)
def test_a_wall_time_in_the_spring_gap_is_the_transition(wall, expected):
    assert first_instant(SPRING, wall, BERLIN) == expected


def test_the_gap_rule_is_not_dateutils_shift_by_the_gap_length():
    # resolve_imaginary moves 02:30 to 03:30: an interval 02:30-03:15 would end before it
    # starts. The first-instant rule keeps disjoint wall intervals disjoint (here: empty).
    local = datetime.combine(SPRING, time(2, 30), tzinfo=BERLIN)
    assert dateutil_tz.resolve_imaginary(local).astimezone(UTC) == utc(2027, 3, 28, 1, 30)
    assert first_instant(SPRING, time(2, 30), BERLIN) == utc(2027, 3, 28, 1)
    assert first_instant(SPRING, time(3, 15), BERLIN) == utc(2027, 3, 28, 1, 15)


@pytest.mark.parametrize("fold", [0, 1])
def test_a_wall_time_in_the_autumn_fold_is_its_first_occurrence(fold):
    wall = time(2, 30, fold=fold)
    assert dateutil_tz.datetime_ambiguous(datetime.combine(AUTUMN, wall, tzinfo=BERLIN))
    assert first_instant(AUTUMN, wall, BERLIN) == utc(2027, 10, 31, 0, 30)  # still CEST
    assert first_instant(AUTUMN, time(3, 0), BERLIN) == utc(2027, 10, 31, 2)  # CET


def test_a_half_hour_gap_is_measured_not_assumed():
    # Lord Howe Island moves from +10:30 to +11:00: a 30-minute gap at 02:00 local.
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    assert first_instant(date(2026, 10, 4), time(2, 15), lord_howe) == utc(2026, 10, 3, 15, 30)
    assert first_instant(date(2026, 10, 4), time(2, 30), lord_howe) == utc(2026, 10, 3, 15, 30)


@pytest.mark.parametrize("day", [SPRING, AUTUMN])
def test_the_rule_is_monotonic_in_the_wall_time(day):
    walls = [time(hour, minute) for hour in range(24) for minute in range(0, 60, 5)]
    instants = [first_instant(day, wall, BERLIN) for wall in walls]
    assert instants == sorted(instants)


def test_calendars_and_rotas_use_the_same_rule():
    # A 02:30-10:00 business day on the spring date starts when the rota's 02:30 handoff does.
    spec = business_time.CalendarSpec(tz=BERLIN, intervals={6: ((time(2, 30), time(10)),)})
    [(start, end)] = business_time.business_intervals(
        spec, utc(2027, 3, 27, 12), utc(2027, 3, 28, 12)
    )
    rota = rota_schedule.RotaSpec(
        tz=BERLIN,
        layers=(
            rota_schedule.Layer(
                name="primary",
                priority=0,
                people=("ana", "ben"),
                start=date(2027, 3, 27),
                handoff_time=time(2, 30),
                frequency=rota_schedule.DAILY,
            ),
        ),
    )
    duty = rota_schedule.on_duty(rota, utc(2027, 3, 28, 1, 30))
    assert start == duty.shift_start == utc(2027, 3, 28, 1)
    assert end - start == timedelta(hours=7)  # 03:00-10:00 CEST: the gap hour never happened
