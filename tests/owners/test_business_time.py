"""Business-time arithmetic: the worked examples from the issue, then properties (hypothesis).

No database: these are pure functions. Hypothesis leans on daylight-saving transitions (starts
drawn around real transitions, interval boundaries drawn around 00:00-03:30) because that is
where schedules used to shift by an hour.
"""

import pickle
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from owners.business_time import (
    CalendarSpec,
    add_business_time,
    business_intervals,
    business_time_between,
    is_business_time,
    next_business_moment,
    validate_intervals,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOUR = timedelta(hours=1)
MICRO = timedelta(microseconds=1)
OFFICE = CalendarSpec.standard("Europe/Berlin")  # Mon-Fri 09:00-17:30


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def wall(moment: datetime, tz: ZoneInfo = BERLIN) -> datetime:
    """The naive local reading of an instant, to state expectations in local time."""
    return moment.astimezone(tz).replace(tzinfo=None)


# --- worked examples ------------------------------------------------------------------------


def test_two_hours_from_friday_close_lands_on_monday_1100():
    deadline = add_business_time(OFFICE, berlin(2026, 5, 15, 17, 30), 2 * HOUR)
    assert wall(deadline) == datetime(2026, 5, 18, 11, 0)
    assert deadline.tzinfo is UTC


def test_two_hours_from_friday_1630_lands_on_monday_1000():
    deadline = add_business_time(OFFICE, berlin(2026, 5, 15, 16, 30), 2 * HOUR)
    assert wall(deadline) == datetime(2026, 5, 18, 10, 0)


def test_deadline_at_closing_time_is_not_rolled_over_to_monday():
    deadline = add_business_time(OFFICE, berlin(2026, 5, 15, 16, 30), HOUR)
    assert wall(deadline) == datetime(2026, 5, 15, 17, 30)
    assert not is_business_time(OFFICE, deadline)  # intervals are half-open: 17:30 is closed


def test_start_on_saturday_counts_from_monday_0900():
    saturday = berlin(2026, 5, 16, 12, 0)
    assert wall(next_business_moment(OFFICE, saturday)) == datetime(2026, 5, 18, 9, 0)
    assert wall(add_business_time(OFFICE, saturday, 2 * HOUR)) == datetime(2026, 5, 18, 11, 0)


def test_holiday_monday_moves_the_deadline_to_tuesday():
    whit_monday = date(2026, 5, 25)
    calendar = CalendarSpec.standard("Europe/Berlin", holidays=[whit_monday])
    deadline = add_business_time(calendar, berlin(2026, 5, 22, 17, 30), 2 * HOUR)
    assert wall(deadline) == datetime(2026, 5, 26, 11, 0)
    assert not is_business_time(calendar, berlin(2026, 5, 25, 12, 0))
    assert business_time_between(calendar, berlin(2026, 5, 25), berlin(2026, 5, 26)) == timedelta()


def test_spring_forward_weekend_keeps_local_office_hours():
    # Berlin goes from CET (+1) to CEST (+2) on Sunday 2026-03-29 at 02:00 local.
    deadline = add_business_time(OFFICE, berlin(2026, 3, 27, 17, 0), 2 * HOUR)
    assert wall(deadline) == datetime(2026, 3, 30, 10, 30)
    assert deadline == datetime(2026, 3, 30, 8, 30, tzinfo=UTC)
    before = next_business_moment(OFFICE, berlin(2026, 3, 21, 12, 0))
    after = next_business_moment(OFFICE, berlin(2026, 3, 28, 12, 0))
    assert before == datetime(2026, 3, 23, 8, 0, tzinfo=UTC)  # 09:00 CET
    assert after == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)  # 09:00 CEST, not 10:00
    for start, end in business_intervals(OFFICE, berlin(2026, 3, 16), berlin(2026, 4, 11)):
        assert (wall(start).time(), wall(end).time()) == (time(9), time(17, 30))


