"""The dashboard's numbers: event throughput from the hourly counts, MTTR and SLA compliance.

``EventCount`` is kept by database triggers (migration deliveries/0004), whatever inserts
the events: the API's COPY and single INSERT on PostgreSQL, the ORM, a rolled-back
transaction. ``count_events`` must stay exact for any ``since``; the dashboard shows those
numbers and the owners panel shows ``resolution_stats`` of the resolved tickets.
"""

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from html import unescape
from unittest import mock
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from deliveries.models import Deliverable, Event, EventCount, EventSource
from deliveries.services import ingest_events, throughput, trail
from owners import dashboard as owners_dashboard
from owners.models import Ticket, TicketSource, TicketStatus
from owners.services import tickets
from owners.services.tickets import MESHLINE
from tests.owners.factories import make_role, make_rule

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday, on the hour
BERLIN = ZoneInfo("Europe/Berlin")
HOUR = timedelta(hours=1)
DASHBOARD = "/o/org-a/"


# --- helpers ---------------------------------------------------------------------------------


def make_event(ref, at, *, client="acme", key=None, occurred_at=None):
    """A valid API event for deliverable ``ref`` of ``client`` that occurred at ``at``."""
    return {
        "event_type": "intake.received",
        "deliverable_id": ref,
        "client_id": client,
        "idempotency_key": key or f"{client}-{ref}-{at.isoformat()}",
        "actor": {"role": "cms", "id": "wp-publisher"},
        "occurred_at": occurred_at or at.isoformat(),
        "payload": {"deliverable_type": "landing_page", "title": ref},
    }


def ingest(organization, events, expect="accepted"):
    with scope(organization=organization):
        results = ingest_events(organization, events)
    assert [r.status for r in results] == [expect] * len(events), [r.as_dict() for r in results]
    return results


def counts(organization) -> dict:
    """{(client reference, UTC hour): events} as the triggers left them (deltas summed)."""
    totals: dict = {}
    with scope(organization=organization):
        rows = EventCount.objects.filter(organization=organization).values_list(
            "client__client_id", "hour", "count"
        )
        for ref, hour, n in rows:
            key = (ref, hour.astimezone(UTC))
            totals[key] = totals.get(key, 0) + n
    return {key: n for key, n in totals.items() if n}


def orm_fields(organization, client, at, key, *, deliverable=None, source=EventSource.API):
    """The fields of an event written with the ORM rather than through ingestion."""
    return {
        "organization": organization,
        "event_type": "intake.received",
        "client": client,
        "deliverable": deliverable,
        "idempotency_key": key,
        "content_digest": "d" * 64,
        "actor_role": "cms",
        "actor_id": "wp",
        "occurred_at": at,
        "received_at": at,
        "payload": {},
        "source": source,
    }


def trail_count(organization, since, client=None) -> int:
    """The ground truth: submitted events of the organization at or after ``since``."""
    with scope(organization=organization):
        events = (
            Event.objects.filter(organization=organization, occurred_at__gte=since)
            .exclude(source=EventSource.MESHLINE)
            .exclude(client=None)
        )
        if client is not None:
            events = events.filter(client=client)
        return events.count()


# --- 1. the trigger --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["batch", "single"])
def test_ingested_events_are_counted_per_client_and_utc_hour(org_a, client_acme, client_beta, mode):
    events = [
        make_event("LP-1", T0),  # exactly on the hour
        make_event("LP-1", T0 + HOUR - timedelta(microseconds=1)),  # last instant of 09:00
        make_event("LP-2", T0 + HOUR),  # first instant of 10:00
        make_event("BR-1", T0 + timedelta(minutes=30), client="beta"),
        # 15:10 in Kolkata is 09:40 UTC: counted in the UTC hour, not the local one.
        make_event("LP-3", T0, key="kolkata", occurred_at="2026-11-02T15:10:00+05:30"),
    ]
    with CaptureQueriesContext(connection) as queries:
        if mode == "batch":
            ingest(org_a, events)
        else:
            for event in events:
                ingest(org_a, [event])

    if connection.vendor == "postgresql":  # the two fast paths the trigger must see
        copies = [q for q in queries.captured_queries if q["sql"].startswith("COPY ")]
        assert bool(copies) == (mode == "batch")
    assert counts(org_a) == {
        ("acme", T0): 3,
        ("acme", T0 + HOUR): 1,
        ("beta", T0): 1,
    }


