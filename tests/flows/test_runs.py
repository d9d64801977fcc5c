"""Flow runs through the real pipeline: ingest -> processing step -> breach sweep."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope

from deliveries.models import Event, EventProcessing, ProcessingStatus
from flows.models import FlowRun, FlowTicketLink, LinkKind, RunState
from flows.services import runs
from owners.models import OwnerRule, Ticket, TicketSource
from owners.services.escalation import escalate_due_tickets
from tests.flows.conftest import approved, at, intake, published, sitemap

pytestmark = pytest.mark.django_db


def _run(org, **filters) -> FlowRun:
    with scope(organization=org):
        return FlowRun.objects.select_related("flow").get(organization=org, **filters)


def test_trigger_starts_a_run_due_at_its_first_milestone(org_a, client_acme, make_flow, publish):
    make_flow()
    publish(org_a, intake())
    run = _run(org_a)
    assert run.state == RunState.RUNNING
    assert run.started_at == at(0)
    assert (run.due_at, run.due_for) == (at(60), "asset.approved")


def test_milestones_move_the_due_time_and_the_outcome_completes(
    org_a, client_acme, make_flow, publish
):
    make_flow()
    publish(org_a, intake(), approved(minutes=30))
    assert (_run(org_a).due_at, _run(org_a).due_for) == (at(120), "page.published")
    publish(org_a, published(minutes=60), sitemap(minutes=90))
    run = _run(org_a)
    assert run.state == RunState.COMPLETED
    assert run.completed_at == at(90)
    assert run.due_at is None
    assert set(run.reached) == {"asset.approved", "page.published", "sitemap.submitted"}


def test_breach_opens_exactly_one_ticket_for_the_flow_owner_with_the_runbook(
    org_a, client_acme, make_flow, publish, roles, member
):
    make_flow()
    publish(org_a, intake())
    with scope(organization=org_a):
        assert runs.breach_due_runs(org_a, now=at(59)) == 0  # not due yet
        assert runs.breach_due_runs(org_a, now=at(61)) == 1
        assert runs.breach_due_runs(org_a, now=at(500)) == 0  # a second sweep: nothing new
        tickets = list(Ticket.objects.filter(organization=org_a, source=TicketSource.FLOW))
    assert len(tickets) == 1
    ticket = tickets[0]
    run = _run(org_a)
    assert run.state == RunState.BREACHED
    assert (run.breached_at, run.breached_on, run.due_at) == (at(60), "asset.approved", None)
    assert ticket.owner_role == roles["flow_owner"]
    assert ticket.assignee == member
    assert ticket.context["runbook"] == "1. Chase the approver.\n2. Publish."
    assert ticket.opened_by() == {
        "kind": "flow_breach",
        "gate": None,
        "deliverable_id": "LP-1",
        "evaluation_id": None,
        "flow": "brief-to-live",
        "run_id": str(run.pk),
    }
    with scope(organization=org_a):
        assert FlowTicketLink.objects.get(organization=org_a).run == run
        assert Event.objects.filter(organization=org_a, event_type="flow.breached").count() == 1


def test_a_mass_breach_costs_the_same_statements_for_three_runs_or_nine(
    org_a, client_acme, make_flow, publish, roles, member
):
    make_flow()
    publish(org_a, *[intake(f"LP-{n}", minutes=0 if n < 3 else 10) for n in range(12)])

    def sweep(minutes) -> tuple[int, int]:
        with scope(organization=org_a), CaptureQueriesContext(connection) as queries:
            breached = runs.breach_due_runs(org_a, now=at(minutes))
        return breached, len(queries.captured_queries)

    few, many = sweep(61), sweep(71)

    assert (few[0], many[0]) == (3, 9)
    assert few[1] == many[1]
    with scope(organization=org_a):
        links = {
            link.run_id: link.ticket
            for link in FlowTicketLink.objects.filter(organization=org_a).select_related("ticket")
        }
        breached = list(FlowRun.objects.filter(organization=org_a, state=RunState.BREACHED))
        entries = Event.objects.filter(organization=org_a, event_type="flow.breached")
        assert sorted(e.payload["run_id"] for e in entries) == sorted(str(r.pk) for r in breached)
    assert len(breached) == 12 and set(links) == {r.pk for r in breached}
    for run in breached:
        ticket = links[run.pk]
        assert ticket.source_key == f"flow-run:{run.pk}:breach"
        assert ticket.owner_role == roles["flow_owner"] and ticket.assignee == member
        assert ticket.deliverable_id == run.deliverable_id


def test_a_breach_nobody_can_own_notes_why_on_the_run(org_a, client_acme, make_flow, publish):
    make_flow(owner_role=None)
    with scope(organization=org_a):
        OwnerRule.objects.filter(organization=org_a).update(is_active=False)
    publish(org_a, intake())

    with scope(organization=org_a):
        assert runs.breach_due_runs(org_a, now=at(61)) == 1
        assert not Ticket.objects.filter(organization=org_a).exists()
    run = _run(org_a)
    assert run.state == RunState.BREACHED
    assert run.note.startswith("No active rule matches event type 'asset.approved'")


def test_breach_ticket_escalates_like_any_ticket(org_a, client_acme, make_flow, publish):
    make_flow()
    publish(org_a, intake())
    with scope(organization=org_a):
        runs.breach_due_runs(org_a, now=at(61))
        ticket = Ticket.objects.get(organization=org_a, source=TicketSource.FLOW)
        # The catch-all rule's policy: notify the primary 30 wall minutes after opening.
        assert ticket.next_escalation_at == at(91)
        assert escalate_due_tickets(org_a, now=at(92)) == 1
        ticket.refresh_from_db()
    assert ticket.escalation_level == 1


def test_a_breached_run_still_completes_and_keeps_its_breach(
    org_a, client_acme, make_flow, publish
):
    make_flow()
    publish(org_a, intake())
    with scope(organization=org_a):
        runs.breach_due_runs(org_a, now=at(61))
    publish(org_a, sitemap(minutes=200))
    run = _run(org_a)
    assert run.state == RunState.COMPLETED
    assert run.breached_at == at(60)


def test_out_of_order_events_complete_once(org_a, client_acme, make_flow, publish):
    """The outcome arrives first, then a late milestone, then the outcome again (a resend
    with another key): one completion, at the first outcome, never moved back."""
    make_flow()
    publish(org_a, intake(), sitemap(minutes=90))
    publish(org_a, approved(minutes=30))
    publish(org_a, sitemap(minutes=95, key="sitemap-resend"))
    run = _run(org_a)
    assert run.state == RunState.COMPLETED
    assert run.completed_at == at(90)
    assert run.reached["asset.approved"] == at(30).isoformat()
    with scope(organization=org_a):
        assert Event.objects.filter(organization=org_a, event_type="flow.completed").count() == 1
        assert FlowRun.objects.filter(organization=org_a).count() == 1


def test_trigger_processed_after_its_outcome_catches_up(org_a, client_acme, make_flow, publish):
    """Events of the deliverable that arrived before the trigger still count."""
    make_flow()
    publish(org_a, approved(minutes=30), sitemap(minutes=90))
    publish(org_a, intake(minutes=0))
    run = _run(org_a)
    assert run.state == RunState.COMPLETED
    assert run.completed_at == at(90)


def test_duplicate_milestone_keeps_the_first_time(org_a, client_acme, make_flow, publish):
    make_flow()
    publish(org_a, intake(), approved(minutes=30))
    publish(org_a, approved(minutes=45))
    assert _run(org_a).reached["asset.approved"] == at(30).isoformat()


def test_repeated_trigger_joins_the_open_run(org_a, client_acme, make_flow, publish):
    make_flow()
    publish(org_a, intake(minutes=0), intake(minutes=10))
    with scope(organization=org_a):
        assert FlowRun.objects.filter(organization=org_a).count() == 1


def test_a_trigger_joins_the_open_run_even_when_a_newer_run_is_an_exception(
    org_a, client_acme, make_flow, publish
):
    """A trigger with missing data (an exception run), then a late trigger that occurred
    earlier (an open run, older by its start): a third trigger joins the open run instead
    of starting another (the database allows one open run per deliverable)."""
    make_flow(required_fields=["budget"])
    publish(org_a, intake(minutes=500))  # no budget: an exception run started at 500
    publish(org_a, intake(minutes=100, budget="5k"))  # late: running, started at 100
    publish(org_a, intake(minutes=700, budget="5k"))
    with scope(organization=org_a):
        runs_by_start = list(
            FlowRun.objects.filter(organization=org_a)
            .order_by("started_at")
            .values_list("started_at", "state")
        )
        states = set(EventProcessing.objects.filter(organization=org_a).values_list("status"))
    assert runs_by_start == [(at(100), RunState.RUNNING), (at(500), RunState.EXCEPTION)]
    assert states == {(ProcessingStatus.PROCESSED,)}  # none failed on a second open run


def test_missing_required_field_opens_one_exception_ticket(
    org_a, client_acme, make_flow, publish, roles
):
    make_flow()
    publish(org_a, intake(requested_by=""))
    run = _run(org_a)
    assert run.state == RunState.EXCEPTION
    assert run.missing_fields == ["requested_by"]
    assert run.due_at is None
    with scope(organization=org_a):
        link = FlowTicketLink.objects.select_related("ticket").get(organization=org_a)
        assert runs.breach_due_runs(org_a, now=at(10_000)) == 0
    assert link.kind == LinkKind.EXCEPTION
    assert "missing requested_by" in link.ticket.title
    assert link.ticket.owner_role == roles["flow_owner"]


@pytest.mark.parametrize(
    "fields",
    [
        {"client_tiers": ["standard"]},  # acme is enterprise
        {"deliverable_types": ["seo_page"]},
        {"payload_conditions": {"stage": "mql"}},
        {"is_active": False},
    ],
)
def test_conditions_that_do_not_match_start_nothing(org_a, client_acme, make_flow, publish, fields):
    make_flow(**fields)
    publish(org_a, intake())
    with scope(organization=org_a):
        assert not FlowRun.objects.filter(organization=org_a).exists()


def test_payload_condition_that_matches_starts_a_run(org_a, client_acme, make_flow, publish):
    make_flow(payload_conditions={"stage": "mql"})
    publish(org_a, intake(stage="mql"))
    assert _run(org_a).state == RunState.RUNNING


def test_without_a_flow_owner_the_owner_map_decides(org_a, client_acme, make_flow, publish, roles):
    make_flow(owner_role=None)
    publish(org_a, intake())
    with scope(organization=org_a):
        runs.breach_due_runs(org_a, now=at(61))
        ticket = Ticket.objects.get(organization=org_a, source=TicketSource.FLOW)
    assert ticket.owner_role == roles["fallback"]


def test_another_tenants_events_never_touch_this_tenants_runs(
    org_a, org_b, client_acme, client_b_acme, make_flow, publish
):
    make_flow()
    publish(org_b, intake())
    with scope(organization=org_a):
        assert not FlowRun.objects.filter(organization=org_a).exists()


def _processing_queries(org, publish, *events) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        publish(org, *events)
    return len(queries)


def test_flows_that_do_not_concern_an_event_cost_no_query(org_a, client_acme, make_flow, publish):
    """The processing path reads the active flows once per event, whatever their number."""
    _processing_queries(org_a, publish, approved("LP-0"))  # warm the event-type cache
    without = _processing_queries(org_a, publish, approved("LP-1"))
    for index in range(10):
        make_flow(
            slug=f"unrelated-{index}",
            trigger_event_type="crm.touch",
            milestones=[],
            outcome_event_type="scope.accepted",
        )
    with_ten = _processing_queries(org_a, publish, approved("LP-2"))
    assert with_ten == without


def test_advancing_a_run_costs_the_same_whatever_the_number_of_runs(
    org_a, client_acme, make_flow, publish
):
    make_flow()
    publish(org_a, intake("LP-1"), intake("LP-2"), intake("LP-3"))
    _processing_queries(org_a, publish, approved("LP-3"))  # warm the event-type cache
    one = _processing_queries(org_a, publish, approved("LP-1"))
    publish(org_a, *(intake(f"LP-{n}") for n in range(10, 30)))
    many = _processing_queries(org_a, publish, approved("LP-2"))
    assert many == one


def test_replaying_a_trigger_whose_run_ended_starts_no_second_run(
    org_a, client_acme, make_flow, publish, replay_events
):
    """An exception run (and a completed one) is closed: its trigger, replayed, used to
    start a second run, which the database refused, failing the event."""
    make_flow()
    broken = publish(org_a, intake("LP-1", requested_by=""))
    done = publish(
        org_a, intake("LP-2"), approved("LP-2"), published("LP-2"), sitemap("LP-2", minutes=90)
    )
    outcome = replay_events(org_a, broken + done)
    assert (outcome.replayed, outcome.failed) == (5, 0)
    with scope(organization=org_a):
        assert FlowRun.objects.filter(organization=org_a).count() == 2
        assert Ticket.objects.filter(organization=org_a, source=TicketSource.FLOW).count() == 1
    assert _run(org_a, deliverable__deliverable_id="LP-1").state == RunState.EXCEPTION
    assert _run(org_a, deliverable__deliverable_id="LP-2").state == RunState.COMPLETED


def test_an_event_belongs_to_the_run_that_had_started_when_it_happened(
    org_a, client_acme, make_flow, publish, replay_events
):
    """A replayed outcome of an earlier run must not complete the run started after it."""
    make_flow()
    first = publish(org_a, intake(minutes=0), sitemap(minutes=10))
    publish(org_a, intake(minutes=100))
    assert _run(org_a, started_at=at(100)).state == RunState.RUNNING
    replay_events(org_a, first)
    second = _run(org_a, started_at=at(100))
    assert second.state == RunState.RUNNING
    assert second.reached == {}
    assert _run(org_a, started_at=at(0)).completed_at == at(10)


def test_a_run_completed_and_its_successor_started_in_one_batch(
    org_a, client_acme, make_flow, publish
):
    """The completed run is written before the next trigger's run is inserted: only one
    run of a flow and deliverable may be open at a time."""
    make_flow()
    publish(org_a, intake(minutes=0), approved(minutes=10), sitemap(minutes=20), intake(minutes=30))
    with scope(organization=org_a):
        states = list(
            FlowRun.objects.filter(organization=org_a)
            .order_by("started_at")
            .values_list("state", "completed_at")
        )
        assert states == [(RunState.COMPLETED, at(20)), (RunState.RUNNING, None)]
        completed = Event.objects.filter(organization=org_a, event_type="flow.completed")
        assert completed.count() == 1


def test_a_batch_moving_ten_runs_costs_the_statements_of_one_moving_two(
    org_a, client_acme, make_flow, publish
):
    make_flow()
    refs = [f"LP-{n}" for n in range(13)]
    publish(org_a, *(intake(ref) for ref in refs))
    _processing_queries(org_a, publish, approved("LP-12"))  # warm the event-type cache
    two = _processing_queries(org_a, publish, *(approved(ref) for ref in refs[:2]))
    ten = _processing_queries(org_a, publish, *(approved(ref) for ref in refs[2:12]))
    assert ten == two
    with scope(organization=org_a):
        moved = FlowRun.objects.filter(organization=org_a, reached__has_key="asset.approved")
        assert moved.count() == 13


def test_a_batch_closing_six_runs_and_starting_their_successors_costs_what_two_do(
    org_a, client_acme, make_flow, publish
):
    """Runs that close are written with the others, in one UPDATE, before the runs their
    deliverables' next triggers start in the same batch (only one may be open)."""
    make_flow()
    refs = [f"LP-{n}" for n in range(9)]
    publish(org_a, *(intake(ref) for ref in refs))
    _processing_queries(org_a, publish, sitemap("LP-8"))  # warm the event-type cache

    def close_and_restart(refs) -> int:
        events = [e for ref in refs for e in (sitemap(ref), intake(ref, minutes=120))]
        return _processing_queries(org_a, publish, *events)

    assert close_and_restart(refs[:2]) == close_and_restart(refs[2:8])
    with scope(organization=org_a):
        states = list(
            FlowRun.objects.filter(organization=org_a, deliverable__deliverable_id__in=refs[:8])
            .order_by("deliverable__deliverable_id", "started_at")
            .values_list("state", "completed_at", "started_at")
        )
    assert states == [(RunState.COMPLETED, at(90), at(0)), (RunState.RUNNING, None, at(120))] * 8