def test_fall_back_weekend_keeps_local_office_hours():
    # Berlin goes from CEST (+2) back to CET (+1) on Sunday 2026-10-25 at 03:00 local.
    deadline = add_business_time(OFFICE, berlin(2026, 10, 23, 17, 0), 2 * HOUR)
    assert wall(deadline) == datetime(2026, 10, 26, 10, 30)
    assert deadline == datetime(2026, 10, 26, 9, 30, tzinfo=UTC)
    after = next_business_moment(OFFICE, berlin(2026, 10, 24, 12, 0))
    assert after == datetime(2026, 10, 26, 8, 0, tzinfo=UTC)  # 09:00 CET, not 08:00
    for start, end in business_intervals(OFFICE, berlin(2026, 10, 12), berlin(2026, 11, 7)):
        assert (wall(start).time(), wall(end).time()) == (time(9), time(17, 30))


def test_interval_across_the_spring_gap_is_an_hour_shorter():
    sundays = CalendarSpec(BERLIN, {6: ((time(0), time(6)),)})
    assert business_time_between(sundays, berlin(2026, 3, 22), berlin(2026, 3, 23)) == 6 * HOUR
    assert business_time_between(sundays, berlin(2026, 3, 29), berlin(2026, 3, 30)) == 5 * HOUR


def test_interval_starting_inside_the_spring_gap_starts_at_the_transition():
    sundays = CalendarSpec(BERLIN, {6: ((time(2, 30), time(4)),)})
    spans = list(business_intervals(sundays, berlin(2026, 3, 28), berlin(2026, 3, 30)))
    # 02:30 does not exist; the first valid instant is the transition, 03:00 CEST.
    assert spans == [
        (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), datetime(2026, 3, 29, 2, 0, tzinfo=UTC))
    ]
    assert wall(spans[0][0]) == datetime(2026, 3, 29, 3, 0)


def test_interval_wholly_inside_the_spring_gap_is_empty_that_day():
    sundays = CalendarSpec(BERLIN, {6: ((time(2, 10), time(2, 40)),)})
    assert list(business_intervals(sundays, berlin(2026, 3, 28), berlin(2026, 3, 30))) == []
    deadline = add_business_time(sundays, berlin(2026, 3, 28), timedelta(minutes=10))
    assert wall(deadline) == datetime(2026, 4, 5, 2, 20)  # the next Sunday


def test_interval_across_the_repeated_hour_is_an_hour_longer():
    sundays = CalendarSpec(BERLIN, {6: ((time(0), time(6)),)})
    assert business_time_between(sundays, berlin(2026, 10, 25), berlin(2026, 10, 26)) == 7 * HOUR


def test_ambiguous_start_uses_the_first_occurrence():
    sundays = CalendarSpec(BERLIN, {6: ((time(2, 30), time(3, 30)),)})
    spans = list(business_intervals(sundays, berlin(2026, 10, 24), berlin(2026, 10, 26)))
    # From the first 02:30 (CEST, 00:30Z) to 03:30 CET (02:30Z): two hours that day.
    assert spans == [
        (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 2, 30, tzinfo=UTC))
    ]


def test_ambiguous_end_uses_the_first_occurrence():
    sundays = CalendarSpec(BERLIN, {6: ((time(0), time(2, 30)),)})
    first_0230 = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    second_0230 = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    assert wall(first_0230) == wall(second_0230) == datetime(2026, 10, 25, 2, 30)
    assert is_business_time(sundays, first_0230 - MICRO)
    assert not is_business_time(sundays, first_0230)
    assert not is_business_time(sundays, second_0230 - 10 * timedelta(minutes=1))


def test_new_york_calendar_across_both_transitions():
    calendar = CalendarSpec.standard("America/New_York", time(9), time(17))
    spring = add_business_time(calendar, datetime(2026, 3, 6, 16, tzinfo=NEW_YORK), 2 * HOUR)
    assert wall(spring, NEW_YORK) == datetime(2026, 3, 9, 10, 0)
    assert spring == datetime(2026, 3, 9, 14, 0, tzinfo=UTC)  # EDT, -4
    autumn = add_business_time(calendar, datetime(2026, 10, 30, 16, tzinfo=NEW_YORK), 2 * HOUR)
    assert wall(autumn, NEW_YORK) == datetime(2026, 11, 2, 10, 0)
    assert autumn == datetime(2026, 11, 2, 15, 0, tzinfo=UTC)  # EST, -5