def test_counts_add_up_across_statements(org_a, client_acme):
    ingest(org_a, [make_event("LP-1", T0 + timedelta(minutes=5))])
    ingest(org_a, [make_event(f"LP-{i}", T0 + timedelta(minutes=10 + i)) for i in range(3)])
    ingest(org_a, [make_event("LP-9", T0 + timedelta(minutes=59))])

    assert counts(org_a) == {("acme", T0): 5}


def test_an_idempotent_retry_is_not_counted_twice(org_a, client_acme):
    first = make_event("LP-1", T0 + timedelta(minutes=1), key="retry-me")
    ingest(org_a, [first])
    ingest(org_a, [first], expect="duplicate")  # a single retry
    with scope(organization=org_a):  # a batch with the retry and one new event
        results = ingest_events(org_a, [first, make_event("LP-2", T0 + timedelta(minutes=2))])
    assert [r.status for r in results] == ["duplicate", "accepted"]
    # The same key twice in one new batch: stored once.
    twice = make_event("LP-3", T0 + timedelta(minutes=3), key="twice")
    with scope(organization=org_a):
        results = ingest_events(org_a, [twice, twice])
    assert [r.status for r in results] == ["accepted", "duplicate"]

    assert counts(org_a) == {("acme", T0): 3}
    assert trail_count(org_a, T0) == 3


def test_meshline_events_and_events_without_client_are_not_counted(org_a, client_acme):
    ingest(org_a, [make_event("LP-1", T0 + timedelta(minutes=1))])
    with scope(organization=org_a):
        deliverable = Deliverable.objects.get(organization=org_a, deliverable_id="LP-1")
        entry = trail.record(
            org_a,
            "ticket.opened",
            key="ticket:1:opened",
            payload={"ticket_id": "1"},
            deliverable=deliverable,
            occurred_at=T0 + timedelta(minutes=2),
        )
        # An event with no client (not through the API, which requires one).
        Event.objects.create(**orm_fields(org_a, None, T0 + timedelta(minutes=3), "no-client"))
    # The Meshline entry names Acme: only its source keeps it out of the counts.
    assert entry.source == EventSource.MESHLINE
    assert entry.client_id == client_acme.pk

    assert counts(org_a) == {("acme", T0): 1}


def test_events_inserted_through_the_orm_are_counted(org_a, client_acme, client_beta):
    with scope(organization=org_a):
        Event.objects.create(**orm_fields(org_a, client_acme, T0, "orm-1"))
        Event.objects.bulk_create(
            [
                Event(**orm_fields(org_a, client_acme, T0 + timedelta(minutes=20), "orm-2")),
                Event(**orm_fields(org_a, client_acme, T0 + timedelta(minutes=40), "orm-3")),
                Event(**orm_fields(org_a, client_acme, T0 + 2 * HOUR, "orm-4")),
                Event(
                    **orm_fields(org_a, client_beta, T0 + 2 * HOUR + timedelta(seconds=1), "orm-5")
                ),
                # Any source but Meshline's is counted.
                Event(**orm_fields(org_a, client_beta, T0, "orm-6", source=EventSource.WEBHOOK)),
            ]
        )

    assert counts(org_a) == {
        ("acme", T0): 3,
        ("acme", T0 + 2 * HOUR): 1,
        ("beta", T0): 1,
        ("beta", T0 + 2 * HOUR): 1,
    }


def test_a_rolled_back_insert_leaves_no_count(org_a, client_acme):
    ingest(org_a, [make_event("LP-1", T0 + timedelta(minutes=1))])

    with pytest.raises(RuntimeError, match="changed my mind"), transaction.atomic():
        ingest(
            org_a,
            [
                make_event("LP-2", T0 + timedelta(minutes=2)),
                make_event("LP-3", T0 + 3 * HOUR),
            ],
        )
        ingest(org_a, [make_event("LP-4", T0 + timedelta(minutes=4))])
        with scope(organization=org_a):
            Event.objects.create(**orm_fields(org_a, client_acme, T0 + 5 * HOUR, "orm-rolled-back"))
        # Counted inside the transaction that inserts the events...
        assert counts(org_a) == {
            ("acme", T0): 3,
            ("acme", T0 + 3 * HOUR): 1,
            ("acme", T0 + 5 * HOUR): 1,
        }
        raise RuntimeError("changed my mind")

    # ...and gone with it.
    assert counts(org_a) == {("acme", T0): 1}
    assert trail_count(org_a, T0) == 1


