"""Outbound outages: a receiver that keeps failing is one ticket (not one per event), several
failing at once are one systemic outage with one ticket, and both close themselves when the
receivers answer again."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_scopes import scope

from connectors import services
from connectors.models import OutboundOutage, Subscription
from deliveries.models import Event
from deliveries.services import trail
from flows.models import Incident, IncidentRule
from owners.models import Ticket, TicketStatus

pytestmark = pytest.mark.usefixtures("owner_map")


@pytest.fixture
def failing(org_a, receiver):
    """failing(n): n subscriptions of organization A to gate.failed at the (failing)
    receiver, each with seven deliveries queued."""
    receiver.status = 500

    def make(n, organization=None):
        organization = organization or org_a
        with scope(organization=organization):
            made = [
                Subscription.objects.create(
                    organization=organization,
                    name=f"Receiver {i}",
                    url=f"{receiver.url}/{organization.slug}/{i}",
                    event_types=["gate.failed"],
                )
                for i in range(n)
            ]
            for k in range(7):
                trail.record(organization, "gate.failed", key=f"k-{k}", payload={"n": k})
        return made

    return make


def _trail(org, *types):
    with scope(organization=org):
        return list(
            Event.objects.filter(organization=org, event_type__in=types)
            .order_by("occurred_at", "event_type")
            .values_list("event_type", flat=True)
        )


def _tickets(org):
    with scope(organization=org):
        return list(Ticket.objects.filter(organization=org).order_by("opened_at", "title"))


def test_a_failing_receiver_is_one_ticket_that_resolves_when_it_answers(
    org_a, receiver, failing, client, owner
):
    [subscription] = failing(1)
    now = timezone.now()
    with scope(organization=org_a):
        assert services.send_due(org_a, now=now) == 5  # the breaker opens on the fifth
        assert services.send_due(org_a, now=now + timedelta(hours=1)) == 1  # a probe fails
    [ticket] = _tickets(org_a)
    assert ticket.title == "Outbound subscription failing: Receiver 0"
    assert ticket.owner_role.name == "Account Manager"
    assert ticket.context["subscription_id"] == str(subscription.public_id)
    with scope(organization=org_a):
        assert ticket.opened_by()["kind"] == "outbound_outage"
    assert _trail(org_a, "subscription.failing", "subscription.recovered") == [
        "subscription.failing"
    ]
    # The Connections page says so and links the ticket.
    client.force_login(owner)
    page = client.get("/o/org-a/connections/").content.decode()
    assert "<strong>Receiver 0</strong>'s receiver failing since" in page
    assert f"/o/org-a/tickets/{ticket.pk}/" in page

    receiver.status = 200
    later = now + timedelta(hours=1, minutes=5)
    with scope(organization=org_a):
        assert services.send_due(org_a, now=later) == 7
        ticket.refresh_from_db()
        outage = OutboundOutage.objects.get(organization=org_a)
    assert ticket.status == TicketStatus.RESOLVED
    assert (outage.closed_at, outage.ticket_id) == (later, ticket.pk)
    assert _trail(org_a, "subscription.failing", "subscription.recovered") == [
        "subscription.failing",
        "subscription.recovered",
    ]
    assert len(_tickets(org_a)) == 1
    assert "failing since" not in client.get("/o/org-a/connections/").content.decode()


def test_many_failing_receivers_are_one_systemic_outage(org_a, org_b, receiver, failing, settings):
    settings.MESHLINE_OUTBOUND_OUTAGE_SUBSCRIPTIONS = 3
    failing(2, organization=org_b)  # another tenant's receivers never count for A
    subscriptions = failing(4)
    now = timezone.now()
    with scope(organization=org_a):
        services.send_due(org_a, now=now, limit=1000)
    with scope(organization=org_b):
        services.send_due(org_b, now=now, limit=1000)
    titles = [t.title for t in _tickets(org_a)]
    # The first two get their own tickets; the third makes it systemic; the fourth is
    # covered by the systemic ticket. 28 failed deliveries, three tickets.
    assert sorted(titles) == [
        "Outbound outage: 3 subscriptions' receivers failing",
        "Outbound subscription failing: Receiver 0",
        "Outbound subscription failing: Receiver 1",
    ]
    with scope(organization=org_a):
        systemic = OutboundOutage.objects.get(organization=org_a, subscription=None)
        fourth = OutboundOutage.objects.get(organization=org_a, subscription=subscriptions[3])
    assert systemic.failing == 4 and systemic.ticket.priority == "p1"
    assert fourth.ticket_id is None and "systemic" in fourth.ticket_error
    assert _trail(org_a, "outbound.outage_started") == ["outbound.outage_started"]
    # B has no owner map: its two outages are kept, each saying why it has no ticket.
    assert _tickets(org_b) == []
    with scope(organization=org_b):
        errors = list(
            OutboundOutage.objects.filter(organization=org_b).values_list("ticket_error", flat=True)
        )
    assert len(errors) == 2 and all("No active rule matches" in e for e in errors)

    # The receivers come back: the systemic outage ends with the last of them.
    receiver.status = 200
    with scope(organization=org_a):
        for n, subscription in enumerate(subscriptions):
            assert services.send(
                org_a, _first_held(subscription), now + timedelta(hours=2, seconds=n)
            )
            systemic.refresh_from_db()
            assert (systemic.closed_at is None) == (n < 3)
    assert _trail(org_a, "outbound.outage_ended") == ["outbound.outage_ended"]
    assert {t.status for t in _tickets(org_a)} == {TicketStatus.RESOLVED}


def _first_held(subscription):
    return subscription.deliveries.filter(status="pending").order_by("created_at").first().public_id


def test_an_incident_rule_turns_the_systemic_outage_into_incident_mode(
    org_a, receiver, failing, settings
):
    settings.MESHLINE_OUTBOUND_OUTAGE_SUBSCRIPTIONS = 2
    with scope(organization=org_a):
        IncidentRule.objects.create(
            organization=org_a,
            on=IncidentRule.Trigger.OUTBOUND_OUTAGE,
            title="Receivers are down: non-essential flows paused",
        )
    subscriptions = failing(2)
    now = timezone.now()
    with scope(organization=org_a):
        services.send_due(org_a, now=now, limit=1000)
        incident = Incident.objects.get(organization=org_a)
        assert incident.is_open and incident.declared_by_rule == "outbound.outage_started"
        receiver.status = 200
        for subscription in subscriptions:
            services.send(org_a, _first_held(subscription), now + timedelta(hours=2))
        incident.refresh_from_db()
    assert incident.ended_at == now + timedelta(hours=2)
