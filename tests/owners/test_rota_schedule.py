"""Rota schedule arithmetic: rotations, layers, overrides, gaps, and DST-proof handoffs.

No database: owners.rota_schedule is pure Python.
"""

import itertools
import time as clock
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from owners.localtime import first_instant
from owners.rota_schedule import (
    OPEN_END,
    OPEN_START,
    OVERRIDE_LAYER,
    Duty,
    Handoff,
    Layer,
    Override,
    RotaSpec,
    Shift,
    Window,
    coverage_gaps,
    handoffs,
    on_duty,
    shifts,
    validate_layer,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WEEKDAYS = frozenset(range(5))
ABC = ("a", "b", "c")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(tz: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold).astimezone(UTC)


def layer(
    name: str = "base",
    *,
    people: tuple = ABC,
    frequency: str = "daily",
    handoff: time = time(9),
    start: date = date(2026, 1, 5),  # a Monday
    priority: int = 1,
    **kwargs,
) -> Layer:
    return Layer(name, priority, people, frequency, handoff, start, **kwargs)


def rota(*layers: Layer, tz: ZoneInfo = BERLIN, overrides: tuple = ()) -> RotaSpec:
    return RotaSpec(tz, layers, overrides)


def persons(result: list[Shift]) -> list:
    return [s.person for s in result]


# --------------------------------------------------------------------------- rotations


def test_daily_rotation_of_three_people_over_ten_shifts():
    spec = rota(layer())
    begin = local(BERLIN, 2026, 1, 5, 9)  # 08:00Z in winter
    result = shifts(spec, begin, begin + timedelta(days=10))

    assert persons(result) == ["a", "b", "c"] * 3 + ["a"]
    assert [s.start for s in result] == [utc(2026, 1, 5 + i, 8) for i in range(10)]
    assert all(s.end - s.start == timedelta(days=1) for s in result)
    for i in range(10):
        duty = on_duty(spec, utc(2026, 1, 5 + i, 20))
        assert duty.primary == ABC[i % 3]
        assert duty.backup == ABC[(i + 1) % 3]
        assert duty.layer == "base"
        assert (duty.shift_start, duty.shift_end) == (
            utc(2026, 1, 5 + i, 8),
            utc(2026, 1, 6 + i, 8),
        )


def test_weekly_rotation_of_three_people_over_ten_shifts():
    spec = rota(layer(frequency="weekly"))
    begin = local(BERLIN, 2026, 1, 5, 9)
    result = shifts(spec, begin, begin + timedelta(weeks=10))  # all in winter time

    assert persons(result) == ["a", "b", "c"] * 3 + ["a"]
    assert [s.start for s in result] == [begin + timedelta(weeks=i) for i in range(10)]
    assert {s.start.astimezone(BERLIN).strftime("%a %H:%M") for s in result} == {"Mon 09:00"}
    # Sunday evening still belongs to the shift that began on Monday
    assert on_duty(spec, local(BERLIN, 2026, 1, 18, 23)).primary == "b"
    assert on_duty(spec, local(BERLIN, 2026, 1, 19, 8, 59)).primary == "b"
    assert on_duty(spec, local(BERLIN, 2026, 1, 19, 9)).primary == "c"


def test_interval_two_hands_off_every_other_day_or_week():
    daily = rota(layer(interval=2))
    for day in range(10):
        duty = on_duty(daily, local(BERLIN, 2026, 1, 5 + day, 12))
        assert duty.primary == ABC[(day // 2) % 3], day
    assert [h.at for h in handoffs(daily, utc(2026, 1, 5), utc(2026, 1, 12))] == [
        utc(2026, 1, 5, 8),
        utc(2026, 1, 7, 8),
        utc(2026, 1, 9, 8),
        utc(2026, 1, 11, 8),
    ]

    fortnightly = rota(layer(frequency="weekly", interval=2))
    result = shifts(fortnightly, utc(2026, 1, 5, 8), utc(2026, 3, 2, 8))
    assert persons(result) == ["a", "b", "c", "a"]
    assert all(s.end - s.start == timedelta(weeks=2) for s in result)


def test_backup_is_the_next_different_person():
    spec = rota(layer(people=("a", "b", "c")))
    assert [on_duty(spec, utc(2026, 1, d, 12)).backup for d in (5, 6, 7)] == ["b", "c", "a"]

    alone = rota(layer(people=("solo",)))
    duty = on_duty(alone, utc(2026, 1, 6, 12))
    assert (duty.primary, duty.backup) == ("solo", None)

    doubled = rota(layer(people=("a", "a", "b")))
    assert on_duty(doubled, utc(2026, 1, 5, 12)).backup == "b"  # not "a" again
    assert on_duty(doubled, utc(2026, 1, 7, 12)).backup == "a"


# --------------------------------------------------------------------------- DST


def test_berlin_daily_0900_handoff_survives_spring_forward():
    spec = rota(layer(start=date(2026, 3, 1)))
    result = handoffs(spec, utc(2026, 3, 27), utc(2026, 3, 31))

    assert [h.at for h in result] == [
        utc(2026, 3, 27, 8),
        utc(2026, 3, 28, 8),  # CET, +01:00
        utc(2026, 3, 29, 7),  # CEST, +02:00: the clocks went forward at 02:00 that morning
        utc(2026, 3, 30, 7),
    ]
    assert {h.at.astimezone(BERLIN).time() for h in result} == {time(9)}
    spanning = on_duty(spec, utc(2026, 3, 29, 3))
    assert (spanning.shift_start, spanning.shift_end) == (utc(2026, 3, 28, 8), utc(2026, 3, 29, 7))
    assert spanning.shift_end - spanning.shift_start == timedelta(hours=23)


def test_berlin_daily_0900_handoff_survives_fall_back():
    spec = rota(layer(start=date(2026, 10, 1)))
    result = handoffs(spec, utc(2026, 10, 23), utc(2026, 10, 27))

    assert [h.at for h in result] == [
        utc(2026, 10, 23, 7),
        utc(2026, 10, 24, 7),  # CEST
        utc(2026, 10, 25, 8),  # CET: the clocks went back at 03:00 that morning
        utc(2026, 10, 26, 8),
    ]
    assert {h.at.astimezone(BERLIN).time() for h in result} == {time(9)}
    spanning = on_duty(spec, utc(2026, 10, 25, 1))
    assert (spanning.shift_start, spanning.shift_end) == (
        utc(2026, 10, 24, 7),
        utc(2026, 10, 25, 8),
    )
    assert spanning.shift_end - spanning.shift_start == timedelta(hours=25)
    # people keep rotating one per local day across the transition
    assert [h.to_person for h in result] == [ABC[d % 3] for d in (22, 23, 24, 25)]


def test_weekly_monday_0900_new_york_across_both_transitions():
    spec = rota(layer(frequency="weekly", start=date(2026, 1, 5)), tz=NEW_YORK)

    spring = shifts(spec, utc(2026, 3, 2, 14), utc(2026, 3, 16, 13))
    assert [s.start for s in spring] == [utc(2026, 3, 2, 14), utc(2026, 3, 9, 13)]
    assert spring[0].end - spring[0].start == timedelta(hours=7 * 24 - 1)  # DST began Sun 8 March

    fall = shifts(spec, utc(2026, 10, 26, 13), utc(2026, 11, 9, 14))
    assert [s.start for s in fall] == [utc(2026, 10, 26, 13), utc(2026, 11, 2, 14)]
    assert fall[0].end - fall[0].start == timedelta(hours=7 * 24 + 1)  # DST ended Sun 1 November
    for s in spring + fall:
        assert s.start.astimezone(NEW_YORK).strftime("%a %H:%M") == "Mon 09:00"


def test_handoff_inside_dst_gap_uses_first_valid_instant_and_ambiguous_uses_fold_0():
    spec = rota(layer(handoff=time(2, 30), start=date(2026, 3, 1)))
    spring = [h.at for h in handoffs(spec, utc(2026, 3, 28), utc(2026, 3, 30, 12))]
    # 02:30 does not exist on 29 March; the handoff happens when the clock reaches 03:00 CEST
    assert spring == [utc(2026, 3, 28, 1, 30), utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30)]
    assert spring[1].astimezone(BERLIN).time() == time(3)

    fall_spec = rota(layer(handoff=time(2, 30), start=date(2026, 10, 1)))
    fall = [h.at for h in handoffs(fall_spec, utc(2026, 10, 24), utc(2026, 10, 26, 12))]
    # 02:30 happens twice on 25 October; the first (still CEST, fold=0) is used
    assert fall == [utc(2026, 10, 24, 0, 30), utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30)]
    assert fall[1] == local(BERLIN, 2026, 10, 25, 2, 30, fold=0)

    new_york = rota(layer(handoff=time(2, 30), start=date(2026, 3, 1)), tz=NEW_YORK)
    assert on_duty(new_york, utc(2026, 3, 8, 7)).shift_start == utc(2026, 3, 8, 7)  # 03:00 EDT


# --------------------------------------------------------------------------- layers and windows


def business_over_base() -> RotaSpec:
    business = layer(
        "business",
        people=("x", "y"),
        frequency="weekly",
        priority=2,
        windows=(Window(WEEKDAYS, time(9), time(18)),),
    )
    return rota(business, layer("base", priority=1))  # order does not matter, priority does


def test_business_hours_layer_wins_over_the_base_layer_inside_its_window():
    spec = business_over_base()
    monday, saturday = 5, 10

    def at(day: int, hour: int) -> Duty:
        return on_duty(spec, local(BERLIN, 2026, 1, day, hour))

    assert (at(monday, 10).primary, at(monday, 10).layer) == ("x", "business")
    assert (at(monday, 20).primary, at(monday, 20).layer) == ("a", "base")
    assert (at(monday + 1, 8).primary, at(monday + 1, 8).layer) == ("a", "base")
    assert (at(saturday, 12).primary, at(saturday, 12).layer) == ("c", "base")  # Sat 10 Jan: day 5
    assert at(monday + 7, 12).primary == "y"  # business rotates weekly

    duty = at(monday, 10)
    assert duty.backup == "y"
    assert (duty.shift_start, duty.shift_end) == (utc(2026, 1, 5, 8), utc(2026, 1, 5, 17))

    # Tuesday 09:00 local: base hands a -> b and business takes over at the same instant
    tuesday = shifts(spec, local(BERLIN, 2026, 1, 6, 0), local(BERLIN, 2026, 1, 7, 0))
    assert [(s.person, s.layer, s.start.astimezone(BERLIN).hour) for s in tuesday] == [
        ("a", "base", 0),
        ("x", "business", 9),
        ("b", "base", 18),
    ]


def test_night_window_wraps_past_midnight():
    night = layer(
        "nights",
        people=("n1", "n2"),
        frequency="weekly",
        windows=(Window(WEEKDAYS, time(18), time(9)),),
    )
    spec = rota(night)

    def at(day: int, hour: int):
        return on_duty(spec, local(BERLIN, 2026, 1, day, hour)).primary

    assert at(5, 23) == "n1"  # Monday night
    assert at(6, 3) == "n1"  # ... until Tuesday 09:00
    assert at(6, 12) is None
    assert at(10, 3) == "n1"  # Saturday early morning is Friday's night
    assert at(10, 20) is None  # no window starts on Saturday
    assert at(12, 3) is None  # nor on Sunday
    assert at(12, 20) == "n2"

    week = coverage_gaps(spec, local(BERLIN, 2026, 1, 5, 0), local(BERLIN, 2026, 1, 12, 0))
    assert [
        (s.astimezone(BERLIN).strftime("%a %H"), e.astimezone(BERLIN).strftime("%a %H"))
        for s, e in week
    ] == [
        ("Mon 00", "Mon 18"),
        ("Tue 09", "Tue 18"),
        ("Wed 09", "Wed 18"),
        ("Thu 09", "Thu 18"),
        ("Fri 09", "Fri 18"),
        ("Sat 09", "Mon 00"),
    ]


def test_equal_priority_goes_to_the_layer_listed_first():
    first = layer("first", people=("p",))
    second = layer("second", people=("q",))
    assert on_duty(rota(first, second), utc(2026, 1, 6, 12)).layer == "first"
    assert on_duty(rota(second, first), utc(2026, 1, 6, 12)).layer == "second"


def test_layer_does_not_cover_before_its_first_handoff():
    spec = rota(layer(start=date(2026, 1, 5)))
    before = on_duty(spec, utc(2026, 1, 5, 7, 59))
    assert before == Duty(None, None, None, OPEN_START, utc(2026, 1, 5, 8))
    assert on_duty(spec, utc(2026, 1, 5, 8)).primary == "a"
    assert coverage_gaps(spec, utc(2026, 1, 1), utc(2026, 1, 6)) == [
        (utc(2026, 1, 1), utc(2026, 1, 5, 8))
    ]


# --------------------------------------------------------------------------- coverage gaps


def test_coverage_gaps_of_a_windows_only_layer_over_a_week():
    spec = rota(layer(windows=(Window(WEEKDAYS, time(9), time(17)),)))
    gaps = coverage_gaps(spec, local(BERLIN, 2026, 1, 5, 0), local(BERLIN, 2026, 1, 12, 0))
    expected = [(local(BERLIN, 2026, 1, 5, 0), local(BERLIN, 2026, 1, 5, 9))]
    expected += [
        (local(BERLIN, 2026, 1, d, 17), local(BERLIN, 2026, 1, d + 1, 9)) for d in (5, 6, 7, 8)
    ]
    expected += [(local(BERLIN, 2026, 1, 9, 17), local(BERLIN, 2026, 1, 12, 0))]
    assert gaps == expected
    assert sum((e - s for s, e in gaps), timedelta()) == timedelta(hours=7 * 24 - 5 * 8)


def test_until_ends_the_layer_and_leaves_a_gap():
    ending = layer("ending", until=date(2026, 1, 10))
    spec = rota(ending)
    end_instant = utc(2026, 1, 10, 8)  # 09:00 Berlin

    assert coverage_gaps(spec, utc(2026, 1, 8), utc(2026, 1, 12)) == [
        (end_instant, utc(2026, 1, 12))
    ]
    assert shifts(spec, utc(2026, 1, 8), utc(2026, 1, 12))[-1].end == end_instant
    assert on_duty(spec, end_instant - timedelta(microseconds=1)).primary == "b"  # day 4
    after = on_duty(spec, utc(2026, 1, 11))
    assert after == Duty(None, None, None, end_instant, OPEN_END)
    assert handoffs(spec, utc(2026, 1, 9, 12), utc(2026, 1, 12)) == [
        Handoff(end_instant, "b", None, None)
    ]

    # a base layer underneath takes over when the ending layer stops
    covered = rota(
        layer("ending", priority=5, people=("z",), until=date(2026, 1, 10)), layer("base")
    )
    assert coverage_gaps(covered, utc(2026, 1, 8), utc(2026, 1, 12)) == []
    assert on_duty(covered, utc(2026, 1, 11)).layer == "base"


# --------------------------------------------------------------------------- overrides


def test_override_in_the_middle_of_a_shift_splits_it_into_three_segments():
    ov = Override("z", local(BERLIN, 2026, 1, 6, 12), local(BERLIN, 2026, 1, 6, 15))
    spec = rota(layer(), overrides=(ov,))
    day_start, day_end = local(BERLIN, 2026, 1, 6, 9), local(BERLIN, 2026, 1, 7, 9)

    assert shifts(spec, day_start, day_end) == [
        Shift("b", "c", "base", day_start, ov.start),
        Shift("z", "b", OVERRIDE_LAYER, ov.start, ov.end),
        Shift("b", "c", "base", ov.end, day_end),
    ]
    assert handoffs(spec, day_start, day_end - timedelta(minutes=1)) == [
        Handoff(ov.start, "b", "z", OVERRIDE_LAYER),
        Handoff(ov.end, "z", "b", "base"),
    ]
    during = on_duty(spec, local(BERLIN, 2026, 1, 6, 13))
    assert during == Duty("z", "b", OVERRIDE_LAYER, ov.start, ov.end)
    assert on_duty(spec, local(BERLIN, 2026, 1, 6, 16)) == Duty("b", "c", "base", ov.end, day_end)


def test_override_with_replaces_only_applies_to_that_persons_time():
    ov = Override("z", utc(2026, 1, 5), utc(2026, 1, 9), replaces="b")
    spec = rota(layer(), overrides=(ov,))
    # b's shift is Tue 09:00 -> Wed 09:00 local; everyone else is untouched
    assert persons(shifts(spec, utc(2026, 1, 5, 8), utc(2026, 1, 8, 8))) == ["a", "z", "c"]
    unmatched = rota(
        layer(), overrides=(Override("z", utc(2026, 1, 5), utc(2026, 1, 9), "nobody"),)
    )
    assert persons(shifts(unmatched, utc(2026, 1, 5, 8), utc(2026, 1, 8, 8))) == ["a", "b", "c"]


def test_override_beats_every_layer_fills_gaps_and_the_last_one_wins():
    windowed = layer(
        "top", priority=9, people=("t",), windows=(Window(WEEKDAYS, time(9), time(17)),)
    )
    first = Override("o1", local(BERLIN, 2026, 1, 5, 10), local(BERLIN, 2026, 1, 5, 20))
    second = Override("o2", local(BERLIN, 2026, 1, 5, 12), local(BERLIN, 2026, 1, 5, 13))
    spec = rota(windowed, overrides=(first, second))

    assert on_duty(spec, local(BERLIN, 2026, 1, 5, 11)).primary == "o1"  # over the top layer
    assert on_duty(spec, local(BERLIN, 2026, 1, 5, 12, 30)).primary == "o2"  # listed last
    gap_filled = on_duty(spec, local(BERLIN, 2026, 1, 5, 19))  # outside the window
    assert (gap_filled.primary, gap_filled.backup, gap_filled.layer) == ("o1", None, OVERRIDE_LAYER)
    assert coverage_gaps(spec, local(BERLIN, 2026, 1, 5, 9), local(BERLIN, 2026, 1, 5, 22)) == [
        (local(BERLIN, 2026, 1, 5, 20), local(BERLIN, 2026, 1, 5, 22))
    ]


def test_override_by_the_scheduled_person_is_not_a_handoff():
    ov = Override("b", utc(2026, 1, 6, 12), utc(2026, 1, 6, 14))
    spec = rota(layer(), overrides=(ov,))
    assert handoffs(spec, utc(2026, 1, 6, 9), utc(2026, 1, 6, 20)) == []
    assert on_duty(spec, utc(2026, 1, 6, 13)).backup == "c"  # the layer's backup, not b itself


# --------------------------------------------------------------------------- inputs


def test_naive_datetimes_are_rejected():
    spec = rota(layer())
    naive = datetime(2026, 1, 6, 12)
    with pytest.raises(ValueError, match="timezone-aware"):
        on_duty(spec, naive)
    for fn in (shifts, coverage_gaps, handoffs):
        with pytest.raises(ValueError, match="timezone-aware"):
            fn(spec, naive, utc(2026, 1, 7))
        with pytest.raises(ValueError, match="timezone-aware"):
            fn(spec, utc(2026, 1, 5), naive)
        with pytest.raises(ValueError, match="before start"):
            fn(spec, utc(2026, 1, 7), utc(2026, 1, 5))
    with pytest.raises(ValueError, match="timezone-aware"):
        on_duty(rota(layer(), overrides=(Override("z", naive, utc(2026, 1, 7)),)), utc(2026, 1, 6))


def test_results_are_utc_and_independent_of_the_callers_zone():
    spec = rota(layer())
    instant = utc(2026, 1, 6, 12)
    assert on_duty(spec, instant) == on_duty(spec, instant.astimezone(ZoneInfo("Asia/Tokyo")))
    duty = on_duty(spec, instant.astimezone(NEW_YORK))
    assert duty.shift_start.tzinfo is UTC and duty.shift_end.tzinfo is UTC
    assert all(s.start.tzinfo is UTC for s in shifts(spec, instant, instant + timedelta(days=3)))


def test_validate_layer_reports_problems_and_invalid_layers_are_refused():
    assert validate_layer(layer()) == []
    bad = Layer(
        "",
        1,
        (),
        "hourly",
        time(9, tzinfo=UTC),
        datetime(2026, 1, 5),
        interval=0,
        windows=(Window(frozenset(), time(9), time(17)), Window(frozenset({7}), time(9), time(17))),
        until=date(2026, 1, 1),
    )
    problems = validate_layer(bad)
    for fragment in (
        "needs a name",
        "no people",
        "frequency",
        "interval must be at least 1",
        "naive local time",
        "start must be a date",
        "window 1: no weekdays",
        "window 2: weekdays must be integers 0",
    ):
        assert any(fragment in p for p in problems), (fragment, problems)
    assert any("until" in p for p in validate_layer(layer(until=date(2026, 1, 5))))
    with pytest.raises(ValueError, match="no people"):
        on_duty(rota(layer(people=())), utc(2026, 1, 6))


# --------------------------------------------------------------------------- speed


def test_shift_index_is_arithmetic_not_a_walk_from_the_start():
    spec = rota(layer(people=tuple("abcdefg"), start=date(2000, 1, 3)))
    at = local(BERLIN, 2126, 7, 1, 12)
    first_instant.cache_clear()
    duty = on_duty(spec, at)
    days = (date(2126, 7, 1) - date(2000, 1, 3)).days
    assert duty.primary == "abcdefg"[days % 7]
    assert duty.shift_start == local(BERLIN, 2126, 7, 1, 9)
    assert first_instant.cache_info().misses < 10  # a walk would convert ~46,000 local dates


def test_ninety_days_of_shifts_is_quick():
    spec = business_over_base()
    spec = RotaSpec(
        spec.tz,
        (
            *spec.layers,
            layer(
                "nights",
                priority=3,
                people=("n1", "n2"),
                windows=(Window(WEEKDAYS, time(22), time(6)),),
            ),
        ),
        tuple(Override("o", utc(2026, 2, d, 10), utc(2026, 2, d, 14)) for d in range(1, 28)),
    )
    first_instant.cache_clear()
    began = clock.perf_counter()
    result = shifts(spec, utc(2026, 1, 1), utc(2026, 4, 1))
    elapsed = clock.perf_counter() - began
    assert len(result) > 300
    assert elapsed < 1.0, elapsed


# --------------------------------------------------------------------------- properties

ZONES = [
    ZoneInfo(z)
    for z in ("Europe/Berlin", "America/New_York", "UTC", "Australia/Lord_Howe", "America/Santiago")
]
quarter_hours = st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45]))
days_2026 = st.dates(date(2025, 12, 1), date(2026, 12, 1))