# --- compaction --------------------------------------------------------------------------------


def rows(organization) -> list[tuple]:
    with scope(organization=organization):
        return sorted(
            EventCount.objects.filter(organization=organization).values_list(
                "client__client_id", "hour", "count", "compacted"
            )
        )


def test_the_trigger_appends_deltas_and_compaction_folds_them(org_a, client_acme, client_beta):
    for minute in range(3):  # three statements in the same hour: three deltas
        ingest(org_a, [make_event(f"LP-{minute}", T0 + timedelta(minutes=minute))])
    ingest(org_a, [make_event("LP-9", T0 + HOUR), make_event("B-1", T0, client="beta")])
    before = counts(org_a)
    assert len([r for r in rows(org_a) if not r[3]]) == 5  # no row was updated in place

    with scope(organization=org_a):
        assert throughput.compact(org_a) == 5
        assert throughput.compact(org_a) == 0  # nothing left: idempotent
    assert counts(org_a) == before
    assert rows(org_a) == [
        ("acme", T0, 3, True),
        ("acme", T0 + HOUR, 1, True),
        ("beta", T0, 1, True),
    ]

    # Later events add deltas beside the compacted rows; the next pass adds them in.
    ingest(org_a, [make_event("LP-10", T0 + timedelta(minutes=30))])
    with scope(organization=org_a):
        assert throughput.count_events(org_a, T0) == 6
        assert throughput.compact(org_a, chunk=1) == 1
    assert rows(org_a)[0] == ("acme", T0, 4, True)


def test_compaction_in_small_chunks_loses_nothing(org_a, client_acme):
    for minute in range(7):
        ingest(org_a, [make_event(f"LP-{minute}", T0 + timedelta(minutes=minute * 20))])
    before = counts(org_a)
    with scope(organization=org_a):
        assert throughput.compact(org_a, chunk=2) == 7
    assert counts(org_a) == before
    assert all(compacted for *_rest, compacted in rows(org_a))


def test_compaction_is_per_organization_and_the_beat_task_fans_out(
    org_a, org_b, client_acme, client_b_acme
):
    from deliveries import tasks

    ingest(org_a, [make_event("LP-1", T0)])
    ingest(org_b, [make_event("LP-B1", T0)])
    with scope(organization=org_a):
        throughput.compact(org_a)
    assert rows(org_a) == [("acme", T0, 1, True)]
    assert rows(org_b) == [("acme", T0, 1, False)]  # B's deltas untouched

    assert tasks.compact_event_counts() == 1  # only B has deltas left; eager: compacted now
    assert rows(org_b) == [("acme", T0, 1, True)]
    assert tasks.compact_event_counts() == 0


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_ingests_of_one_client_and_hour_do_not_wait_for_each_other(org_a, client_acme):
    """An open transaction that inserted events must not block another ingest of the same
    client and hour (an upsert of one count row per hour would, until it commits)."""
    import threading

    from django.db import connections

    inserted, release = threading.Event(), threading.Event()
    errors = []

    def first_writer():
        try:
            with transaction.atomic():
                ingest(org_a, [make_event("LP-1", T0)])
                inserted.set()
                release.wait(10)
        except Exception as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    thread = threading.Thread(target=first_writer)
    thread.start()
    try:
        assert inserted.wait(10)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '1s'")
            ingest(org_a, [make_event("LP-2", T0 + timedelta(minutes=5))])  # same hour
    finally:
        release.set()
        thread.join(10)
    assert errors == []
    assert counts(org_a) == {("acme", T0): 2}


@pytest.mark.postgres
def test_hours_are_utc_whatever_the_session_time_zone(org_a, client_acme):
    """A trigger that truncated in the session's zone would put 09:40 UTC into 09:30 UTC."""
    with connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'Asia/Kolkata'")
        try:
            ingest(org_a, [make_event("LP-1", T0 + timedelta(minutes=40))])
            ingest(org_a, [make_event(f"LP-{i}", T0 + timedelta(minutes=i)) for i in (2, 3)])
        finally:
            cursor.execute("SET TIME ZONE 'UTC'")

    assert counts(org_a) == {("acme", T0): 3}


