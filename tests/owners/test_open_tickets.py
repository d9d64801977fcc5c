"""open_tickets: many tickets opened at once, exactly as open_ticket opens each, in a fixed
number of statements."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope

from deliveries.models import Deliverable, Event
from owners.models import Notification, Ticket, TicketSource
from owners.services import tickets
from owners.services.tickets import TicketRequest
from tests.owners.conftest import MONDAY_10_BERLIN
from tests.owners.factories import make_calendar, make_policy, make_role, make_rule

pytestmark = pytest.mark.django_db


@pytest.fixture
def role(in_a, member, owner):
    role = make_role(in_a, people=[member, owner])
    make_rule(in_a, role, make_policy(in_a), event_type="page.published")
    make_calendar(in_a)
    return role


@pytest.fixture
def pages(in_a, client_acme):
    return [
        Deliverable.objects.create(
            organization=in_a, client=client_acme, deliverable_id=f"LP-{n}", type="landing_page"
        )
        for n in range(20)
    ]


def _request(key: str, deliverable=None, **overrides) -> TicketRequest:
    values = {
        "source": TicketSource.INCIDENT,
        "source_key": key,
        "title": f"Ticket {key}",
        "event_type": "page.published",
        "deliverable": deliverable,
        "context": {"why": key},
    }
    values.update(overrides)
    return TicketRequest(**values)


def _comparable(ticket: Ticket) -> dict:
    """A ticket's fields, without what differs by key."""
    skip = {"id", "source_key", "title", "context", "updated_at", "deliverable"}
    return {
        f.attname: getattr(ticket, f.attname)
        for f in Ticket._meta.concrete_fields
        if f.name not in skip
    }


def _opened_entry(ticket: Ticket) -> Event:
    return Event.objects.get(event_type="ticket.opened", payload__ticket_id=str(ticket.pk))


def test_opened_together_is_what_one_by_one_would_have_opened(in_a, role, member, pages):
    alone, _created = tickets.open_ticket(
        in_a,
        source=TicketSource.INCIDENT,
        source_key="alone",
        title="Ticket alone",
        event_type="page.published",
        deliverable=pages[0],
        context={"why": "alone"},
        at=MONDAY_10_BERLIN,
    )

    opened = tickets.open_tickets(
        in_a, [_request(f"k{n}", pages[n]) for n in (1, 2, 3)], at=MONDAY_10_BERLIN
    )

    assert [(o.created, o.no_owner) for o in opened] == [(True, "")] * 3
    stored = [Ticket.objects.get(pk=o.ticket.pk) for o in opened]
    assert [t.source_key for t in stored] == ["k1", "k2", "k3"]
    assert [t.deliverable for t in stored] == pages[1:4]
    assert stored[0].context == {"why": "k1"}
    for ticket in stored:
        assert _comparable(ticket) == _comparable(alone)
        assert ticket.assignee == member
        # Its trail entry says the same as the one-by-one path's, about its own ticket.
        entry, alone_entry = _opened_entry(ticket), _opened_entry(alone)
        assert {k: v for k, v in entry.payload.items() if k not in ("ticket_id", "title")} == {
            k: v for k, v in alone_entry.payload.items() if k not in ("ticket_id", "title")
        }
        assert (entry.occurred_at, entry.deliverable) == (MONDAY_10_BERLIN, ticket.deliverable)
        assert entry.content_digest != alone_entry.content_digest  # its own ticket's id
        [note] = Notification.objects.filter(ticket=ticket, recipient=member)
        assert note.subject == f"[P3 (normal)] New ticket for {role.name}: {ticket.title}"


def test_the_number_of_statements_does_not_grow_with_the_tickets(in_a, role, pages):
    def statements(requests) -> int:
        with CaptureQueriesContext(connection) as queries:
            opened = tickets.open_tickets(in_a, requests, at=MONDAY_10_BERLIN)
        assert all(o.created for o in opened)
        return len(queries.captured_queries)

    few = statements([_request(f"few-{n}", pages[n]) for n in range(3)])
    many = statements([_request(f"many-{n}", pages[n]) for n in range(3, 20)])

    assert few == many
    assert Ticket.objects.count() == 20
    assert Event.objects.filter(event_type="ticket.opened").count() == 20


def test_keys_open_already_or_repeated_get_their_one_ticket(in_a, role, pages):
    first, _ = tickets.open_ticket(
        in_a,
        source=TicketSource.INCIDENT,
        source_key="k1",
        title="first",
        event_type="page.published",
        at=MONDAY_10_BERLIN,
    )

    opened = tickets.open_tickets(
        in_a, [_request("k1"), _request("k2"), _request("k2", title="again")], at=MONDAY_10_BERLIN
    )

    assert [(o.ticket.pk == first.pk, o.created) for o in opened[:1]] == [(True, False)]
    assert opened[1].created and opened[2].ticket is opened[1].ticket
    assert opened[1].ticket.title == "Ticket k2"
    assert Ticket.objects.count() == 2
    assert Event.objects.filter(event_type="ticket.opened").count() == 2


