"""Batched processing with the real steps: statements per batch, not per event; order per
deliverable; a batch processed twice has the effect of once."""

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_scopes import scope

from deliveries.models import Deliverable, EventProcessing, LifecycleState, ProcessingStatus
from deliveries.services import ingest_events
from deliveries.services.processing import process_batch
from gates.models import CheckName, GateEvaluation, GateTicketLink, Outcome
from owners.models import Notification, Ticket, TicketStatus
from tests.gates.conftest import event, page, published

pytestmark = pytest.mark.django_db

T0 = timezone.now().replace(microsecond=0) - timedelta(days=1)


def store(organization, events) -> list[str]:
    """Ingest without processing (no on-commit dispatch inside the test's transaction)."""
    with scope(organization=organization):
        results = ingest_events(organization, events)
    assert {r.status for r in results} == {"accepted"}, [r.as_dict() for r in results]
    return [r.event_id for r in results]


def mixed(refs, *, round_: int) -> list[dict]:
    """Per deliverable: a page missing its JSON-LD (fails schema_check), a good page on
    another and an asset upload: the verdicts a delivery stream is made of."""
    events = []
    for i, ref in enumerate(refs):
        at = T0 + timedelta(minutes=round_ * 100 + i)
        failing = int(ref.split("-")[1]) % 2 == 0  # the same pages fail in every round
        html = page("missing_jsonld.html") if failing else page("product_landing.html")
        events.append(published(ref, html, at=at, key=f"r{round_}-{ref}-page"))
        events.append(
            event(
                "asset.uploaded",
                ref,
                {
                    "asset_id": f"{ref}-hero",
                    "filename": "hero.jpg",
                    "size_bytes": 120_000,
                    "mime_type": "image/jpeg",
                    "revision": 1,
                },
                at=at + timedelta(seconds=30),
                key=f"r{round_}-{ref}-asset",
            )
        )
    return events


def queries_to_process(organization, ids) -> int:
    with scope(organization=organization), CaptureQueriesContext(connection) as queries:
        result = process_batch(organization, ids)
    assert result.processed == len(ids) and result.failed == 0
    return len(queries.captured_queries)


def test_a_batch_costs_the_same_statements_for_5_or_20_deliverables(
    org_a, client_acme, owner_map, make_gate
):
    make_gate(CheckName.SCHEMA_CHECK)
    make_gate(CheckName.SEO_TAGS_PRESENT)
    small = [f"LP-{i}" for i in range(5)]
    large = [f"LP-{i}" for i in range(5, 25)]
    # First round: every deliverable is created and its failing pages open their tickets.
    process_batch(org_a, store(org_a, mixed(small + large, round_=0)))
    with scope(organization=org_a):
        opened = Ticket.objects.filter(organization=org_a).count()
    assert opened == 13  # the even-numbered pages of 25 failed schema_check

    # Second round: failures keep their open tickets, passes have none to resolve.
    few = queries_to_process(org_a, store(org_a, mixed(small, round_=1)))
    many = queries_to_process(org_a, store(org_a, mixed(large, round_=1)))

    assert few == many, (few, many)
    with scope(organization=org_a):
        assert Ticket.objects.filter(organization=org_a).count() == opened
        assert GateEvaluation.objects.filter(organization=org_a).count() == 2 * 2 * 25


def test_a_deliverables_events_are_judged_in_the_order_they_happened(
    org_a, client_acme, owner_map, make_gate
):
    """Stored newest first, one batch: the failure opens the ticket, the later fix resolves
    it, and the lifecycle ends where the last event left it."""
    make_gate(CheckName.SCHEMA_CHECK)
    fixed = published("LP-1", page("product_landing.html"), at=T0 + timedelta(hours=2))
    broken = published("LP-1", page("missing_jsonld.html"), at=T0 + timedelta(hours=1))
    intake = event("intake.received", "LP-1", {"requested_by": "cmo@acme.example"}, at=T0)

    process_batch(org_a, store(org_a, [fixed, broken, intake]))

    with scope(organization=org_a):
        outcomes = list(
            GateEvaluation.objects.filter(organization=org_a)
            .order_by("evaluated_at")
            .values_list("outcome", "event__occurred_at")
        )
        [ticket] = Ticket.objects.filter(organization=org_a)
        deliverable = Deliverable.objects.get(organization=org_a, deliverable_id="LP-1")
    assert outcomes == [(Outcome.FAIL, occurred(broken)), (Outcome.PASS, occurred(fixed))]
    assert ticket.status == "resolved"
    assert deliverable.state == LifecycleState.PUBLISHED
    assert deliverable.last_event_at == T0 + timedelta(hours=2)


def occurred(body) -> datetime:
    return datetime.fromisoformat(body["occurred_at"])