# --- 2. count_events -------------------------------------------------------------------------


@pytest.fixture
def spread(org_a, org_b, client_acme, client_beta, client_b_acme):
    """Events of A around 09:00-12:00 (some exactly on hour and half-hour boundaries), a
    Meshline entry naming Acme, and B's events in the same hours."""
    offsets = [
        timedelta(0),
        timedelta(minutes=29, seconds=59, microseconds=999_999),
        timedelta(minutes=30),
        timedelta(minutes=30, microseconds=1),
        timedelta(minutes=59, seconds=59),
        HOUR,
        HOUR + timedelta(minutes=15),
        2 * HOUR + timedelta(minutes=30),
        2 * HOUR + timedelta(minutes=45),
        3 * HOUR,
        3 * HOUR + timedelta(minutes=1),
    ]
    a_events = [make_event(f"LP-{i}", T0 + offset) for i, offset in enumerate(offsets)]
    a_events += [
        make_event(f"BR-{i}", T0 + offset, client="beta") for i, offset in enumerate(offsets[::2])
    ]
    ingest(org_a, a_events)
    with scope(organization=org_a):
        deliverable = Deliverable.objects.get(organization=org_a, deliverable_id="LP-0")
        trail.record(
            org_a,
            "ticket.opened",
            key="ticket:spread",
            payload={},
            deliverable=deliverable,
            occurred_at=T0 + timedelta(minutes=45),
        )
    ingest(org_b, [make_event(f"B-{i}", T0 + offset) for i, offset in enumerate(offsets)])
    return offsets


def _sinces(offsets):
    """Every event's instant, a microsecond either side, hour and half-hour boundaries."""
    moments = {T0 - HOUR, T0 + 5 * HOUR}
    for offset in offsets:
        for delta in (timedelta(0), timedelta(microseconds=1), -timedelta(microseconds=1)):
            moments.add(T0 + offset + delta)
    for minutes in range(0, 4 * 60, 30):
        moments.add(T0 + timedelta(minutes=minutes))
    moments.add(T0 + timedelta(minutes=7, seconds=3, microseconds=250))
    return sorted(moments)


def test_count_events_is_exact_for_any_since(org_a, client_acme, client_beta, spread):
    checked = 0
    for since in _sinces(spread):
        for client in (None, client_acme, client_beta):
            with scope(organization=org_a):
                got = throughput.count_events(org_a, since, client)
            assert got == trail_count(org_a, since, client), (since, client)
            checked += 1
    assert checked > 60
    # By hand, from the fixture: Acme's 11 events, of which 09:00 and 09:29:59.999999 are
    # before 09:30 and 09:30 itself is in; Beta's 6 are at offsets 0, 2, 4, 6, 8, 10
    # (09:00, 09:30, 09:59:59, 10:15, 11:45, 12:01), 5 of them from 09:30 on.
    with scope(organization=org_a):
        assert throughput.count_events(org_a, T0 + timedelta(minutes=30)) == 9 + 5
        assert throughput.count_events(org_a, T0 + timedelta(minutes=30), client_acme) == 9
        assert throughput.count_events(org_a, T0 + timedelta(minutes=30), client_beta) == 5
        assert throughput.count_events(org_a, T0 - HOUR) == 11 + 6


def test_another_organizations_events_never_count(org_a, org_b, client_b_acme, spread):
    with scope(organization=org_b):
        b_total = throughput.count_events(org_b, T0 - HOUR)
        b_acme = throughput.count_events(org_b, T0 + timedelta(minutes=30), client_b_acme)
    assert b_total == len(spread)  # B has only its own events
    assert b_acme == trail_count(org_b, T0 + timedelta(minutes=30), client_b_acme) == 9
    with scope(organization=org_a):
        a_total = throughput.count_events(org_a, T0 - HOUR)
        # B's client passed to A's count (a mix-up of tenants) finds nothing of A's or B's.
        assert throughput.count_events(org_a, T0 - HOUR, client_b_acme) == 0
    assert a_total == trail_count(org_a, T0 - HOUR) == len(spread) + 6