@st.composite
def windows(draw) -> Window:
    return Window(
        frozenset(draw(st.sets(st.integers(0, 6), min_size=1))),
        draw(quarter_hours),
        draw(quarter_hours),
    )


@st.composite
def layers(draw, name: str) -> Layer:
    start = draw(days_2026)
    until = draw(st.none() | st.integers(1, 120).map(lambda n: start + timedelta(days=n)))
    return Layer(
        name=name,
        priority=draw(st.integers(0, 3)),
        people=tuple(draw(st.lists(st.sampled_from("abcde"), min_size=1, max_size=4))),
        frequency=draw(st.sampled_from(["daily", "weekly"])),
        handoff_time=draw(quarter_hours),
        start=start,
        interval=draw(st.integers(1, 3)),
        windows=tuple(draw(st.lists(windows(), max_size=2))),
        until=until,
    )


@st.composite
def rotas_and_ranges(draw):
    n_layers = draw(st.integers(1, 3))
    spec_layers = tuple(draw(layers(f"L{i}")) for i in range(n_layers))
    begin = datetime.combine(draw(days_2026), time(0), UTC) + timedelta(
        minutes=15 * draw(st.integers(0, 95))
    )
    length = timedelta(hours=draw(st.integers(1, 24 * 30)))
    overrides = []
    for _ in range(draw(st.integers(0, 3))):
        ov_start = begin + timedelta(hours=draw(st.integers(-24, 24 * 30)))
        overrides.append(
            Override(
                draw(st.sampled_from("abxyz")),
                ov_start,
                ov_start + timedelta(hours=draw(st.integers(1, 72))),
                draw(st.none() | st.sampled_from("abc")),
            )
        )
    spec = RotaSpec(draw(st.sampled_from(ZONES)), spec_layers, tuple(overrides))
    return spec, begin, begin + length


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rotas_and_ranges(), st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=6))
def test_schedule_is_a_consistent_tiling_that_agrees_with_on_duty(case, fractions):
    spec, begin, end = case
    result = shifts(spec, begin, end)
    gaps = coverage_gaps(spec, begin, end)

    # sorted, non-empty, non-overlapping, inside the range; adjacent segments change person
    for s in result:
        assert begin <= s.start < s.end <= end
    for earlier, later in itertools.pairwise(result):
        assert earlier.end <= later.start
        if earlier.end == later.start:
            assert earlier.person != later.person
    # shifts and gaps tile [begin, end) exactly
    tiles = sorted([(s.start, s.end, s.person) for s in result] + [(s, e, None) for s, e in gaps])
    assert tiles[0][0] == begin and tiles[-1][1] == end
    for (_, e1, p1), (s2, _, p2) in itertools.pairwise(tiles):
        assert e1 == s2 and p1 != p2

    # handoffs are exactly the tile boundaries (every boundary changes the person) plus maybe `end`
    changes = handoffs(spec, begin, end)
    assert [h.at for h in changes if h.at < end] == [t[0] for t in tiles[1:]]
    for h in changes[:6] + changes[-2:]:
        assert h.from_person != h.to_person
        assert on_duty(spec, h.at).primary == h.to_person
        assert on_duty(spec, h.at - timedelta(microseconds=1)).primary == h.from_person

    for fraction in fractions:
        t = min(begin + (end - begin) * fraction, end - timedelta(microseconds=1))
        duty = on_duty(spec, t)
        tile = next(tile for tile in tiles if tile[0] <= t < tile[1])
        assert duty.primary == tile[2]
        assert duty.shift_start <= t < duty.shift_end
        # the duty's segment lies within the (merged) schedule segment around t
        assert max(duty.shift_start, begin) >= tile[0]
        assert min(duty.shift_end, end) <= tile[1]
        if duty.primary is None:
            assert (duty.backup, duty.layer) == (None, None)
        else:
            assert duty.backup != duty.primary


