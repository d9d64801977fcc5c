"""Replay and backfill: which events a replay selects, the command's arguments and output,
retrying events that gave up, tenant isolation, and the admin actions.

The done-when proof (a replayed day changes nothing) is tests/deliveries/test_replay_day.py.
"""

import io
import os
from contextlib import ExitStack
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django_scopes import scope, scopes_disabled

from deliveries import tasks
from deliveries.models import EventProcessing, ProcessingStatus
from deliveries.services import ingest_events, replay
from deliveries.services.processing import MAX_ATTEMPTS, for_each_event, process_batch
from meshline import extensions

pytestmark = pytest.mark.django_db

BERLIN = ZoneInfo("Europe/Berlin")


def body(event_type, ref, occurred_at, key, client="acme"):
    payloads = {
        "intake.received": {"requested_by": "cmo@acme.example"},
        "change.requested": {"summary": "Swap the hero"},
        "asset.approved": {"asset_id": "hero"},
    }
    return {
        "event_type": event_type,
        "deliverable_id": ref,
        "client_id": client,
        "idempotency_key": key,
        "actor": {"role": "cms", "id": "wp"},
        "occurred_at": occurred_at,
        "payload": payloads[event_type],
    }


def store(organization, *bodies) -> list[str]:
    with scope(organization=organization):
        results = ingest_events(organization, list(bodies))
    assert [r.status for r in results] == ["accepted"] * len(bodies)
    return [r.event_id for r in results]


def processing_rows(*event_ids) -> dict[str, EventProcessing]:
    with scopes_disabled():
        rows = EventProcessing.objects.filter(event_id__in=event_ids)
        return {str(row.event_id): row for row in rows}


@pytest.fixture
def history(org_a, client_acme):
    """Organization A (Berlin): events on three days, two deliverables, three types;
    all processed."""
    org_a.timezone = "Europe/Berlin"
    org_a.save(update_fields=["timezone"])
    ids = dict(
        zip(
            ["d1-intake", "d2-change", "d2-late", "d3-approved", "d2-other"],
            store(
                org_a,
                body("intake.received", "LP-1", "2026-11-20T10:00:00Z", "d1-intake"),
                body("change.requested", "LP-1", "2026-11-21T09:00:00Z", "d2-change"),
                # 23:30 UTC is already the 22nd in Berlin.
                body("change.requested", "LP-1", "2026-11-21T23:30:00Z", "d2-late"),
                body("asset.approved", "LP-1", "2026-11-23T08:00:00Z", "d3-approved"),
                body("change.requested", "LP-2", "2026-11-21T12:00:00Z", "d2-other"),
            ),
            strict=True,
        )
    )
    with scope(organization=org_a):
        process_batch(org_a, list(ids.values()))
    return ids


def selected(organization, **fields) -> set[str]:
    with scope(organization=organization):
        events = replay.select_events(organization, replay.Selection(**fields))
        return {str(pk) for pk in events.values_list("pk", flat=True)}


def names(history, *keys) -> set[str]:
    return {history[key] for key in keys}


def day(text, *, end=False):
    return replay.parse_moment(text, BERLIN, end=end)


def test_filters_select_exactly_the_named_events(org_a, history):
    everything = set(history.values())
    assert selected(org_a) == everything
    # A date is a day in the organization's zone; --until a date includes that day.
    assert selected(org_a, since=day("2026-11-21"), until=day("2026-11-21", end=True)) == names(
        history, "d2-change", "d2-other"
    )
    assert selected(org_a, since=day("2026-11-22")) == names(history, "d2-late", "d3-approved")
    assert selected(org_a, until=datetime(2026, 11, 21, 9, tzinfo=UTC)) == names(
        history, "d1-intake"
    )  # until is exclusive
    assert selected(org_a, event_types=("change.requested",)) == names(
        history, "d2-change", "d2-late", "d2-other"
    )
    assert selected(
        org_a, event_types=("intake.received", "asset.approved"), deliverable_id="LP-1"
    ) == names(history, "d1-intake", "d3-approved")
    assert selected(org_a, deliverable_id="LP-2") == names(history, "d2-other")
    assert selected(org_a, failed_only=True) == set()


