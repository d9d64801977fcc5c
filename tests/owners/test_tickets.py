"""Tickets: opened once per source key, then acknowledged, reassigned, resolved or cancelled,
each change recorded in the trail."""

from datetime import timedelta

import pytest
from django_scopes import scope

from deliveries.models import Event, EventSource
from meshline import extensions
from owners.models import Notification, Ticket, TicketSource, TicketStatus
from owners.services import tickets
from owners.services.tickets import MESHLINE, Actor, NoOwnerError, TicketError
from tests.owners.conftest import MONDAY_10_BERLIN
from tests.owners.factories import make_calendar, make_policy, make_role, make_rule

pytestmark = pytest.mark.django_db


@pytest.fixture
def role(in_a, member, owner):
    role = make_role(in_a, people=[member, owner])
    make_rule(in_a, role, make_policy(in_a), event_type="page.published")
    return role


def trail(organization, ticket) -> list[Event]:
    return list(
        Event.objects.filter(organization=organization, payload__ticket_id=str(ticket.pk)).order_by(
            "received_at", "pk"
        )
    )


def test_open_assigns_the_role_and_the_person_on_duty_and_records_it(
    in_a, role, member, deliverable, open_ticket
):
    make_calendar(in_a)
    ticket = open_ticket(deliverable=deliverable)

    assert ticket.status == TicketStatus.OPEN
    assert ticket.owner_role == role
    assert ticket.assignee == member  # first week of the rota (2026-11-23 is shift 46, even)
    assert ticket.respond_due_at == MONDAY_10_BERLIN + timedelta(hours=1)
    assert ticket.rule_snapshot["reasons"]
    [event] = trail(in_a, ticket)
    assert (event.event_type, event.source) == ("ticket.opened", EventSource.MESHLINE)
    assert event.deliverable == deliverable
    assert event.payload["assignee"] == member.email
    assert event.payload["owner_role"] == role.name
    assert Notification.objects.filter(ticket=ticket, recipient=member).count() == 1


def test_open_is_idempotent_per_source_and_key(in_a, role, open_ticket):
    first = open_ticket("incident:7")
    again = open_ticket("incident:7", title="A retried task")
    other_source = open_ticket("incident:7", source=TicketSource.CHANGE_REQUEST)

    assert again.pk == first.pk and again.title == first.title
    assert other_source.pk != first.pk
    assert Ticket.objects.count() == 2
    assert Event.objects.filter(event_type="ticket.opened").count() == 2


def test_open_returns_existing_ticket_when_created_flag_is_false_on_retry(in_a, role):
    kwargs = {
        "source": TicketSource.INCIDENT,
        "source_key": "incident:8",
        "title": "t",
        "event_type": "page.published",
        "at": MONDAY_10_BERLIN,
    }
    ticket, created = tickets.open_ticket(in_a, **kwargs)
    same, created_again = tickets.open_ticket(in_a, **kwargs)
    assert (created, created_again) == (True, False)
    assert same.pk == ticket.pk


def test_open_that_loses_a_race_returns_the_winners_ticket(in_a, role, monkeypatch, member):
    """A concurrent retry inserts the row between our lookup and our insert."""
    real_duty = tickets._Routing.duty
    winner = {}

    def concurrent_insert(routing, role_, at):
        winner["ticket"] = Ticket.objects.create(
            organization=in_a,
            source=TicketSource.INCIDENT,
            source_key="incident:race",
            title="Opened by the other worker",
            owner_role=role_,
            opened_at=at,
        )
        return real_duty(routing, role_, at)

    monkeypatch.setattr(tickets._Routing, "duty", concurrent_insert)
    ticket, created = tickets.open_ticket(
        in_a,
        source=TicketSource.INCIDENT,
        source_key="incident:race",
        title="Opened by us",
        event_type="page.published",
        at=MONDAY_10_BERLIN,
    )

    assert created is False
    assert ticket.pk == winner["ticket"].pk and ticket.title == "Opened by the other worker"
    assert Ticket.objects.count() == 1
    # The loser's trail entry and notification were rolled back with its insert.
    assert not Event.objects.filter(event_type="ticket.opened").exists()
    assert not Notification.objects.exists()