def test_hourly_and_daily_counts_match_the_trail(org_a, client_acme, client_beta, spread):
    with scopes_disabled():
        events = list(
            Event.objects.filter(organization=org_a)
            .exclude(source=EventSource.MESHLINE)
            .values_list("client_id", "occurred_at")
        )
    for client in (None, client_acme, client_beta):
        mine = [at for pk, at in events if client is None or pk == client.pk]
        by_hour = Counter(at.replace(minute=0, second=0, microsecond=0) for at in mine)
        by_day = Counter(at.astimezone(UTC).date() for at in mine)
        by_berlin_day = Counter(at.astimezone(BERLIN).date() for at in mine)
        start = T0 + timedelta(minutes=30)  # the hour of start, 09:00, is included
        with scope(organization=org_a):
            hourly = throughput.hourly_counts(org_a, start, client)
            daily = throughput.daily_counts(org_a, T0 - timedelta(days=1), client)
            berlin = throughput.daily_counts(org_a, T0 - timedelta(days=1), client, tz=BERLIN)
        assert hourly == {h: n for h, n in by_hour.items() if h >= T0}
        assert daily == dict(by_day)
        assert berlin == dict(by_berlin_day)
    assert throughput.floor_hour(T0 + timedelta(minutes=59, seconds=1)) == T0


# --- 3. the dashboard page -------------------------------------------------------------------


@pytest.fixture
def recent(org_a, org_b, client_acme, client_beta, client_b_acme):
    """Events relative to now, well clear of the 24 h and 7 d edges (minutes, not ms).

    Returns [(client reference, occurred_at)] of A's submitted events.
    """
    now = timezone.now()
    ago = [
        ("acme", timedelta(minutes=5)),
        ("beta", timedelta(minutes=70)),
        ("acme", timedelta(hours=5, minutes=10)),
        ("acme", timedelta(hours=23, minutes=50)),
        ("acme", timedelta(hours=24, minutes=10)),
        ("beta", timedelta(days=3)),
        ("acme", timedelta(days=6, hours=23, minutes=50)),
        ("acme", timedelta(days=7, minutes=10)),
        ("beta", timedelta(days=20)),
    ]
    submitted = [(ref, now - delta) for ref, delta in ago]
    ingest(org_a, [make_event(f"D-{i}", at, client=ref) for i, (ref, at) in enumerate(submitted)])
    with scope(organization=org_a):
        deliverable = Deliverable.objects.get(organization=org_a, deliverable_id="D-0")
        trail.record(  # Meshline's own entry, naming Acme, inside both windows
            org_a, "ticket.opened", key="ticket:recent", payload={}, deliverable=deliverable
        )
    ingest(org_b, [make_event(f"B-{i}", now - timedelta(minutes=i + 1)) for i in range(4)])
    return submitted


def _in_window(submitted, since, ref=None):
    return sum(1 for r, at in submitted if at >= since and (ref is None or r == ref))


def test_dashboard_numbers_are_the_events_in_the_last_24_hours_and_7_days(as_member, recent):
    response = as_member.get(DASHBOARD)
    assert response.status_code == 200
    now = response.context["scope"].now
    expected_24h = _in_window(recent, now - timedelta(hours=24))
    expected_7d = _in_window(recent, now - timedelta(days=7))
    assert (expected_24h, expected_7d) == (4, 7)  # the fixture straddles both edges
    assert response.context["last_24h"] == expected_24h
    assert response.context["last_7d"] == expected_7d
    content = response.content.decode()
    assert f'<span class="n">{expected_24h}</span> events in 24 h' in content
    assert f'<span class="n">{expected_7d}</span> events in 7 days' in content


def test_client_filter_narrows_the_numbers(as_member, recent):
    unfiltered = as_member.get(DASHBOARD).context
    totals = {"last_24h": 0, "last_7d": 0}
    for ref in ("acme", "beta"):
        response = as_member.get(DASHBOARD, {"client": ref})
        assert response.status_code == 200
        assert response.context["scope"].client.client_id == ref
        now = response.context["scope"].now
        assert response.context["last_24h"] == _in_window(recent, now - timedelta(hours=24), ref)
        assert response.context["last_7d"] == _in_window(recent, now - timedelta(days=7), ref)
        for key in totals:
            assert 0 < response.context[key] < unfiltered[key]
            totals[key] += response.context[key]
    # A's only two clients add up to the unfiltered numbers.
    assert totals == {"last_24h": unfiltered["last_24h"], "last_7d": unfiltered["last_7d"]}


