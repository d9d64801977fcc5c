"""Reviews come due on their owners' queues and move on when done; the weekly assurance
check is confirmed per item or all as shown, and a missed one escalates as one ticket."""

from datetime import timedelta

import pytest
import time_machine
from django_scopes import scope

from deliveries.models import Event
from flows.models import AssuranceCheck, Review
from flows.services import assurance
from owners.models import Ticket, TicketSource, TicketStatus
from owners.services import tickets
from tests.flows.conftest import T0

pytestmark = pytest.mark.django_db
DAY = timedelta(days=1)


def _trail(org, event_type):
    with scope(organization=org):
        return list(
            Event.objects.filter(organization=org, event_type=event_type).values_list(
                "payload", flat=True
            )
        )


def test_reviews_come_due_on_the_owners_queue_and_move_on_when_done(
    client, org_a, make_flow, roles, owner, member, outsider
):
    flow = make_flow()
    with scope(organization=org_a):
        assert assurance.sync(org_a, T0) == []
        reviews = {r.kind: r for r in Review.objects.filter(organization=org_a)}
        assert set(reviews) == {"flow", "owner_rule"}
        assert reviews["flow"].owner_role == roles["flow_owner"]
        assert reviews["flow"].due_at == T0 + 90 * DAY
        later = T0 + 91 * DAY
        assert {r.kind for r in assurance.sync(org_a, later)} == {"flow", "owner_rule"}
        assert assurance.sync(org_a, later + DAY) == []  # told once per due date
        assert [r.kind for r in assurance.due_for(org_a, member, later)] == ["flow"]
        assert [r.kind for r in assurance.due_for(org_a, owner, later)] == ["owner_rule"]
    assert len(_trail(org_a, "governance.review_overdue")) == 2

    with time_machine.travel(later, tick=False):
        client.force_login(member)  # (a session from 91 days ago has expired)
        page = client.get("/o/org-a/me/").content.decode()
        assert "Reviews due" in page and f"/o/org-a/flows/{flow.slug}/" in page
        rule_review = reviews["owner_rule"]
        assert client.post(f"/o/org-a/reviews/{rule_review.pk}/done").status_code == 403
        done = client.post(f"/o/org-a/reviews/{reviews['flow'].pk}/done", {"note": "Still right"})
        assert done.status_code == 302
        assert "Reviews due" not in client.get("/o/org-a/me/").content.decode()
    with scope(organization=org_a):
        review = Review.objects.get(pk=reviews["flow"].pk)
    assert (review.due_at, review.last_reviewed_by, review.last_note) == (
        later + 90 * DAY,
        member,
        "Still right",
    )
    [completed] = _trail(org_a, "governance.reviewed")
    assert completed["note"] == "Still right" and completed["target"] == "Brief to live"

    client.force_login(outsider)
    assert client.post(f"/o/org-a/reviews/{rule_review.pk}/done").status_code == 404
    assert client.post(f"/o/org-b/reviews/{rule_review.pk}/done").status_code == 404


@pytest.fixture
def owners_tickets(org_a, roles):
    """Three open tickets assigned to the owner (on duty for the catch-all's Account
    Manager), due to be resolved 30 minutes, 30 days and 10 hours after T0."""
    made = []
    with scope(organization=org_a):
        for key, due in (("a", timedelta(minutes=30)), ("b", 30 * DAY), ("c", timedelta(hours=10))):
            ticket, _ = tickets.open_ticket(
                org_a,
                source=TicketSource.MANUAL,
                source_key=key,
                title=f"Ticket {key}",
                event_type="change.requested",
                at=T0,
            )
            ticket.resolve_due_at = T0 + due
            ticket.save(update_fields=["resolve_due_at"])
            made.append(ticket)
    return made


def test_a_weekly_check_is_confirmed_per_item_or_all_and_a_missed_one_escalates_once(
    client, org_a, owners_tickets, owner, member, outsider
):
    monday = T0 + timedelta(hours=1)
    with scope(organization=org_a):
        [check] = assurance.open_week(org_a, monday)
        assert assurance.open_week(org_a, monday + DAY) == []
    assert check.person == owner and check.week == T0.date()
    assert [(i["title"], i["status"]) for i in check.items] == [
        ("Ticket a", "breached"),
        ("Ticket c", "due_soon"),
        ("Ticket b", "on_track"),
    ]

    with time_machine.travel(monday, tick=False):
        client.force_login(owner)
        page = client.get("/o/org-a/me/").content.decode()
        assert "Weekly assurance" in page and "Confirm all as shown" in page
        url = f"/o/org-a/assurance/{check.pk}/confirm"
        for ticket in owners_tickets[1:]:
            assert client.post(url, {"ticket": str(ticket.pk)}).status_code == 302
    with scope(organization=org_a):
        check.refresh_from_db()
        assert [i["title"] for i in check.pending_items] == ["Ticket a"]
        # Past its due time, unconfirmed: one escalation ticket, however often swept.
        assert assurance.escalate_missed(org_a, monday + 3 * DAY) == [check]
        assert assurance.escalate_missed(org_a, monday + 4 * DAY) == []
        escalation = Ticket.objects.get(organization=org_a, source=TicketSource.ASSURANCE)
        assert escalation.title.startswith("Assurance check not confirmed: owner@a.example")
        assert escalation.opened_by()["kind"] == "assurance_check"

    client.force_login(member)
    assert client.post(url).status_code == 403  # only the person asked confirms
    client.force_login(outsider)
    assert client.post(url).status_code == 404

    with time_machine.travel(monday + 4 * DAY, tick=False):
        client.force_login(owner)
        assert client.post(url).status_code == 302  # all as shown
    with scope(organization=org_a):
        check = AssuranceCheck.objects.get(pk=check.pk)
        escalation.refresh_from_db()
    assert check.confirmed_at == monday + 4 * DAY and check.pending_items == []
    assert escalation.status == TicketStatus.RESOLVED
    assert [p["week"] for p in _trail(org_a, "governance.assurance_confirmed")] == [
        T0.date().isoformat()
    ]
    assert len(_trail(org_a, "governance.assurance_missed")) == 1
