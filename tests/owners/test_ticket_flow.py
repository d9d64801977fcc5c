from datetime import UTC, datetime, timedelta

import pytest
from django_scopes import scope

from deliveries.models import Deliverable, Event
from owners.models import Notification, TicketSource, TicketStatus, WaitKind
from owners.services import escalation, tickets
from tests.owners.factories import make_calendar, make_policy, make_role, make_rule

pytestmark = pytest.mark.django_db


@pytest.fixture
def deliverable(org_a, client_acme):
    with scope(organization=org_a):
        return Deliverable.objects.create(
            organization=org_a, client=client_acme, deliverable_id="LP-1", type="landing_page"
        )


def test_ticket_lands_on_person_on_duty_and_escalates_in_business_time(
    org_a, member, owner, deliverable
):
    with scope(organization=org_a):
        role = make_role(org_a, people=[member, owner])
        policy = make_policy(org_a, steps=[(120, WaitKind.BUSINESS, "notify_primary")])
        make_rule(org_a, role, policy, event_type="page.published")
        make_calendar(org_a)
        friday_1730 = datetime(2026, 11, 27, 16, 30, tzinfo=UTC)  # 17:30 Berlin
        ticket, created = tickets.open_ticket(
            org_a,
            source=TicketSource.GATE_FAILURE,
            source_key="gate:1:event:1",
            title="JSON-LD missing",
            event_type="page.published",
            deliverable=deliverable,
            at=friday_1730,
        )
        again, created_again = tickets.open_ticket(
            org_a,
            source=TicketSource.GATE_FAILURE,
            source_key="gate:1:event:1",
            title="JSON-LD missing",
            event_type="page.published",
            deliverable=deliverable,
            at=friday_1730,
        )
        assert created and not created_again and again.pk == ticket.pk
        assert ticket.assignee in (member, owner)
        # 2 business hours from Friday 17:30 Berlin = Monday 11:00 Berlin = 10:00 UTC
        monday_1100 = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
        assert ticket.next_escalation_at == monday_1100
        assert (
            escalation.escalate_due_tickets(
                org_a, now=ticket.next_escalation_at - timedelta(seconds=1)
            )
            == 0
        )
        assert escalation.escalate_due_tickets(org_a, now=ticket.next_escalation_at) == 1
        assert escalation.escalate_due_tickets(org_a, now=ticket.next_escalation_at) == 0
        ticket.refresh_from_db()
        assert ticket.escalation_level == 1 and ticket.next_escalation_at is None
        trail = list(
            Event.objects.filter(organization=org_a, deliverable=deliverable)
            .order_by("occurred_at")
            .values_list("event_type", "occurred_at")
        )
        # Each entry carries when it happened, not when the test ran.
        assert trail == [
            ("ticket.opened", friday_1730),
            ("ticket.escalated", monday_1100),
        ]
        assert Notification.objects.filter(organization=org_a, ticket=ticket).count() == 2
        tickets.acknowledge(ticket, tickets.Actor.for_user(member))
        resolved = tickets.resolve(ticket, tickets.Actor.for_user(member), note="fixed")
        assert resolved.status == TicketStatus.RESOLVED