@pytest.mark.parametrize("tz", ["UTC", "Europe/Berlin", "America/New_York"])
@pytest.mark.parametrize("start", [berlin(2026, 3, 28, 12), berlin(2026, 10, 24, 12)])
def test_always_calendar_equals_wall_clock_addition(tz, start):
    calendar = CalendarSpec.always(tz)
    # Elapsed-time addition happens in UTC: ``berlin(...) + delta`` would add wall-clock time
    # and be an hour off across a transition, the very bug this module exists to avoid.
    start = start.astimezone(UTC)
    for delta in (timedelta(0), timedelta(minutes=1), 36 * HOUR, timedelta(days=9)):
        assert add_business_time(calendar, start, delta) == start + delta
        assert business_time_between(calendar, start, start + delta) == delta
    assert list(business_intervals(calendar, start, start + timedelta(days=3))) == [
        (start, start + timedelta(days=3))
    ]


def test_business_time_between_friday_1700_and_monday_1000():
    elapsed = business_time_between(OFFICE, berlin(2026, 5, 15, 17, 0), berlin(2026, 5, 18, 10))
    assert elapsed == timedelta(hours=1, minutes=30)


def test_business_time_between_is_zero_unless_end_is_after_start():
    monday_noon = berlin(2026, 5, 18, 12)
    assert business_time_between(OFFICE, monday_noon, monday_noon) == timedelta(0)
    assert business_time_between(OFFICE, monday_noon, monday_noon - HOUR) == timedelta(0)


def test_midnight_end_reaches_the_next_day_seamlessly():
    night_shift = CalendarSpec(BERLIN, {0: ((time(22), time(0)),), 1: ((time(0), time(2)),)})
    spans = list(business_intervals(night_shift, berlin(2026, 5, 18), berlin(2026, 5, 20)))
    assert [(wall(s), wall(e)) for s, e in spans] == [
        (datetime(2026, 5, 18, 22), datetime(2026, 5, 19, 2))
    ]
    deadline = add_business_time(night_shift, berlin(2026, 5, 18, 12), 3 * HOUR)
    assert wall(deadline) == datetime(2026, 5, 19, 1, 0)


def test_zero_delta_is_the_start_itself():
    saturday = berlin(2026, 5, 16, 12)
    assert add_business_time(OFFICE, saturday, timedelta(0)) == saturday


# --- guards and validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda naive: is_business_time(OFFICE, naive),
        lambda naive: next_business_moment(OFFICE, naive),
        lambda naive: add_business_time(OFFICE, naive, HOUR),
        lambda naive: business_time_between(OFFICE, naive, berlin(2026, 6, 1)),
        lambda naive: business_intervals(OFFICE, berlin(2026, 5, 1), naive),  # checked eagerly
    ],
)
def test_naive_datetimes_are_refused(call):
    with pytest.raises(ValueError, match="timezone-aware"):
        call(datetime(2026, 5, 18, 12))


def test_negative_delta_is_refused():
    with pytest.raises(ValueError, match="negative"):
        add_business_time(OFFICE, berlin(2026, 5, 18, 12), -HOUR)


def test_calendar_without_working_time_raises_instead_of_looping():
    empty = CalendarSpec(BERLIN, {})
    start = berlin(2026, 5, 18, 12)
    with pytest.raises(ValueError, match="calendar has no working time"):
        add_business_time(empty, start, HOUR)
    with pytest.raises(ValueError, match="calendar has no working time"):
        next_business_moment(empty, start)
    assert not is_business_time(empty, start)
    assert business_time_between(empty, start, start + timedelta(days=3650)) == timedelta(0)


def test_calendar_of_only_holidays_raises_instead_of_looping():
    mondays = [date(2026, 5, 18) + timedelta(weeks=n) for n in range(120)]
    calendar = CalendarSpec.standard("Europe/Berlin", weekdays=[0], holidays=mondays)
    with pytest.raises(ValueError, match="no business time"):
        add_business_time(calendar, berlin(2026, 5, 17), HOUR)
    # Within the horizon it still works: the calendar merely has a long holiday.
    late = CalendarSpec.standard("Europe/Berlin", weekdays=[0], holidays=mondays[:50])
    assert wall(next_business_moment(late, berlin(2026, 5, 17))) == datetime(2027, 5, 3, 9)


