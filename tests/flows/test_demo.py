"""The demo: template flows with runs in every state, and the done-when story."""

import pytest
from django.contrib.auth import get_user_model
from django_scopes import scope

from deliveries.demo import seed_demo
from flows.models import (
    AssuranceCheck,
    Change,
    ChangeStatus,
    Flow,
    FlowRun,
    Incident,
    Review,
    RunState,
)
from flows.services import assurance, changes, measures
from owners.models import ACTIVE_STATUSES, Ticket, TicketSource

pytestmark = pytest.mark.django_db


def test_demo_has_template_flows_runs_in_every_state_and_a_pending_owner_change():
    organization = seed_demo()["organization"]
    with scope(organization=organization):
        flows = {f.slug: f for f in Flow.objects.filter(organization=organization)}
        assert set(flows) == {
            "lead-to-brief",
            "brief-to-live",
            "change-request",
            "publish-to-indexed",
        }
        states = set(
            FlowRun.objects.filter(organization=organization).values_list("state", flat=True)
        )
        # Every state but paused: the demo's incident has ended, its runs resumed.
        assert states == set(RunState.values) - {RunState.PAUSED}
        incident = Incident.objects.get(organization=organization)
        assert incident.ended_at is not None
        assert all(run.credited_seconds == 1200 for run in incident.paused_runs.all())
        assert incident.paused_runs.exists()

        # A brief approved without its page going live breached brief-to-live: one ticket
        # per breached run, for the flow's owner, with its runbook; the funnel shows it.
        brief = flows["brief-to-live"]
        breached = FlowRun.objects.filter(flow=brief, breached_at__isnull=False)
        tickets = Ticket.objects.filter(
            organization=organization, source=TicketSource.FLOW, flow_link__run__flow=brief
        )
        assert breached.count() == tickets.count() > 0
        assert {t.owner_role.slug for t in tickets} == {"seo-delivery-owner"}
        assert all(t.context["runbook"] == brief.runbook for t in tickets)
        funnel = measures.funnel(brief)
        assert funnel[0]["count"] > funnel[-1]["count"]

        # The admin's change of that flow's owner waits for the second admin.
        change = Change.objects.get(organization=organization, status=ChangeStatus.PROPOSED)
        users = get_user_model().objects
        change = changes.approve(change, users.get(username="lead@northwind.example"))
        brief.refresh_from_db()
        assert brief.owner_role.slug == "creative-ops-lead"
        changes.rollback(change, users.get(username="lead@northwind.example"))
        brief.refresh_from_db()
        assert brief.owner_role.slug == "seo-delivery-owner"

        # Reviews: brief-to-live's is overdue for its owner; an owner rule's was done.
        seo = users.get(username="am@northwind.example")  # on the SEO Delivery Owner rota
        due = assurance.due_for(organization, seo, organization.created_at)
        assert [r.target_label for r in due] == ["Brief to live"]
        assert Review.objects.filter(organization=organization, last_reviewed_at__isnull=False)
        # The week's assurance checks: one per person with open tickets.
        checks = AssuranceCheck.objects.filter(organization=organization)
        assignees = set(
            Ticket.objects.filter(
                organization=organization,
                status__in=ACTIVE_STATUSES,
                assignee__isnull=False,
                opened_at__lte=organization.created_at,
            ).values_list("assignee", flat=True)
        )
        assert set(checks.values_list("person", flat=True)) == assignees != set()

    # A second seed adds no runs, tickets, proposals, reviews or checks.
    def counts():
        with scope(organization=organization):
            return [
                model.objects.filter(organization=organization).count()
                for model in (FlowRun, Ticket, Change, Review, AssuranceCheck)
            ]

    before = counts()
    seed_demo()
    assert counts() == before
