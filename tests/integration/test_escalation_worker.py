"""A ticket escalates on schedule through beat and a real worker; no test calls the sweep."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_scopes import scope

from deliveries.models import Deliverable, Event
from owners.models import Ticket, TicketSource, WaitKind
from owners.services import tickets
from tests.integration.conftest import wait_until
from tests.owners.factories import make_policy, make_role, make_rule

pytestmark = pytest.mark.worker


def test_overdue_ticket_escalates_via_beat_and_worker(
    worker, celery_beat, org_a, member, owner, client_acme
):
    with scope(organization=org_a):
        deliverable = Deliverable.objects.create(
            organization=org_a, client=client_acme, deliverable_id="LP-9", type="landing_page"
        )
        role = make_role(org_a, people=[member, owner])
        policy = make_policy(
            org_a,
            steps=[(1, WaitKind.WALL, "notify_primary"), (60, WaitKind.WALL, "notify_backup")],
        )
        make_rule(org_a, role, policy, event_type="page.published")
        # Opened two minutes ago with a one-minute first step: the step fell due a minute
        # ago, as if the workers had been down when it did.
        ticket, _ = tickets.open_ticket(
            org_a,
            source=TicketSource.INCIDENT,
            source_key="outage-1",
            title="Escalate me",
            event_type="page.published",
            deliverable=deliverable,
            at=timezone.now() - timedelta(minutes=2),
        )
        assert ticket.next_escalation_at < timezone.now()

    celery_beat()

    def escalated():
        with scope(organization=org_a):
            return Ticket.objects.get(pk=ticket.pk).escalation_level == 1

    wait_until(escalated, timeout=30, message="beat + worker never escalated the ticket")
    with scope(organization=org_a):
        refreshed = Ticket.objects.get(pk=ticket.pk)
        # Step two is an hour away, so the ticket stays at level 1.
        assert refreshed.next_escalation_at > timezone.now() + timedelta(minutes=55)
        trail = list(
            Event.objects.filter(organization=org_a, deliverable=deliverable)
            .order_by("received_at")
            .values_list("event_type", flat=True)
        )
    assert trail == ["ticket.opened", "ticket.escalated"]
    assert "owners.escalate_tickets" in worker.log_since_mark()