def test_open_without_a_matching_rule_raises_no_owner(in_a, open_ticket):
    make_rule(in_a, make_role(in_a), event_type="asset.uploaded")

    with pytest.raises(NoOwnerError) as raised:
        open_ticket()

    assert raised.value.code == "no_owner"
    assert "page.published" in str(raised.value)
    assert not Ticket.objects.exists()


def test_acknowledge_moves_open_to_acknowledged_once(in_a, role, member, open_ticket):
    ticket = open_ticket()

    acknowledged = tickets.acknowledge(ticket, Actor.for_user(member))

    assert acknowledged.status == TicketStatus.ACKNOWLEDGED
    assert acknowledged.acknowledged_at is not None
    with pytest.raises(TicketError) as raised:
        tickets.acknowledge(ticket, Actor.for_user(member))
    assert raised.value.code == "invalid_status"
    events = [e for e in trail(in_a, ticket) if e.event_type == "ticket.acknowledged"]
    assert len(events) == 1
    assert (events[0].actor_role, events[0].actor_id) == ("user", member.email)
    assert events[0].source == EventSource.MESHLINE


def test_acknowledge_by_a_person_takes_an_unassigned_ticket(in_a, member, open_ticket):
    make_rule(in_a, make_role(in_a), event_type="page.published")  # no rota: nobody on duty
    ticket = open_ticket()
    assert ticket.assignee is None

    assert tickets.acknowledge(ticket, Actor.for_user(member)).assignee == member


def test_reassign_gives_the_ticket_to_another_member_and_notifies_them(
    in_a, role, owner, viewer, open_ticket
):
    ticket = open_ticket()

    reassigned = tickets.reassign(ticket, Actor.for_user(owner), viewer)

    assert reassigned.assignee == viewer
    assert Ticket.objects.get(pk=ticket.pk).assignee == viewer
    [event] = [e for e in trail(in_a, ticket) if e.event_type == "ticket.reassigned"]
    assert event.payload["assignee"] == viewer.email
    assert event.payload["previous"] is not None
    assert Notification.objects.filter(ticket=ticket, recipient=viewer).count() == 1


def test_reassign_to_someone_outside_the_organization_is_refused(
    in_a, role, owner, outsider, open_ticket
):
    ticket = open_ticket()
    before = ticket.assignee

    with pytest.raises(TicketError) as raised:
        tickets.reassign(ticket, Actor.for_user(owner), outsider)

    assert raised.value.code == "not_member"
    ticket.refresh_from_db()
    assert ticket.assignee == before
    assert not Event.objects.filter(event_type="ticket.reassigned").exists()


def test_closed_tickets_cannot_be_reassigned_resolved_or_cancelled(
    in_a, role, owner, member, open_ticket
):
    ticket = open_ticket()
    tickets.resolve(ticket, Actor.for_user(owner), note="done")

    for action in (
        lambda: tickets.reassign(ticket, MESHLINE, member),
        lambda: tickets.resolve(ticket, MESHLINE),
        lambda: tickets.cancel(ticket, MESHLINE, "dup"),
        lambda: tickets.acknowledge(ticket, MESHLINE),
    ):
        with pytest.raises(TicketError) as raised:
            action()
        assert raised.value.code == "invalid_status"
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.RESOLVED


def test_resolve_closes_the_ticket_and_stops_escalation(in_a, role, owner, open_ticket):
    ticket = open_ticket()
    assert ticket.next_escalation_at is not None

    resolved = tickets.resolve(ticket, Actor.for_user(owner), note="Fixed the JSON-LD")

    assert resolved.status == TicketStatus.RESOLVED
    assert resolved.resolved_at is not None and resolved.next_escalation_at is None
    assert resolved.closed_note == "Fixed the JSON-LD"
    [event] = [e for e in trail(in_a, ticket) if e.event_type == "ticket.resolved"]
    assert event.payload["note"] == "Fixed the JSON-LD"
    assert event.source == EventSource.MESHLINE