def test_validate_intervals_explains_each_problem():
    problems = validate_intervals(
        {
            0: ((time(9), time(12)), (time(11), time(13))),
            1: ((time(17), time(9)),),
            2: ((time(22), time(0)), (time(23), time(23, 30))),
            3: ((time(9, tzinfo=UTC), time(17)),),
            4: ("09:00-17:00",),
            7: ((time(9), time(17)),),
        }
    )
    assert problems == [
        "Monday: 09:00-12:00 overlaps 11:00-13:00",
        "Tuesday 17:00-09:00: the end must be after the start"
        " (00:00 as the end means midnight at the end of the day)",
        "Wednesday: 22:00-00:00 overlaps 23:00-23:30",
        "Thursday 09:00+00:00-17:00: use naive local wall times; the calendar's time zone applies",
        "Friday: '09:00-17:00' is not a (start, end) pair of times",
        "weekday 7 is not 0 (Monday) to 6 (Sunday)",
    ]
    assert validate_intervals({0: ((time(9), time(12)), (time(12), time(17)))}) == []
    assert validate_intervals({}) == []
    with pytest.raises(ValueError, match="overlaps"):
        CalendarSpec(BERLIN, {0: ((time(9), time(12)), (time(11), time(13)))})


def test_spec_is_normalized_hashable_and_picklable():
    messy = CalendarSpec("Europe/Berlin", {0: [(time(13), time(17)), (time(9), time(12))], 5: ()})
    tidy = CalendarSpec(BERLIN, {0: ((time(9), time(12)), (time(13), time(17)))})
    assert messy == tidy
    assert hash(messy) == hash(tidy)
    assert messy.tz is BERLIN
    assert pickle.loads(pickle.dumps(messy)) == tidy
    with pytest.raises(TypeError):
        messy.intervals[1] = ((time(9), time(17)),)  # read-only, so memoized days stay right
    with pytest.raises(TypeError, match="dates"):
        CalendarSpec(BERLIN, {}, frozenset({datetime(2026, 5, 25)}))


# --- properties -----------------------------------------------------------------------------

TZ_NAMES = [
    "Europe/Berlin",
    "America/New_York",
    "Australia/Sydney",
    "Asia/Kolkata",
    "UTC",
    "Australia/Lord_Howe",  # 30-minute daylight saving
    "America/Sao_Paulo",  # daylight saving began at midnight until 2019: 00:00 did not exist
]
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,  # no example database written into the repository
    suppress_health_check=[HealthCheck.too_slow],
)
WINDOW_START, WINDOW_END = datetime(2017, 1, 1, tzinfo=UTC), datetime(2027, 12, 31, tzinfo=UTC)


def _transitions(tz: ZoneInfo) -> list[datetime]:
    """The instants at which tz changes its UTC offset in the window, found day by day.

    Exact: tzdata transitions fall on whole seconds, and the bisection is in whole seconds.
    """
    found = []
    moment = WINDOW_START
    while moment < WINDOW_END:
        following = moment + timedelta(days=1)
        if moment.astimezone(tz).utcoffset() != following.astimezone(tz).utcoffset():
            low, high = moment, following
            while high - low > timedelta(seconds=1):
                middle = low + timedelta(seconds=(high - low).total_seconds() // 2)
                if middle.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high)
        moment = following
    return found


TRANSITIONS = {name: _transitions(ZoneInfo(name)) for name in TZ_NAMES}

# Interval boundaries in minutes of the day, 1440 meaning midnight at the end of the day. Draws
# past 1440 fold back onto 00:00-04:00, the hours in which clocks change, so that about half
# of all boundaries land there. (One plain integer keeps generation cheap for the time budget.)
EARLY_HOURS = 240
MARKS = st.integers(0, 1440 + EARLY_HOURS)


def _minute_of_day(mark: int) -> int:
    return mark - 1441 if mark > 1440 else mark


