"""The done-when of replay (issue 15): a replayed day changes nothing.

The demo organization (owner map, rotas, gates, billing, flows, a few weeks of history) gets
one more realistic day: a brief, a scope, change requests beyond it and their flow runs, an
oversize asset, a page that fails an enforced gate (a ticket opens), a sitemap, a search
export, a CRM touch, an outbound subscription. The day is processed, then the beat's
sweeps run, and every row of every table that processing can write is snapshotted. The
day is replayed twice (the clock moved on each time, so any rewrite would show in its
timestamps), then the whole history once: every snapshot is identical.
"""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.apps import apps
from django.core.management import call_command
from django_scopes import scope, scopes_disabled

from billing.models import BillableItem
from connectors.models import OutboundDelivery, Subscription
from deliveries.demo import seed_demo
from deliveries.models import Event, EventProcessing, ProcessingStatus
from deliveries.services import ingest_events
from deliveries.services.processing import process_batch
from flows.models import FlowRun, RunState
from flows.services.runs import breach_due_runs
from gates.models import GateEvaluation, Outcome
from gates.services import expire_sitemap_timers
from owners.models import Ticket, TicketSource
from reporting.models import CrmTouch, SearchPerformance

pytestmark = pytest.mark.django_db

# The clock is frozen: the demo anchors its history to "now", the day is the one before.
NOW = datetime(2027, 3, 10, 17, 0, tzinfo=UTC)
DAY = "2027-03-09"
EFFECT_APPS = ("deliveries", "owners", "gates", "billing", "flows", "reporting", "connectors")
# Processing bookkeeping that a replay is meant to change.
REPLAY_BOOKKEEPING = {"attempts", "enqueued_at", "processed_at", "replay_count", "replayed_at"}

PAGE_WITHOUT_JSONLD = (
    "<!doctype html><html><head><title>Acme Winter Boots</title>"
    '<meta name="description" content="Winter boots for every trail, from the Acme team.">'
    '<link rel="canonical" href="https://acme.example/winter-boots">'
    '<meta property="og:title" content="Winter boots"><meta property="og:description" '
    'content="Winter boots"><meta property="og:image" content="https://acme.example/b.jpg">'
    "</head><body><h1>Acme Winter Boots</h1><p>Boots.</p></body></html>"
)


def at(hour: int, minute: int = 0) -> str:
    return f"{DAY}T{hour:02d}:{minute:02d}:00Z"


def event(event_type, ref, when, payload, key, client="acme"):
    return {
        "event_type": event_type,
        "deliverable_id": ref,
        "client_id": client,
        "idempotency_key": f"day-{key}",
        "actor": {"role": "cms", "id": "replay-test"},
        "occurred_at": when,
        "payload": payload,
    }


def the_day() -> list[dict]:
    lp, other = "LP-7001", "LP-7002"
    url = "https://acme.example/winter-boots"
    return [
        event(
            "intake.received",
            lp,
            at(7),
            {
                "requested_by": "cmo@acme.example",
                "deliverable_type": "landing_page",
                "title": "Winter boots",
            },
            "intake",
        ),
        event(
            "scope.accepted", lp, at(8), {"limits": {"revisions": 1, "asset_size_mb": 10}}, "scope"
        ),
        # change-request runs: one completed by an approval, a second still running.
        event("change.requested", lp, at(9), {"summary": "New hero"}, "change-1"),
        event(
            "asset.uploaded",
            lp,
            at(9, 30),
            {
                "asset_id": "hero",
                "filename": "hero.jpg",
                "size_bytes": 14_000_000,  # beyond asset_size_mb: billable
                "mime_type": "image/jpeg",
                "revision": 1,
            },
            "asset",
        ),
        event("asset.approved", lp, at(10), {"asset_id": "hero", "approved_by": "brand"}, "ok"),
        event("change.requested", lp, at(11), {"summary": "Shorter copy"}, "change-2"),
        event("change.requested", lp, at(12), {"summary": "Another CTA"}, "change-3"),
        # Enforced JSON-LD gate fails: a ticket opens.
        event(
            "page.published",
            lp,
            at(13),
            {"url": url, "schema_version": 2, "html": PAGE_WITHOUT_JSONLD},
            "page",
        ),
        event(
            "sitemap.submitted",
            lp,
            at(14),
            {"sitemap_url": "https://acme.example/sitemap.xml", "urls": [url]},
            "sitemap",
        ),
        # A qualified lead without a contact: lead-to-brief cannot start, a ticket asks.
        event(
            "crm.touch",
            other,
            at(15),
            {"touch_id": "T-7002", "stage": "mql", "deliverable_type": "brief"},
            "lead",
        ),
        event(
            "search_export.processed",
            lp,
            at(22),
            {"date": DAY, "url": url, "impressions": 900, "clicks": 30},
            "search",
        ),
        event(
            "crm.touch",
            lp,
            at(22, 30),
            {"touch_id": "T-7001", "touch_type": "visit", "landing_url": url},
            "touch",
        ),
    ]