def test_cancel_requires_a_reason(in_a, role, owner, open_ticket):
    ticket = open_ticket()

    with pytest.raises(TicketError) as raised:
        tickets.cancel(ticket, Actor.for_user(owner), "   ")
    assert raised.value.code == "reason_required"
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.OPEN

    cancelled = tickets.cancel(ticket, Actor.for_user(owner), "Duplicate of incident:2")
    assert cancelled.status == TicketStatus.CANCELLED
    assert cancelled.closed_note == "Duplicate of incident:2"
    assert cancelled.next_escalation_at is None
    [event] = [e for e in trail(in_a, ticket) if e.event_type == "ticket.cancelled"]
    assert event.payload["reason"] == "Duplicate of incident:2"


def test_every_step_of_a_ticket_is_in_the_trail_in_order(in_a, role, owner, viewer, open_ticket):
    ticket = open_ticket()
    tickets.acknowledge(ticket, Actor.for_user(owner))
    tickets.reassign(ticket, Actor.for_user(owner), viewer)
    tickets.resolve(ticket, Actor.for_user(viewer), note="ok")

    events = trail(in_a, ticket)
    assert [e.event_type for e in events] == [
        "ticket.opened",
        "ticket.acknowledged",
        "ticket.reassigned",
        "ticket.resolved",
    ]
    assert {e.source for e in events} == {EventSource.MESHLINE}
    assert all(e.processing.status == "processed" for e in events)


@pytest.fixture
def waiver_guard():
    """A guard like the gates app's: refuses resolution unless there is a waiver."""

    def guard(ticket, waiver_reason):
        if not waiver_reason:
            raise TicketError("The gate still fails; resolve with a waiver.", "gate_failing")

    with extensions.resolve_guards.override("test.waiver", guard):
        yield guard


def test_resolve_guard_refuses_without_a_waiver(in_a, role, owner, open_ticket, waiver_guard):
    ticket = open_ticket()

    with pytest.raises(TicketError) as raised:
        tickets.resolve(ticket, Actor.for_user(owner), note="looks fine")

    assert raised.value.code == "gate_failing"
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.OPEN
    assert not Event.objects.filter(event_type="ticket.resolved").exists()


def test_resolve_guard_allows_a_waiver_and_records_it(in_a, role, owner, open_ticket, waiver_guard):
    ticket = open_ticket()

    resolved = tickets.resolve(
        ticket, Actor.for_user(owner), waiver_reason="Client accepted the missing schema"
    )

    assert resolved.status == TicketStatus.RESOLVED
    assert resolved.closed_note == "Client accepted the missing schema"
    [event] = [e for e in trail(in_a, ticket) if e.event_type == "ticket.resolved"]
    assert event.payload["waiver"] == "Client accepted the missing schema"


def test_tickets_of_another_organization_are_separate(in_a, role, org_b, open_ticket):
    open_ticket("incident:shared")
    with scope(organization=org_b):
        make_rule(org_b, make_role(org_b), event_type="page.published")
        b_ticket = open_ticket("incident:shared", organization=org_b)
        assert Ticket.objects.count() == 1
        assert b_ticket.organization == org_b
    assert Ticket.objects.get().organization == in_a


def test_a_policy_snapshot_costs_the_same_queries_however_many_steps(
    in_a, member, django_assert_num_queries
):
    from owners.models import StepAction, WaitKind

    step = (30, WaitKind.WALL, StepAction.NOTIFY_PEOPLE)
    one, five = make_policy(in_a, steps=[step]), make_policy(in_a, steps=[step] * 5)
    for policy in (one, five):
        for each in policy.steps.all():
            each.people.add(member)
    with django_assert_num_queries(2):  # the steps, then every step's people at once
        assert one.snapshot()["steps"][0]["people"] == [member.pk]
    with django_assert_num_queries(2):
        assert [s["people"] for s in five.snapshot()["steps"]] == [[member.pk]] * 5