@pytest.mark.parametrize(("period", "bars"), [("24h", 24), ("7d", 7), ("30d", 30)])
def test_period_chart_has_one_bar_per_hour_or_day(as_member, recent, period, bars):
    response = as_member.get(DASHBOARD, {"period": period})
    assert response.status_code == 200
    chart = response.context["chart"]
    now = response.context["scope"].now
    assert len(chart["bars"]) == bars
    assert response.content.decode().count("<rect ") == bars
    if period == "24h":
        start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
        bucket = lambda at: at.replace(minute=0, second=0, microsecond=0)  # noqa: E731
        fmt, step = "%H:00", HOUR
    else:
        start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=bars - 1)
        bucket = lambda at: at.replace(hour=0, minute=0, second=0, microsecond=0)  # noqa: E731
        fmt, step = "%b %d", timedelta(days=1)
    per_bucket = Counter(bucket(at) for _ref, at in recent if at >= start)
    expected = [per_bucket.get(start + step * i, 0) for i in range(bars)]
    assert [bar["value"] for bar in chart["bars"]] == expected
    assert [bar["label"] for bar in chart["bars"]] == [
        (start + step * i).strftime(fmt) for i in range(bars)
    ]
    assert chart["total"] == sum(expected) > 0


def test_the_chart_counts_the_organizations_days_and_hours(as_member, org_a, client_acme):
    """A Berlin agency's 00:30 is 23:30 UTC the day before: it counts on the Berlin day."""
    org_a.timezone = "Europe/Berlin"
    org_a.save(update_fields=["timezone"])
    today = timezone.now().astimezone(BERLIN).date()
    two_days_ago = datetime.combine(today - timedelta(days=2), datetime.min.time(), BERLIN)
    just_after = two_days_ago + timedelta(minutes=30)  # 00:30 Berlin, the day before in UTC
    just_before = two_days_ago - timedelta(minutes=30)  # 23:30 Berlin, three days ago
    ingest(org_a, [make_event("LP-1", just_after), make_event("LP-2", just_before)])

    chart = as_member.get(DASHBOARD, {"period": "7d"}).context["chart"]
    by_label = {bar["label"]: bar["value"] for bar in chart["bars"]}
    assert by_label[(today - timedelta(days=2)).strftime("%b %d")] == 1
    assert by_label[(today - timedelta(days=3)).strftime("%b %d")] == 1
    assert chart["bars"][-1]["label"] == today.strftime("%b %d")  # the last bar is today, there

    hours = as_member.get(DASHBOARD, {"period": "24h"}).context["chart"]["bars"]
    latest = timezone.now().replace(minute=0, second=0, microsecond=0)
    assert hours[-1]["label"] == latest.astimezone(BERLIN).strftime("%H:%M")


def test_the_portal_shows_times_in_the_organizations_zone(as_member, org_a, client_acme):
    ingest(org_a, [make_event("LP-1", T0)])  # 09:00 UTC is 10:00 in Berlin in November
    assert "2026-11-02 09:00" in as_member.get("/o/org-a/events/").content.decode()
    org_a.timezone = "Europe/Berlin"
    org_a.save(update_fields=["timezone"])
    page = as_member.get("/o/org-a/events/").content.decode()
    assert "2026-11-02 10:00" in page and "2026-11-02 09:00" not in page
    # Where a time names its zone, it names the one it is shown in.
    response = as_member.get(DASHBOARD, {"period": "24h"})
    since, dashboard = response.context["scope"].since, response.content.decode()
    assert f"since {since.astimezone(BERLIN):%Y-%m-%d %H:%M %Z}" in dashboard
    assert " UTC" not in dashboard


def test_chart_follows_the_client_filter(as_member, recent):
    response = as_member.get(DASHBOARD, {"period": "30d", "client": "beta"})
    now = response.context["scope"].now
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=29)
    assert response.context["chart"]["total"] == _in_window(recent, start, "beta") == 3