def test_meshline_entries_are_never_selected(org_a, client_acme, history):
    from deliveries.services import trail

    with scope(organization=org_a):
        trail.record(org_a, "gate.failed", key="k", payload={}, occurred_at=datetime.now(UTC))
    assert selected(org_a) == set(history.values())


def test_failed_only_selects_given_up_and_erroring_pending_events(org_a, history):
    with scopes_disabled():
        EventProcessing.objects.filter(event_id=history["d1-intake"]).update(
            status=ProcessingStatus.FAILED, last_error="boom"
        )
        EventProcessing.objects.filter(event_id=history["d2-change"]).update(
            status=ProcessingStatus.PENDING, last_error="boom", attempts=3
        )
        EventProcessing.objects.filter(event_id=history["d2-other"]).update(
            status=ProcessingStatus.PENDING  # pending without an error: not failing
        )
    assert selected(org_a, failed_only=True) == names(history, "d1-intake", "d2-change")


@pytest.mark.parametrize(
    ("text", "end", "expected"),
    [
        ("2026-11-21", False, datetime(2026, 11, 21, tzinfo=BERLIN)),
        ("2026-11-21", True, datetime(2026, 11, 22, tzinfo=BERLIN)),
        ("2026-11-21T10:00:00Z", False, datetime(2026, 11, 21, 10, tzinfo=UTC)),
        ("2026-11-21T10:00:00+01:00", True, datetime(2026, 11, 21, 9, tzinfo=UTC)),
    ],
)
def test_moments_are_dates_in_the_organizations_zone_or_aware_instants(text, end, expected):
    assert replay.parse_moment(text, BERLIN, end=end) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("yesterday", "is not an ISO date"),
        ("2026-13-01", "is not an ISO date"),
        ("2026-11-21T10:00:00", "has no time zone"),
        ("", "is not an ISO date"),
    ],
)
def test_bad_moments_are_refused_with_a_reason(text, message):
    with pytest.raises(replay.ReplayError, match=message):
        replay.parse_moment(text, BERLIN)


# --- the command --------------------------------------------------------------------------


def run(*args) -> str:
    out = io.StringIO()
    call_command("replay_events", *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nobody"], "No organization 'nobody'"),
        (["org-a", "--since", "last week"], "is not an ISO date"),
        (["org-a", "--until", "2026-11-21T10:00"], "has no time zone"),
        (["org-a", "--since", "2026-11-22", "--until", "2026-11-21"], "must be before until"),
        (["org-a", "--type", "page.publish"], "Unknown event type(s) for org-a: page.publish"),
        (["org-a", "--deliverable", "LP-404"], "No deliverable 'LP-404'"),
        (["org-a", "--chunk-size", "0"], "--chunk-size must be between 1 and"),
    ],
)
def test_bad_arguments_are_a_command_error(org_a, history, args, message):
    before = {k: (v.status, v.replay_count) for k, v in processing_rows(*history.values()).items()}
    with pytest.raises(CommandError) as error:
        run(*args)
    assert message in str(error.value)
    after = {k: (v.status, v.replay_count) for k, v in processing_rows(*history.values()).items()}
    assert after == before


def test_bad_arguments_exit_non_zero(org_a):
    import subprocess
    import sys

    from django.conf import settings
    from django.db import connection

    database = connection.settings_dict
    url = f"postgres://{database['USER']}@{database['HOST']}:{database['PORT']}/{database['NAME']}"
    result = subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "replay_events", "nobody"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DATABASE_URL": url},
    )
    assert result.returncode != 0
    assert "No organization 'nobody'" in result.stderr