def reference_instant(day: date, wall: time, tz: ZoneInfo) -> datetime:
    """Independent oracle: walk the wall clock forward a minute at a time until it exists."""
    naive = datetime.combine(day, wall)
    while True:
        candidate = naive.replace(tzinfo=tz).astimezone(UTC)
        if candidate.astimezone(tz).replace(tzinfo=None) == naive:
            return candidate
        naive += timedelta(minutes=1)


@settings(max_examples=50, deadline=None)
@given(
    tz=st.sampled_from(ZONES),
    handoff=quarter_hours,
    start=st.dates(date(2025, 1, 1), date(2027, 12, 31)),
    n_days=st.integers(1, 120),
)
def test_a_daily_layer_hands_off_once_per_local_day(tz, handoff, start, n_days):
    spec = RotaSpec(tz, (layer(people=("p", "q", "r"), handoff=handoff, start=start),))
    first = reference_instant(start, handoff, tz)
    last = reference_instant(start + timedelta(days=n_days), handoff, tz)

    result = handoffs(spec, first, last)

    assert len(result) == n_days
    assert [h.at for h in result] == [
        reference_instant(start + timedelta(days=i), handoff, tz) for i in range(1, n_days + 1)
    ]
    for i, h in enumerate(result, start=1):
        assert h.to_person == "pqr"[i % 3]
        wall = h.at.astimezone(tz)
        assert wall.date() == start + timedelta(days=i)
        if wall.time() != handoff:  # only when 09:00-style wall time fell into a DST gap
            assert datetime.combine(wall.date(), handoff) < wall.replace(tzinfo=None)
            assert wall.utcoffset() != (wall - timedelta(hours=2)).utcoffset()


@settings(max_examples=60, deadline=None)
@given(
    tz=st.sampled_from(ZONES),
    spec_layer=layers("solo").map(lambda lay: replace(lay, windows=())),
    offset_minutes=st.integers(-3 * 24 * 60, 400 * 24 * 60),
)
def test_on_duty_matches_a_walk_through_every_handoff(tz, spec_layer, offset_minutes):
    t = datetime.combine(spec_layer.start, time(0), UTC) + timedelta(minutes=offset_minutes)
    step = (1 if spec_layer.frequency == "daily" else 7) * spec_layer.interval

    def boundary(k: int) -> datetime:
        day = spec_layer.start + timedelta(days=k * step)
        return reference_instant(day, spec_layer.handoff_time, tz)

    ended = spec_layer.until is not None and t >= reference_instant(
        spec_layer.until, spec_layer.handoff_time, tz
    )
    if t < boundary(0) or ended:
        expected = None
    else:
        k = 0
        while boundary(k + 1) <= t:
            k += 1
        expected = spec_layer.people[k % len(spec_layer.people)]

    assert on_duty(RotaSpec(tz, (spec_layer,)), t).primary == expected