def test_unknown_client_is_a_form_error_next_to_the_field(as_member, recent):
    response = as_member.get(DASHBOARD, {"client": "nobody"})
    assert response.status_code == 200
    assert response.context["form"].errors["client"] == ["No client 'nobody' in this organization."]
    content = unescape(response.content.decode())
    field = re.search(r'<input id="id_client"[^>]*>\s*<span[^>]*>[^<]*</span>', content)
    assert field is not None, content
    assert 'aria-invalid="true"' in field.group(0)
    assert 'aria-describedby="client-error"' in field.group(0)
    assert (
        '<span class="field-error" id="client-error">No client \'nobody\' in this organization.</span>'
        in field.group(0)
    )


def test_numbers_link_to_the_events_list_with_the_same_client(as_member, org_a, recent):
    response = as_member.get(DASHBOARD, {"client": "acme"})
    now = response.context["scope"].now
    content = response.content.decode()
    for key, window in (("url_24h", timedelta(hours=24)), ("url_7d", timedelta(days=7))):
        url = response.context[key]
        assert f'href="{url.replace("&", "&amp;")}"' in content
        parts = urlsplit(url)
        assert parts.path == "/o/org-a/events/"
        query = parse_qs(parts.query)
        assert query["client"] == ["acme"]
        assert datetime.fromisoformat(query["occurred_after"][0]) == now - window
        assert sorted(query["source"]) == ["api", "webhook"]
        # The list behind the number shows exactly the events it counts: Meshline's own
        # entries for the same client (gate.failed, ticket.opened...) are left out.
        listed = as_member.get(url)
        assert listed.status_code == 200
        events = listed.context["events"]
        assert {e.client.client_id for e in events} == {"acme"}
        assert all(e.source != EventSource.MESHLINE for e in events)
        assert len(events) == response.context[key.replace("url_", "last_")]


def test_another_organizations_member_gets_404(as_outsider, recent):
    assert as_outsider.get(DASHBOARD).status_code == 404
    assert as_outsider.get(DASHBOARD, {"period": "24h", "client": "acme"}).status_code == 404


# --- 4. resolution_stats ---------------------------------------------------------------------

# (seconds from opening to resolution, resolve deadline in minutes or None for no deadline)
RESOLVED = [
    (1800.5, 240),  # in time
    (3 * 3600, 240),  # in time
    (4 * 3600, 240),  # exactly at the deadline: in time
    (4 * 3600 + 0.000001, 240),  # a microsecond late
    (6 * 3600, 240),  # late
    (10 * 3600, None),  # no deadline: in time
]


@pytest.fixture
def rule(org_a):
    with scope(organization=org_a):
        role = make_role(org_a)
        return make_rule(org_a, role, event_type="page.published", resolve_minutes=240)


def open_and_resolve(organization, key, opened_at, seconds, due_minutes=240):
    """A ticket opened at ``opened_at`` (no business calendar: wall-clock deadlines) and
    resolved ``seconds`` later."""
    with scope(organization=organization):
        ticket, _ = tickets.open_ticket(
            organization,
            source=TicketSource.INCIDENT,
            source_key=key,
            title=key,
            event_type="page.published",
            at=opened_at,
        )
        assert ticket.resolve_due_at == opened_at + timedelta(minutes=240)
        tickets.resolve(ticket, MESHLINE, note="done")
        Ticket.objects.filter(pk=ticket.pk).update(
            resolved_at=opened_at + timedelta(seconds=seconds),
            resolve_due_at=None
            if due_minutes is None
            else opened_at + timedelta(minutes=due_minutes),
        )
        return ticket


@pytest.fixture
def resolved_tickets(org_a, rule):
    for i, (seconds, due) in enumerate(RESOLVED):
        open_and_resolve(org_a, f"incident:{i}", T0 + timedelta(minutes=7 * i), seconds, due)
    with scope(organization=org_a):  # neither an open nor a cancelled ticket is resolved
        tickets.open_ticket(
            org_a,
            source=TicketSource.INCIDENT,
            source_key="open",
            title="open",
            event_type="page.published",
            at=T0,
        )
        cancelled, _ = tickets.open_ticket(
            org_a,
            source=TicketSource.INCIDENT,
            source_key="cancelled",
            title="cancelled",
            event_type="page.published",
            at=T0,
        )
        tickets.cancel(cancelled, MESHLINE, reason="duplicate")
    return org_a


def _resolved(organization):
    return Ticket.objects.filter(organization=organization, status=TicketStatus.RESOLVED)