def test_dry_run_counts_by_type_and_status_and_changes_nothing(org_a, history, monkeypatch):
    calls = []
    monkeypatch.setattr(replay.processing, "process_batch", lambda *a: calls.append(a))
    output = run("org-a", "--since", "2026-11-21", "--until", "2026-11-22", "--dry-run")
    assert "Dry run for org-a: 3 event(s) selected." in output
    assert "change.requested" in output and "processed 3" in output
    assert "intake.received" not in output
    assert calls == []
    assert {row.replay_count for row in processing_rows(*history.values()).values()} == {0}


def test_replay_reports_a_summary_and_plain_progress_off_a_terminal(org_a, history):
    output = run("org-a", "--type", "change.requested", "--chunk-size", "2")
    assert "progress: 3/3 (replayed 3, skipped 0, failed 0)" in output
    assert "Replayed org-a: selected 3, replayed 3, skipped 0, failed 0." in output
    assert "change.requested" in output and "processed 3" in output
    rows = processing_rows(*history.values())
    assert {k for k, row in rows.items() if row.replay_count == 1} == names(
        history, "d2-change", "d2-late", "d2-other"
    )
    assert {row.status for row in rows.values()} == {ProcessingStatus.PROCESSED}


def test_a_terminal_gets_a_bar_redrawn_in_place(org_a, history, monkeypatch):
    from deliveries.management.commands import replay_events

    monkeypatch.setattr(replay_events, "_isatty", lambda stream: True)
    output = run("org-a", "--chunk-size", "2")
    assert "\r[############" in output and "5/5" in output
    assert "progress:" not in output


@pytest.fixture
def faulty_step():
    """A processing step that fails for change.requested until fixed (``fault.clear()``)."""
    fault = {"on": True}

    def step(event, deliverable):
        if fault["on"] and event.event_type == "change.requested":
            raise RuntimeError("the CRM connector is misconfigured")

    with ExitStack() as stack:
        stack.enter_context(
            extensions.processing_steps.override("test.faulty", for_each_event(step))
        )
        yield fault


def test_failed_only_retries_events_that_gave_up_once_the_fault_is_fixed(
    org_a, client_acme, faulty_step
):
    ids = store(
        org_a,
        body("intake.received", "LP-1", "2026-11-20T10:00:00Z", "ok"),
        body("change.requested", "LP-1", "2026-11-21T10:00:00Z", "broken"),
    )
    with scope(organization=org_a):
        for _ in range(MAX_ATTEMPTS):  # the sweeper's retries, until it gives up
            process_batch(org_a, ids)
    rows = processing_rows(*ids)
    assert rows[ids[1]].status == ProcessingStatus.FAILED
    assert rows[ids[1]].attempts == MAX_ATTEMPTS

    # Still broken: the retry fails again, the command says so and exits non-zero; the
    # event got a fresh set of attempts (one used), so the sweeper keeps retrying it.
    with pytest.raises(CommandError, match="1 event"):
        run("org-a", "--failed-only")
    broken = processing_rows(ids[1])[ids[1]]
    assert (broken.status, broken.attempts) == (ProcessingStatus.PENDING, 1)
    assert "misconfigured" in broken.last_error

    faulty_step["on"] = False
    output = run("org-a", "--failed-only")
    assert "selected 1, replayed 1, skipped 0, failed 0" in output
    rows = processing_rows(*ids)
    assert (rows[ids[1]].status, rows[ids[1]].last_error) == (ProcessingStatus.PROCESSED, "")
    assert rows[ids[1]].replay_count == 2
    assert (rows[ids[0]].replay_count, rows[ids[0]].attempts) == (0, 1)  # never selected