def test_a_request_nobody_owns_says_why_and_the_others_open(in_a, role):
    opened = tickets.open_tickets(
        in_a,
        [_request("routed"), _request("lost", event_type="asset.uploaded")],
        at=MONDAY_10_BERLIN,
    )

    assert opened[0].created and opened[0].ticket.owner_role == role
    assert (opened[1].ticket, opened[1].created) == (None, False)
    assert opened[1].no_owner.startswith("No active rule matches event type 'asset.uploaded'")
    assert list(Ticket.objects.values_list("source_key", flat=True)) == ["routed"]


def test_a_key_opened_meanwhile_falls_back_to_one_by_one(in_a, role, monkeypatch):
    """Another writer opens one of the keys between the look-up and the insert."""
    resolution = tickets._Routing.resolution
    raced = []

    def resolve_then_race(self, event_type, deliverable):
        if not raced:
            raced.append(None)  # the other writer's own routing must not race again
            raced[0], _ = tickets.open_ticket(
                in_a,
                source=TicketSource.INCIDENT,
                source_key="k2",
                title="the other writer's",
                event_type="page.published",
                at=MONDAY_10_BERLIN,
            )
        return resolution(self, event_type, deliverable)

    monkeypatch.setattr(tickets._Routing, "resolution", resolve_then_race)

    opened = tickets.open_tickets(
        in_a, [_request("k1"), _request("k2"), _request("k3")], at=MONDAY_10_BERLIN
    )

    assert [o.created for o in opened] == [True, False, True]
    assert opened[1].ticket.pk == raced[0].pk and opened[1].ticket.title == "the other writer's"
    assert Ticket.objects.count() == 3
    assert Event.objects.filter(event_type="ticket.opened").count() == 3


def test_another_organizations_ticket_with_the_same_key_is_not_ours(in_a, role, org_b):
    with scope(organization=org_b):
        make_rule(org_b, make_role(org_b), event_type="page.published")
        theirs, _ = tickets.open_ticket(
            org_b,
            source=TicketSource.INCIDENT,
            source_key="k1",
            title="theirs",
            event_type="page.published",
            at=MONDAY_10_BERLIN,
        )

    [ours] = tickets.open_tickets(in_a, [_request("k1")], at=MONDAY_10_BERLIN)

    assert ours.created and ours.ticket.pk != theirs.pk
    assert ours.ticket.organization_id == in_a.pk and ours.ticket.owner_role == role


ROUTING_TABLES = ("owners_ownerrule", "owners_businesscalendar", "owners_rota", "owners_escalation")


def test_the_steps_of_one_processing_batch_read_the_routing_once(in_a, role, pages):
    """Gates, billing and attribution each open tickets in a batch: the second call reads
    no rule, calendar, policy or rota again, and still opens at its own moment."""
    from datetime import timedelta

    from deliveries.services.processing import Batch, running

    def routing_reads(requests, at) -> tuple[int, list]:
        with CaptureQueriesContext(connection) as queries:
            opened = tickets.open_tickets(in_a, requests, at=at)
        reads = [q for q in queries.captured_queries if any(t in q["sql"] for t in ROUTING_TABLES)]
        return len(reads), [o.ticket for o in opened]

    later = MONDAY_10_BERLIN + timedelta(hours=2)
    with running(Batch(in_a, [])):
        first_reads, [first] = routing_reads([_request("gate", pages[0])], MONDAY_10_BERLIN)
        second_reads, [second] = routing_reads([_request("billing", pages[1])], later)
    outside_reads, [outside] = routing_reads([_request("after", pages[2])], later)

    assert first_reads > 0 and second_reads == 0
    assert outside_reads == first_reads  # outside a batch, each call reads its own
    assert (first.opened_at, second.opened_at) == (MONDAY_10_BERLIN, later)
    assert second.resolve_due_at - first.resolve_due_at == timedelta(hours=2)
    assert _comparable(second) == _comparable(outside)


def test_a_batch_reads_a_clients_calendar_once_whichever_step_asks(in_a, role, pages):
    """Flows' deadlines and the tickets a later step opens share the client's calendar."""
    from deliveries.services.processing import Batch, running
    from owners.services.schedules import business_calendar

    def calendar_reads(action) -> int:
        with CaptureQueriesContext(connection) as queries:
            action()
        tables = ("owners_businesscalendar", "owners_holiday")
        return sum(any(t in q["sql"] for t in tables) for q in queries.captured_queries)

    client = pages[0].client
    with running(Batch(in_a, [])):
        assert calendar_reads(lambda: business_calendar(in_a, client)) > 0
        opening = [_request("after-flows", pages[0])]
        assert calendar_reads(lambda: tickets.open_tickets(in_a, opening)) == 0
    outside = [_request("outside", pages[1])]
    assert calendar_reads(lambda: tickets.open_tickets(in_a, outside)) > 0