def _clock(minutes: int) -> time:
    return time(0) if minutes == 1440 else time(minutes // 60, minutes % 60)


def _week(marks_per_day: list[list[int]]) -> dict[int, tuple[tuple[time, time], ...]]:
    """Pair each day's sorted distinct boundaries into disjoint intervals."""
    week = {}
    for weekday, marks in enumerate(marks_per_day):
        minutes = [_clock(m) for m in sorted({_minute_of_day(mark) for mark in marks})]
        week[weekday] = tuple(zip(minutes[::2], minutes[1::2], strict=False))
    return week


# Strategies are built once: constructing them inside composites costs more than the tests.
TZ_CHOICE = st.sampled_from(TZ_NAMES)
NEAR_TRANSITION = {name: st.sampled_from(found) for name, found in TRANSITIONS.items() if found}
MINUTES_AROUND = st.integers(-4 * 1440, 4 * 1440)
SUB_MINUTE = st.one_of(st.just(0), st.integers(0, 60_000_000 - 1))
ANYWHERE = st.datetimes(
    WINDOW_START.replace(tzinfo=None), WINDOW_END.replace(tzinfo=None), timezones=st.just(UTC)
)
WEEK_MARKS = st.lists(st.lists(MARKS, max_size=4), min_size=7, max_size=7)
HOLIDAY_OFFSETS = st.lists(st.integers(-1, 30), max_size=3)
FRACTIONS = st.integers(0, 1_000_000)  # of the delta limit; see delta_for()


@st.composite
def instants(draw, tz_name: str) -> datetime:
    """Near a daylight-saving transition of the zone (three times in four), else anywhere."""
    if tz_name in NEAR_TRANSITION and draw(st.integers(0, 3)):
        base = draw(NEAR_TRANSITION[tz_name])
        return base + timedelta(minutes=draw(MINUTES_AROUND), microseconds=draw(SUB_MINUTE))
    return draw(ANYWHERE)


@st.composite
def scenarios(draw) -> tuple[CalendarSpec, datetime]:
    """A random valid calendar in a random zone, and a start instant near its transitions."""
    tz_name = draw(TZ_CHOICE)
    tz = ZoneInfo(tz_name)
    week = _week(draw(WEEK_MARKS))
    if not any(week.values()):
        week[draw(st.integers(0, 6))] = ((time(9), time(17)),)
    start = draw(instants(tz_name))
    first_day = start.astimezone(tz).date()
    holidays = frozenset(first_day + timedelta(days=n) for n in draw(HOLIDAY_OFFSETS))
    spec = CalendarSpec(tz, week, holidays)
    return spec, start.astimezone(tz if draw(st.booleans()) else UTC)


@st.composite
def transition_scenarios(draw) -> tuple[CalendarSpec, datetime]:
    """A calendar with intervals in the small hours of a day on which the clocks change."""
    tz_name = draw(st.sampled_from(sorted(NEAR_TRANSITION)))
    tz = ZoneInfo(tz_name)
    transition = draw(NEAR_TRANSITION[tz_name])
    week = _week(draw(WEEK_MARKS))
    for moment in (transition - MICRO, transition):  # the local dates either side
        early = draw(st.lists(st.integers(0, EARLY_HOURS), min_size=2, max_size=6, unique=True))
        week[moment.astimezone(tz).weekday()] = _week([early])[0]
    start = transition - timedelta(minutes=draw(st.integers(0, 2 * 1440)))
    return CalendarSpec(tz, week), start


SCENARIOS = st.one_of(scenarios(), transition_scenarios())


def _weekly(spec: CalendarSpec) -> timedelta:
    """Nominal business time per week, to keep drawn deltas to a few weeks of work."""
    total = timedelta(0)
    for spans in spec.intervals.values():
        for start, end in spans:
            start_m = start.hour * 60 + start.minute
            end_m = 1440 if end == time(0) else end.hour * 60 + end.minute
            total += timedelta(minutes=end_m - start_m)
    return total


def delta_for(spec: CalendarSpec, fraction: int) -> timedelta:
    """Whole seconds, up to about four weeks of this calendar's business time."""
    limit = max(int(_weekly(spec).total_seconds()) * 4, 60)
    return timedelta(seconds=limit * fraction // 1_000_000)


@PROPERTY
@given(SCENARIOS, FRACTIONS)
def test_deadline_is_never_before_start_and_consumes_exactly_delta(scenario, fraction):
    spec, start = scenario
    delta = delta_for(spec, fraction)
    deadline = add_business_time(spec, start, delta)
    assert deadline.tzinfo is UTC
    assert deadline >= start
    assert business_time_between(spec, start, deadline) == delta


@PROPERTY
@given(SCENARIOS, FRACTIONS, FRACTIONS)
def test_deadline_is_monotonic_in_delta(scenario, first, second):
    spec, start = scenario
    smaller, larger = sorted([delta_for(spec, first), delta_for(spec, second)])
    early, late = add_business_time(spec, start, smaller), add_business_time(spec, start, larger)
    assert early <= late
    if smaller < larger:
        assert early < late


@PROPERTY
@given(SCENARIOS, FRACTIONS, FRACTIONS)
def test_adding_in_two_steps_equals_adding_once(scenario, first_fraction, second_fraction):
    spec, start = scenario
    first, second = delta_for(spec, first_fraction), delta_for(spec, second_fraction)
    stepwise = add_business_time(spec, add_business_time(spec, start, first), second)
    assert stepwise == add_business_time(spec, start, first + second)


@PROPERTY
@given(SCENARIOS, FRACTIONS)
def test_positive_deadline_falls_in_business_time_or_at_an_interval_end(scenario, fraction):
    spec, start = scenario
    delta = max(delta_for(spec, fraction), timedelta(seconds=1))
    deadline = add_business_time(spec, start, delta)
    assert is_business_time(spec, deadline - MICRO)  # the last moment before it was working time
    ends = {end for _, end in business_intervals(spec, deadline - timedelta(days=3), deadline)}
    assert is_business_time(spec, deadline) or deadline in ends


@PROPERTY
@given(SCENARIOS, FRACTIONS)
def test_next_business_moment_is_the_first_business_instant(scenario, fraction):
    spec, start = scenario
    moment = next_business_moment(spec, start)
    assert moment >= start
    assert is_business_time(spec, moment)
    assert business_time_between(spec, start, moment) == timedelta(0)
    # Compare in UTC: == between zones is always False for a local time with fold=1 (PEP 495).
    assert (moment == start.astimezone(UTC)) == is_business_time(spec, start)
    delta = delta_for(spec, fraction)
    if delta:
        assert add_business_time(spec, start, delta) == add_business_time(spec, moment, delta)


@PROPERTY
@given(SCENARIOS, st.integers(0, 10 * 86400), st.integers(0, 10 * 86400))
def test_business_intervals_are_ordered_disjoint_clipped_and_agree_with_is_business_time(
    scenario, first, second
):
    spec, start = scenario
    end = start.astimezone(UTC) + timedelta(seconds=first)  # elapsed, not wall, time
    spans = list(business_intervals(spec, start, end))
    for span_start, span_end in spans:
        assert span_start.tzinfo is UTC and span_end.tzinfo is UTC
        assert start <= span_start < span_end <= end
        assert is_business_time(spec, span_start)
        assert is_business_time(spec, span_end - MICRO)
    for (_, previous_end), (next_start, _) in pairwise(spans):
        assert previous_end < next_start  # touching spans come out merged
        assert not is_business_time(spec, previous_end)
        assert not is_business_time(spec, next_start - MICRO)
    probe = start.astimezone(UTC) + timedelta(seconds=second % (first + 1))
    if probe < end:
        assert is_business_time(spec, probe) == any(s <= probe < e for s, e in spans)


@PROPERTY
@given(SCENARIOS, st.integers(0, 20 * 86400), st.integers(0, 20 * 86400))
def test_business_time_between_is_additive(scenario, first, second):
    spec, start = scenario
    middle = start.astimezone(UTC) + timedelta(seconds=first)
    end = middle + timedelta(seconds=second)
    assert business_time_between(spec, start, end) == business_time_between(
        spec, start, middle
    ) + business_time_between(spec, middle, end)


def _oracle_first_instant(tz: ZoneInfo, wall: datetime) -> datetime:
    """The documented boundary rule, computed independently of the module.

    The first instant whose clock reads ``wall`` or later is either an instant at which the
    clock reads exactly ``wall`` (``wall`` minus an offset in force nearby) or a transition
    (when the clock jumps over ``wall``); take the earliest candidate that qualifies.
    """
    approx = wall.replace(tzinfo=UTC)
    nearby = [t for t in TRANSITIONS[tz.key] if abs(t - approx) < timedelta(days=2)]
    offsets = {approx.astimezone(tz).utcoffset()}
    for transition in nearby:
        offsets |= {(transition + step).astimezone(tz).utcoffset() for step in (-MICRO, MICRO)}
    candidates = [(wall - offset).replace(tzinfo=UTC) for offset in offsets] + nearby
    return min(c for c in candidates if c.astimezone(tz).replace(tzinfo=None) >= wall)


def _oracle_intervals(spec: CalendarSpec, lower: datetime, upper: datetime) -> list:
    """Clipped, merged business intervals built from the oracle boundary rule."""
    lower, upper = lower.astimezone(UTC), upper.astimezone(UTC)
    spans = []
    day = lower.astimezone(spec.tz).date() - timedelta(days=1)
    while day <= upper.astimezone(spec.tz).date() + timedelta(days=1):
        for start, end in () if day in spec.holidays else spec.intervals.get(day.weekday(), ()):
            end_day = day + timedelta(days=1) if end == time(0) else day
            span_start = _oracle_first_instant(spec.tz, datetime.combine(day, start))
            span_end = _oracle_first_instant(spec.tz, datetime.combine(end_day, end))
            span_start, span_end = max(span_start, lower), min(span_end, upper)
            if span_start < span_end:
                spans.append((span_start, span_end))
        day += timedelta(days=1)
    merged: list = []
    for span_start, span_end in sorted(spans):
        if merged and merged[-1][1] >= span_start:
            assert merged[-1][1] == span_start, "oracle spans overlap"
            merged[-1] = (merged[-1][0], span_end)
        else:
            merged.append((span_start, span_end))
    return merged


@PROPERTY
@given(SCENARIOS)
def test_business_intervals_follow_the_boundary_rule_near_transitions(scenario):
    """Gap starts at the transition, ambiguous times at their first occurrence (oracle)."""
    spec, start = scenario
    end = start.astimezone(UTC) + timedelta(days=3)
    assert list(business_intervals(spec, start, end)) == _oracle_intervals(spec, start, end)


@PROPERTY
@given(SCENARIOS)
def test_is_business_time_matches_the_wall_clock_away_from_transitions(scenario):
    """An independent oracle: on ordinary days, the local clock reading decides."""
    spec, moment = scenario
    tz = spec.tz
    instant = moment.astimezone(UTC)
    offsets = {(instant + hours * HOUR).astimezone(tz).utcoffset() for hours in range(-27, 28, 3)}
    if len(offsets) != 1:
        return  # a transition is near; the properties above cover those days
    local = moment.astimezone(tz)
    clock = local.time().replace(tzinfo=None)
    expected = local.date() not in spec.holidays and any(
        start <= clock and (end == time(0) or clock < end)
        for start, end in spec.intervals.get(local.weekday(), ())
    )
    assert is_business_time(spec, moment) == expected


@PROPERTY
@given(
    TZ_CHOICE,
    st.data(),
    st.integers(5, 12),
    st.integers(0, 59),
    st.integers(13, 23),
    st.integers(0, 59),
)
def test_office_hours_stay_at_the_same_local_time_across_transitions(
    tz_name, data, start_hour, start_minute, end_hour, end_minute
):
    opening, closing = time(start_hour, start_minute), time(end_hour, end_minute)
    spec = CalendarSpec.standard(tz_name, opening, closing)
    start = data.draw(instants(tz_name), label="start")
    tz = spec.tz
    spans = list(business_intervals(spec, start, start + timedelta(days=21)))
    assert len(spans) >= 14  # 15 working days, the first and last maybe cut by the window
    for span_start, span_end in spans[1:-1]:
        assert span_start.astimezone(tz).time().replace(tzinfo=None) == opening
        assert span_end.astimezone(tz).time().replace(tzinfo=None) == closing


@PROPERTY
@given(TZ_CHOICE, st.data(), st.integers(0, 30 * 86400 * 10**6))
def test_always_calendar_is_wall_clock_time(tz_name, data, micros):
    spec = CalendarSpec.always(tz_name)
    start = data.draw(instants(tz_name), label="start")
    delta = timedelta(microseconds=micros)
    assert add_business_time(spec, start, delta) == start + delta
    assert business_time_between(spec, start, start + delta) == delta
    assert is_business_time(spec, start)