def test_replaying_one_organization_never_touches_another(
    org_a, org_b, client_acme, client_b_acme, history, steps_seen
):
    b_ids = store(org_b, body("change.requested", "LP-1", "2026-11-21T09:00:00Z", "d2-change"))
    with scope(organization=org_b):
        process_batch(org_b, b_ids)
    steps_seen.clear()
    run("org-a")
    assert set(steps_seen) == set(history.values())
    assert processing_rows(*b_ids)[b_ids[0]].replay_count == 0
    # Another organization's ids handed to org A's replay are ignored.
    with scope(organization=org_a):
        outcome = replay.replay_chunk(org_a, b_ids)
    assert (outcome.selected, sorted(steps_seen)) == (0, sorted(history.values()))
    assert processing_rows(*b_ids)[b_ids[0]].replay_count == 0


@pytest.fixture
def steps_seen():
    seen: list[str] = []

    def step(event, deliverable):
        seen.append(str(event.pk))

    with extensions.processing_steps.override("test.seen", for_each_event(step)):
        yield seen


# --- the admin ----------------------------------------------------------------------------

CHANGELIST = "/admin/deliveries/event/"


@pytest.fixture
def as_owner(client, owner):
    client.force_login(owner)
    return client


def act(client, action, event_ids):
    response = client.post(
        CHANGELIST,
        {"action": action, "_selected_action": event_ids, "index": 0},
        follow=True,
    )
    assert response.status_code == 200
    return [str(m) for m in response.context["messages"]]


def test_admin_replay_queues_the_selected_events(as_owner, org_a, history, steps_seen):
    chosen = [history["d2-change"], history["d3-approved"]]
    messages = act(as_owner, "replay_processing", chosen)
    assert messages == ["Queued 2 event(s) for processing (replay)."]
    # The queue is eager in tests: the worker's work happened.
    assert sorted(steps_seen) == sorted(chosen)
    rows = processing_rows(*chosen)
    assert {(r.status, r.replay_count) for r in rows.values()} == {(ProcessingStatus.PROCESSED, 1)}


def test_admin_retry_takes_only_the_failed_events(as_owner, org_a, history, steps_seen):
    with scopes_disabled():
        EventProcessing.objects.filter(event_id=history["d2-late"]).update(
            status=ProcessingStatus.FAILED, attempts=MAX_ATTEMPTS, last_error="boom"
        )
    messages = act(as_owner, "retry_failed_processing", [history["d2-late"], history["d1-intake"]])
    assert messages == ["Queued 1 event(s) for processing (retry)."]
    assert steps_seen == [history["d2-late"]]
    row = processing_rows(history["d2-late"])[history["d2-late"]]
    assert (row.status, row.attempts, row.last_error) == (ProcessingStatus.PROCESSED, 1, "")


def test_admin_replay_survives_a_broker_outage(as_owner, org_a, history, monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.process_events, "apply_async", down)
    messages = act(as_owner, "replay_processing", [history["d2-change"]])
    assert "the queue could not be reached for 1" in messages[0]
    row = processing_rows(history["d2-change"])[history["d2-change"]]
    # Pending in the database: the sweeper dispatches it once the broker is back.
    assert (row.status, row.replay_count) == (ProcessingStatus.PENDING, 1)


def test_admin_replay_of_another_organizations_events_does_nothing(
    as_owner, org_b, client_b_acme, history, steps_seen
):
    b_ids = store(org_b, body("change.requested", "LP-9", "2026-11-21T09:00:00Z", "b-1"))
    with scope(organization=org_b):
        process_batch(org_b, b_ids)
    steps_seen.clear()
    messages = act(as_owner, "replay_processing", b_ids)
    assert messages == [
        "Nothing to replay: no submitted event was selected (Meshline's own entries are "
        "never replayed)."
    ]
    assert steps_seen == []
    assert processing_rows(*b_ids)[b_ids[0]].replay_count == 0
    assert as_owner.get(f"{CHANGELIST}{b_ids[0]}/change/").status_code in (302, 404)