def test_a_batch_processed_twice_has_the_effect_of_once(org_a, client_acme, owner_map, make_gate):
    make_gate(CheckName.SCHEMA_CHECK)
    ids = store(org_a, mixed(["LP-1", "LP-2", "LP-3"], round_=0))
    assert process_batch(org_a, ids).processed == 6

    def effects():
        with scope(organization=org_a):
            return (
                GateEvaluation.objects.filter(organization=org_a).count(),
                Ticket.objects.filter(organization=org_a).count(),
                EventProcessing.objects.filter(organization=org_a).count(),
            )

    before = effects()
    again = process_batch(org_a, ids)
    assert (again.processed, again.skipped, again.failed) == (0, 6, 0)
    # Forced to run again (what replay does): still no second verdict or ticket.
    with scope(organization=org_a):
        EventProcessing.objects.filter(event_id__in=ids).update(status=ProcessingStatus.PENDING)
    assert process_batch(org_a, ids).processed == 6
    assert effects() == before


def test_failures_opening_tickets_cost_the_same_statements_for_5_or_20_deliverables(
    org_a, client_acme, owner_map, make_gate
):
    """The first failure of each page opens its ticket: 3 tickets or 10, one batch's
    statements (the owner map, rota and calendar read once, everything written together)."""
    make_gate(CheckName.SCHEMA_CHECK)
    few = queries_to_process(org_a, store(org_a, mixed([f"LP-{i}" for i in range(5)], round_=0)))
    many = queries_to_process(
        org_a, store(org_a, mixed([f"LP-{i}" for i in range(5, 25)], round_=0))
    )

    assert few == many, (few, many)
    with scope(organization=org_a):
        tickets = list(Ticket.objects.filter(organization=org_a))
        assert len(tickets) == 13  # the even-numbered pages of 25
        assert GateTicketLink.objects.filter(organization=org_a).count() == 13
        # Every ticket told its on-duty owner, and its verdict points at it.
        assert Notification.objects.filter(organization=org_a).count() == 13
        linked = GateEvaluation.objects.filter(organization=org_a, outcome=Outcome.FAIL)
        assert {e.ticket_id for e in linked} == {t.pk for t in tickets}
    assert all(t.context["owner_role"] == "SEO Delivery Owner" for t in tickets)
    assert all(t.context["sla_deadline"] == t.resolve_due_at.isoformat() for t in tickets)


def test_in_one_batch_a_failure_opens_a_pass_resolves_and_the_next_failure_opens_again(
    org_a, client_acme, owner_map, make_gate
):
    """Failures written together never skip what a pass between them does: the pass
    resolves the ticket the first failure opened in the same batch, so the second failure
    opens a new one; a failure right after another joins its ticket."""
    make_gate(CheckName.SCHEMA_CHECK)
    broken, fixed = page("missing_jsonld.html"), page("product_landing.html")
    events = [
        published("LP-1", broken, at=T0 + timedelta(minutes=1)),
        published("LP-1", broken, at=T0 + timedelta(minutes=2)),
        published("LP-1", fixed, at=T0 + timedelta(minutes=3)),
        published("LP-1", broken, at=T0 + timedelta(minutes=4)),
    ]
    process_batch(org_a, store(org_a, events))

    with scope(organization=org_a):
        verdicts = list(
            GateEvaluation.objects.filter(organization=org_a)
            .order_by("event__occurred_at")
            .values_list("outcome", "ticket_id")
        )
        first, second = Ticket.objects.filter(organization=org_a).order_by("opened_at", "id")
        links = dict(GateTicketLink.objects.values_list("ticket_id", "evaluation_id"))
    assert [outcome for outcome, _ticket in verdicts] == [
        Outcome.FAIL,
        Outcome.FAIL,
        Outcome.PASS,
        Outcome.FAIL,
    ]
    assert [ticket for _outcome, ticket in verdicts] == [first.pk, first.pk, None, second.pk]
    assert (first.status, second.status) == (TicketStatus.RESOLVED, TicketStatus.OPEN)
    assert first.context["event_id"] == event_id_at(org_a, minute=1)
    # Opened when its failure was judged, as one by one: before the next verdict.
    with scope(organization=org_a):
        judged = dict(GateEvaluation.objects.values_list("ticket_id", "evaluated_at"))
        first_failure = GateEvaluation.objects.filter(ticket=first).earliest("evaluated_at")
    assert first.opened_at == first_failure.evaluated_at
    assert second.opened_at == judged[second.pk]
    assert set(links) == {first.pk, second.pk}


def event_id_at(organization, *, minute: int) -> str:
    with scope(organization=organization):
        return str(
            GateEvaluation.objects.get(
                organization=organization, event__occurred_at=T0 + timedelta(minutes=minute)
            ).event_id
        )


def test_failures_nobody_owns_keep_their_verdicts_and_say_why(org_a, client_acme, make_gate):
    make_gate(CheckName.SCHEMA_CHECK)  # and no owner map at all
    broken = page("missing_jsonld.html")
    process_batch(
        org_a,
        store(
            org_a,
            [
                published("LP-1", broken, at=T0),
                published("LP-1", broken, at=T0 + timedelta(minutes=1)),
                published("LP-2", broken, at=T0),
            ],
        ),
    )
    with scope(organization=org_a):
        failed = list(GateEvaluation.objects.filter(organization=org_a))
        assert not Ticket.objects.filter(organization=org_a).exists()
    assert len(failed) == 3
    assert all(e.outcome == Outcome.FAIL and e.ticket_id is None for e in failed)
    assert all(e.details["ticket_error"].startswith("No active rule matches") for e in failed)