def test_resolution_stats_of_known_tickets(resolved_tickets):
    org = resolved_tickets
    with scope(organization=org):
        stats = owners_dashboard.resolution_stats(_resolved(org))
        # Without the microsecond-late ticket: an odd count, the median is the middle one.
        odd = owners_dashboard.resolution_stats(_resolved(org).exclude(source_key="incident:3"))

    total = 1800.5 + 10800 + 14400 + 14400.000001 + 21600 + 36000
    assert stats.count == 6
    assert stats.mean_seconds == pytest.approx(total / 6, rel=1e-12)
    assert stats.median_seconds == pytest.approx((14400 + 14400.000001) / 2, rel=1e-12)
    assert stats.in_time == 4
    assert stats.compliance_percent == 66.7

    assert odd.count == 5
    assert odd.mean_seconds == pytest.approx((total - 14400.000001) / 5, rel=1e-12)
    assert odd.median_seconds == pytest.approx(14400, rel=1e-12)
    assert odd.in_time == 4
    assert odd.compliance_percent == 80.0


def test_resolution_stats_of_no_tickets(org_a):
    with scope(organization=org_a):
        stats = owners_dashboard.resolution_stats(_resolved(org_a))
    assert (stats.count, stats.mean_seconds, stats.median_seconds, stats.in_time) == (
        0,
        None,
        None,
        0,
    )
    assert stats.compliance_percent is None


@pytest.mark.postgres
def test_python_fallback_agrees_with_the_postgres_aggregate(resolved_tickets):
    org = resolved_tickets
    with scope(organization=org):
        querysets = [
            _resolved(org),
            _resolved(org).exclude(source_key="incident:3"),
            _resolved(org).filter(source_key__in=["incident:0", "incident:5"]),
            _resolved(org).none(),
        ]
        for queryset in querysets:
            with CaptureQueriesContext(connection) as queries:
                in_sql = owners_dashboard.resolution_stats(queryset)
            if queryset.query.is_empty():
                assert len(queries) == 0
            else:  # one aggregate query, with the median in SQL
                assert len(queries) == 1
                assert "percentile_cont" in queries.captured_queries[0]["sql"]
            with mock.patch.object(owners_dashboard.connection, "vendor", "sqlite"):
                in_python = owners_dashboard.resolution_stats(queryset)
            assert connection.vendor == "postgresql"
            assert in_sql.count == in_python.count
            assert in_sql.in_time == in_python.in_time
            assert in_sql.compliance_percent == in_python.compliance_percent
            for name in ("mean_seconds", "median_seconds"):
                sql_value, python_value = getattr(in_sql, name), getattr(in_python, name)
                if python_value is None:
                    assert sql_value is None, name
                else:
                    assert isinstance(sql_value, float), name
                    assert sql_value == pytest.approx(python_value, rel=1e-12), name


def test_dashboard_shows_mttr_and_sla_compliance(as_member, org_a, rule):
    now = timezone.now()
    # Resolved in the last 7 days: 1 h (in time), 2 h (in time), 6 h (late; due after 4 h).
    for key, hours in (("a", 1), ("b", 2), ("c", 6)):
        opened = now - timedelta(days=2) - timedelta(hours=hours)
        open_and_resolve(org_a, key, opened, hours * 3600)
    # Resolved 8 days ago after 11 h (late): only in the 30-day period.
    open_and_resolve(org_a, "old", now - timedelta(days=8, hours=11), 11 * 3600)

    response = as_member.get(DASHBOARD)  # the default period: 7 days
    assert response.context["resolved"] == 3
    content = response.content.decode()
    assert '<span class="n">3.0 h</span> MTTR (mean)' in content  # (1 + 2 + 6) / 3
    assert '<span class="n">2.0 h</span> MTTR (median)' in content
    assert '<span class="n">66.7 %</span> resolved within SLA (3)' in content  # 2 of 3

    response = as_member.get(DASHBOARD, {"period": "30d"})
    content = response.content.decode()
    assert '<span class="n">5.0 h</span> MTTR (mean)' in content  # (1 + 2 + 6 + 11) / 4
    assert '<span class="n">4.0 h</span> MTTR (median)' in content  # (2 + 6) / 2
    assert '<span class="n">50.0 %</span> resolved within SLA (4)' in content