def test_admin_event_list_shows_and_filters_processing_status(as_owner, org_a, history):
    with scopes_disabled():
        EventProcessing.objects.filter(event_id=history["d2-late"]).update(
            status=ProcessingStatus.FAILED
        )
    response = as_owner.get(CHANGELIST, {"processing__status__exact": "failed"})
    assert response.status_code == 200
    assert [str(e.pk) for e in response.context["cl"].result_list] == [history["d2-late"]]
    assert "Failed" in response.content.decode()


def test_replay_keeps_the_order_events_happened_in(org_a, history, steps_seen):
    with scope(organization=org_a):
        replay.replay(org_a, replay.Selection(deliverable_id="LP-1"), chunk_size=2)
    assert steps_seen == [history[k] for k in ("d1-intake", "d2-change", "d2-late", "d3-approved")]


def test_chunks_page_through_a_shrinking_failed_only_selection(org_a, history):
    with scopes_disabled():
        EventProcessing.objects.filter(organization=org_a).update(
            status=ProcessingStatus.FAILED, last_error="boom"
        )
    with scope(organization=org_a):
        outcome = replay.replay(org_a, replay.Selection(failed_only=True), chunk_size=2)
    assert (outcome.selected, outcome.replayed) == (5, 5)
    assert sum(sum(c.values()) for c in outcome.by_type.values()) == 5


def test_replayed_at_is_the_replays_time(org_a, history):
    moment = datetime(2027, 1, 5, 12, tzinfo=UTC)
    with scope(organization=org_a):
        replay.replay(org_a, replay.Selection(deliverable_id="LP-2"), now=lambda: moment)
    row = processing_rows(history["d2-other"])[history["d2-other"]]
    assert (row.replayed_at, row.enqueued_at) == (moment, moment)


# --- the portal ---------------------------------------------------------------------------


def retry_url(event_id, org="org-a"):
    return f"/o/{org}/events/{event_id}/retry/"


@pytest.fixture
def failed(org_a, history):
    with scopes_disabled():
        EventProcessing.objects.filter(event_id=history["d2-late"]).update(
            status=ProcessingStatus.FAILED, attempts=MAX_ATTEMPTS, last_error="RuntimeError: boom"
        )
    return history["d2-late"]


def test_portal_admin_retries_a_failed_event(as_owner, failed, steps_seen):
    listing = as_owner.get("/o/org-a/events/?processing=failed")
    assert retry_url(failed) in listing.content.decode()
    response = as_owner.post(
        retry_url(failed), {"next": "/o/org-a/events/?processing=failed"}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/o/org-a/events/?processing=failed"
    assert "queued for processing again" in response.content.decode()
    assert steps_seen == [failed]
    row = processing_rows(failed)[failed]
    assert (row.status, row.attempts, row.replay_count) == (ProcessingStatus.PROCESSED, 1, 1)


def test_portal_retry_of_an_event_that_is_not_failing_changes_nothing(
    as_owner, history, steps_seen
):
    event_id = history["d1-intake"]
    response = as_owner.post(retry_url(event_id), follow=True)
    assert "not failing: nothing to retry" in response.content.decode()
    assert steps_seen == []
    assert processing_rows(event_id)[event_id].replay_count == 0


def test_portal_retry_is_for_admins_and_this_organization_only(
    client, member, as_outsider, failed, steps_seen
):
    client.force_login(member)
    assert retry_url(failed) not in client.get("/o/org-a/events/").content.decode()
    assert client.post(retry_url(failed)).status_code == 403
    assert as_outsider.post(retry_url(failed)).status_code == 404
    assert as_outsider.post(retry_url(failed, org="org-b")).status_code == 404
    assert client.post(retry_url("not-a-uuid")).status_code in (403, 404)
    assert steps_seen == []
    assert processing_rows(failed)[failed].status == ProcessingStatus.FAILED


def test_portal_retry_answers_only_post(as_owner, failed):
    assert as_owner.get(retry_url(failed)).status_code == 405
    assert as_owner.post(retry_url("not-a-uuid")).status_code == 404
