"""With a real worker (and beat): a flow run breaches on schedule, opens exactly one ticket
for the flow's owner, and that ticket escalates, no test calling the sweeps; a run whose
events arrive out of order completes once."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_scopes import scope

from deliveries.models import Event
from deliveries.services import ingest_events
from flows.models import Flow, FlowRun, RunState
from owners.models import Ticket, TicketSource, WaitKind
from tests.integration.conftest import wait_until
from tests.owners.factories import make_policy, make_role, make_rule

pytestmark = pytest.mark.worker


def test_a_breached_run_opens_one_ticket_that_escalates(
    worker, celery_beat, org_a, member, owner, client_acme
):
    with scope(organization=org_a):
        role = make_role(org_a, slug="flow-owner", name="Flow Owner", people=[member, owner])
        make_rule(org_a, role, make_policy(org_a, steps=[(0, WaitKind.WALL, "notify_primary")]))
        Flow.objects.create(
            organization=org_a,
            slug="brief-to-live",
            name="Brief to live",
            trigger_event_type="intake.received",
            milestones=[{"event_type": "asset.approved", "due_minutes": 1, "due_kind": "wall"}],
            outcome_event_type="page.published",
            due_minutes=60,
            due_kind="wall",
            owner_role=role,
            runbook="Chase the approver.",
        )
        # The brief came in three minutes ago; its approval was due a minute after.
        [result] = ingest_events(
            org_a,
            [
                {
                    "event_type": "intake.received",
                    "deliverable_id": "LP-7",
                    "client_id": client_acme.client_id,
                    "idempotency_key": "intake-LP-7",
                    "actor": {"role": "pm_tool", "id": "asana"},
                    "occurred_at": (timezone.now() - timedelta(minutes=3)).isoformat(),
                    "payload": {"deliverable_type": "landing_page", "title": "Spring"},
                }
            ],
        )
    assert result.status == "accepted"

    def running():
        with scope(organization=org_a):
            return FlowRun.objects.filter(organization=org_a, state=RunState.RUNNING).first()

    run = wait_until(running, timeout=30, message="the worker never started the run")
    assert run.due_at < timezone.now()

    celery_beat()

    def escalated():
        with scope(organization=org_a):
            return Ticket.objects.filter(
                organization=org_a, source=TicketSource.FLOW, escalation_level__gte=1
            ).first()

    ticket = wait_until(escalated, timeout=40, message="beat + worker never breached and escalated")
    # More sweeps come and go: still the one ticket, one breach.
    wait_until(lambda: "flows.breach_sweep" in worker.log_since_mark(), timeout=10)
    with scope(organization=org_a):
        run.refresh_from_db()
        assert run.state == RunState.BREACHED and run.breached_on == "asset.approved"
        assert Ticket.objects.filter(organization=org_a, source=TicketSource.FLOW).count() == 1
        assert ticket.owner_role == role and ticket.context["runbook"] == "Chase the approver."
        breaches = Event.objects.filter(organization=org_a, event_type="flow.breached").count()
    assert breaches == 1


def test_a_run_whose_outcome_arrived_first_completes_once(worker, org_a, member, client_acme):
    with scope(organization=org_a):
        role = make_role(org_a, slug="flow-owner", name="Flow Owner", people=[member])
        make_rule(org_a, role)
        Flow.objects.create(
            organization=org_a,
            slug="brief-to-live",
            name="Brief to live",
            trigger_event_type="intake.received",
            milestones=[{"event_type": "asset.approved", "due_minutes": 60, "due_kind": "wall"}],
            outcome_event_type="page.published",
            due_minutes=120,
            due_kind="wall",
            owner_role=role,
        )
        start = timezone.now() - timedelta(minutes=30)

        def body(event_type, minutes, payload):
            return {
                "event_type": event_type,
                "deliverable_id": "LP-8",
                "client_id": client_acme.client_id,
                "idempotency_key": f"{event_type}-LP-8",
                "actor": {"role": "cms", "id": "wp"},
                "occurred_at": (start + timedelta(minutes=minutes)).isoformat(),
                "payload": payload,
            }

        # The CMS and the DAM report before the PM tool: outcome, milestone, then trigger,
        # in three requests, each processed by the worker as it arrives.
        for event in (
            body("page.published", 20, {"url": "https://acme.example/lp/8"}),
            body("asset.approved", 10, {"asset_id": "hero", "approved_by": "client"}),
            body("intake.received", 0, {"deliverable_type": "landing_page", "title": "LP 8"}),
        ):
            [result] = ingest_events(org_a, [event])
            assert result.status == "accepted"

    def completed():
        with scope(organization=org_a):
            return FlowRun.objects.filter(organization=org_a, state=RunState.COMPLETED).first()

    run = wait_until(completed, timeout=30, message="the worker never completed the run")
    with scope(organization=org_a):
        assert FlowRun.objects.filter(organization=org_a).count() == 1
        assert run.completed_at == start + timedelta(minutes=20)
        assert set(run.reached) == {"asset.approved", "page.published"}
        done = Event.objects.filter(organization=org_a, event_type="flow.completed").count()
    assert done == 1