def snapshot(organization) -> dict:
    """Every row of every table processing may write, as values (bookkeeping left out)."""
    state = {}
    with scopes_disabled():
        for app_label in EFFECT_APPS:
            for model in apps.get_app_config(app_label).get_models():
                if not any(f.name == "organization" for f in model._meta.fields):
                    continue
                rows = model._default_manager.filter(organization=organization).order_by("pk")
                values = [
                    {k: v for k, v in row.items() if k not in REPLAY_BOOKKEEPING}
                    if model is EventProcessing
                    else row
                    for row in rows.values()
                ]
                state[model._meta.label] = values
    return state


def differences(before: dict, after: dict) -> dict:
    changed = {}
    for label in before.keys() | after.keys():
        old, new = before.get(label, []), after.get(label, [])
        if old != new:
            changed[label] = {
                "rows": (len(old), len(new)),
                "first change": next(
                    ((a, b) for a, b in zip(old, new, strict=False) if a != b), None
                ),
            }
    return changed


@pytest.fixture
def day(django_capture_on_commit_callbacks):
    """The demo organization and one more day of its work, processed; the clock frozen."""
    with (
        time_machine.travel(NOW - timedelta(hours=1), tick=False),
        django_capture_on_commit_callbacks(execute=True),
    ):
        organization = seed_demo()["organization"]
    with time_machine.travel(NOW, tick=False), scope(organization=organization):
        Subscription.objects.create(
            organization=organization,
            name="Warehouse",
            url="https://hooks.acme.example/meshline",
            event_types=["page.published", "ticket.opened", "gate.failed"],
            paused=True,  # deliveries are created and kept; nothing is sent
        )
        with django_capture_on_commit_callbacks(execute=True):
            results = ingest_events(organization, the_day())
            assert [r.status for r in results] == ["accepted"] * len(results)
            outcome = process_batch(organization, [r.event_id for r in results])
            assert outcome.failed == 0
        with django_capture_on_commit_callbacks(execute=True):
            expire_sitemap_timers(organization, NOW)
            breach_due_runs(organization, NOW)
    return organization


def replay_at(moment, *args, capture):
    with time_machine.travel(moment, tick=False), capture(execute=True):
        call_command("replay_events", *args, stdout=open("/dev/null", "w"))  # noqa: SIM115


def assert_the_day_has_every_kind_of_effect(day):
    """The fixture is realistic: guards the replay tests against proving nothing."""
    with scope(organization=day):
        lp = {"deliverable__deliverable_id": "LP-7001"}
        jsonld = GateEvaluation.objects.get(
            gate__slug="jsonld", event__event_type="page.published", **lp
        )
        assert jsonld.outcome == Outcome.FAIL and jsonld.ticket is not None
        assert BillableItem.objects.filter(**lp).values_list("clause", flat=True).count() >= 2
        assert set(BillableItem.objects.filter(**lp).values_list("clause", flat=True)) == {
            "revisions",
            "asset_size_mb",
        }
        runs = FlowRun.objects.filter(flow__slug="change-request")
        assert set(runs.filter(**lp).values_list("state", flat=True)) == {
            RunState.COMPLETED,
            RunState.RUNNING,
        }
        assert FlowRun.objects.filter(
            flow__slug="lead-to-brief",
            deliverable__deliverable_id="LP-7002",
            state=RunState.EXCEPTION,
        ).exists()
        assert Ticket.objects.filter(
            source=TicketSource.FLOW, deliverable__deliverable_id="LP-7002"
        ).exists()
        assert SearchPerformance.objects.filter(deliverable__deliverable_id="LP-7001").exists()
        assert CrmTouch.objects.filter(touch_id="T-7001").exists()
        assert OutboundDelivery.objects.filter(event__event_type="ticket.opened").exists()
        assert not EventProcessing.objects.exclude(status=ProcessingStatus.PROCESSED).exists()


def test_replaying_a_day_twice_changes_nothing(day, django_capture_on_commit_callbacks):
    assert_the_day_has_every_kind_of_effect(day)
    before = snapshot(day)
    with scope(organization=day):
        day_events = Event.objects.filter(
            organization=day, idempotency_key__startswith="day-"
        ).count()
    for hours in (2, 3):
        replay_at(
            NOW + timedelta(hours=hours),
            day.slug,
            "--since",
            DAY,
            "--until",
            DAY,
            "--chunk-size",
            "5",
            capture=django_capture_on_commit_callbacks,
        )
        assert differences(before, snapshot(day)) == {}
    with scope(organization=day):
        processing = EventProcessing.objects.filter(organization=day)
        assert processing.filter(event__idempotency_key__startswith="day-").count() == day_events
        assert set(
            processing.filter(event__idempotency_key__startswith="day-").values_list(
                "replay_count", flat=True
            )
        ) == {2}
        assert (
            not processing.filter(replay_count__gt=0)
            .exclude(status=ProcessingStatus.PROCESSED)
            .exists()
        )


def test_replaying_the_whole_history_changes_nothing(day, django_capture_on_commit_callbacks):
    before = snapshot(day)
    replay_at(NOW + timedelta(hours=5), day.slug, capture=django_capture_on_commit_callbacks)
    assert differences(before, snapshot(day)) == {}
