"""Backlog incidents: one ticket through the owner map while processing is behind, closed by
the check itself once the backlog drains. The measurement time is passed in (``now``), so
every assertion on times is exact and no test depends on the date it runs on."""

import logging
from datetime import timedelta

import pytest
from django.db import IntegrityError, transaction
from django.test import Client as DjangoClient
from django.test import override_settings
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from deliveries.models import Event, EventProcessing, ProcessingStatus
from deliveries.services import ingest_events
from meshline.env import ConfigError, env_minutes_or_seconds
from owners.models import (
    BacklogIncident,
    Notification,
    Priority,
    Ticket,
    TicketSource,
    TicketStatus,
)
from owners.services import tickets
from owners.services.backlog_incidents import Limits, check
from owners.tasks import backlog_sweep
from tests.owners.factories import make_role, make_rule

pytestmark = pytest.mark.django_db

LIMITS = Limits(lag_seconds=30 * 60, pending=50_000)


@pytest.fixture
def now():
    """The measurement time every check in a test is given (whole seconds: exact lags)."""
    return timezone.now().replace(microsecond=0)


@pytest.fixture
def operator_role(org_a, owner):
    """Organization A's owner map sends processing.lagging to its operators (the owner)."""
    with scope(organization=org_a):
        role = make_role(org_a, slug="platform-operator", name="Platform Operator", people=[owner])
        make_rule(org_a, role, event_type="processing.lagging")
        return role


@pytest.fixture
def seo_role(org_a, member):
    """Owns page.published: the owner of the waiting events."""
    with scope(organization=org_a):
        role = make_role(org_a, people=[member])
        make_rule(org_a, role, event_type="page.published")
        return role


@pytest.fixture
def pending(event_body):
    """pending(org, n, waited, start=0): store n events still pending, the oldest having
    waited ``waited`` (the rest one second less each) by ``at``."""

    def store(organization, n, waited, at, start=0, deliverable_id="LP-2041"):
        bodies = [
            event_body(idempotency_key=f"evt-{start + i}", deliverable_id=deliverable_id)
            for i in range(n)
        ]
        with scope(organization=organization):
            ids = [r.event_id for r in ingest_events(organization, bodies)]
        with scopes_disabled():
            for i, event_id in enumerate(ids):
                EventProcessing.objects.filter(event_id=event_id).update(
                    enqueued_at=at - waited + timedelta(seconds=i)
                )
        return ids

    return store


def drain(organization) -> None:
    """What a worker does to the backlog, as far as the check can see."""
    with scopes_disabled():
        EventProcessing.objects.filter(
            organization=organization, status=ProcessingStatus.PENDING
        ).update(status=ProcessingStatus.PROCESSED, processed_at=timezone.now())


def trail(organization, event_type) -> list[Event]:
    with scopes_disabled():
        return list(
            Event.objects.filter(organization=organization, event_type=event_type).order_by("pk")
        )


def incidents(organization) -> list[BacklogIncident]:
    with scopes_disabled():
        return list(
            BacklogIncident.objects.filter(organization=organization)
            .select_related("ticket")
            .order_by("opened_at")
        )


def test_lag_past_the_limit_opens_one_incident_with_a_ticket_for_the_operator_role(
    org_a, owner, client_acme, operator_role, pending, now
):
    pending(org_a, 3, timedelta(minutes=31), now)

    with scope(organization=org_a):
        incident = check(org_a, now, LIMITS)

    assert incident.is_open and incident.opened_at == now and incident.measured_at == now
    assert (incident.pending, incident.lag_seconds) == (3, 31 * 60)
    assert (incident.lag_limit_seconds, incident.depth_limit) == (1800, 50_000)
    ticket = incident.ticket
    assert (ticket.source, ticket.priority, ticket.status) == (
        TicketSource.INCIDENT,
        Priority.P1,
        TicketStatus.OPEN,
    )
    assert ticket.owner_role == operator_role and ticket.assignee == owner
    assert ticket.opened_at == now
    assert ticket.title == "Processing is behind: 3 events pending, the oldest waiting 31 min"
    assert ticket.context["reasons"] == [
        "The oldest pending event has waited 31 min, longer than the limit of 30 min."
    ]
    assert ticket.context["remediation"]
    with scope(organization=org_a):
        assert ticket.opened_by() == {
            "kind": "backlog_incident",
            "incident_id": str(incident.pk),
            "opened_at": now.isoformat(),
            "closed_at": None,
        }
        assert Notification.objects.filter(ticket=ticket, recipient=owner).count() == 1
    [lagging] = trail(org_a, "processing.lagging")
    assert lagging.occurred_at == now
    assert lagging.payload["incident_id"] == str(incident.pk)
    assert (lagging.payload["pending"], lagging.payload["lag_seconds"]) == (3, 31 * 60)
    [opened] = trail(org_a, "ticket.opened")
    assert opened.occurred_at == now


def test_within_both_limits_nothing_opens(org_a, client_acme, operator_role, pending, now):
    pending(org_a, 3, timedelta(minutes=30), now)  # exactly the limit is not past it

    with scope(organization=org_a):
        assert check(org_a, now, LIMITS) is None

    assert incidents(org_a) == []
    assert trail(org_a, "processing.lagging") == []


def test_owners_of_the_waiting_events_are_told_once(
    org_a, owner, member, client_acme, operator_role, seo_role, pending, now
):
    pending(org_a, 2, timedelta(minutes=45), now)

    with scope(organization=org_a):
        incident = check(org_a, now, LIMITS)
        check(org_a, now + timedelta(minutes=1), LIMITS)
        told = list(Notification.objects.filter(recipient=member))

    assert len(told) == 1  # one channel (the account email), once per incident
    assert told[0].ticket == incident.ticket
    assert "SEO Delivery Owner's events wait (page.published)" in told[0].subject
    assert told[0].body["incident_id"] == str(incident.pk)
    with scope(organization=org_a):  # the operator heard through the ticket, only once
        assert Notification.objects.filter(recipient=owner).count() == 1


def test_a_second_check_while_lagging_keeps_the_ticket_with_the_latest_numbers(
    org_a, client_acme, operator_role, pending, now
):
    pending(org_a, 2, timedelta(minutes=40), now)
    later = now + timedelta(minutes=5)
    with scope(organization=org_a):
        first = check(org_a, now, LIMITS)
        pending(org_a, 3, timedelta(seconds=10), later, start=100)
        second = check(org_a, later, LIMITS)

    assert second.pk == first.pk
    [incident] = incidents(org_a)
    assert (incident.pending, incident.lag_seconds, incident.measured_at) == (5, 45 * 60, later)
    assert (incident.peak_pending, incident.peak_lag_seconds) == (5, 45 * 60)
    with scopes_disabled():
        [ticket] = Ticket.objects.filter(organization=org_a, source=TicketSource.INCIDENT)
    assert ticket.pk == first.ticket_id
    assert (ticket.context["pending"], ticket.context["lag_seconds"]) == (5, 45 * 60)
    assert ticket.context["measured_at"] == later.isoformat()
    assert len(trail(org_a, "processing.lagging")) == 1


def test_the_incident_closes_itself_when_the_backlog_drains(
    org_a, client_acme, operator_role, pending, now
):
    pending(org_a, 2, timedelta(minutes=50), now)
    drained_at = now + timedelta(minutes=3)
    with scope(organization=org_a):
        opened = check(org_a, now, LIMITS)
        drain(org_a)
        closed = check(org_a, drained_at, LIMITS)

    assert closed.pk == opened.pk and closed.closed_at == drained_at
    assert (closed.pending, closed.lag_seconds, closed.peak_lag_seconds) == (0, 0, 50 * 60)
    with scopes_disabled():
        ticket = Ticket.objects.get(pk=opened.ticket_id)
    assert ticket.status == TicketStatus.RESOLVED and ticket.resolved_at == drained_at
    assert ticket.closed_note.startswith("Caught up at ")
    assert "Worst while open: 2 pending, 50 min behind." in ticket.closed_note
    [caught_up] = trail(org_a, "processing.caught_up")
    assert caught_up.occurred_at == drained_at
    assert caught_up.payload["ticket_id"] == str(ticket.pk)
    [resolved] = trail(org_a, "ticket.resolved")
    assert resolved.occurred_at == drained_at

    # Nothing left to close: the next checks do nothing; the next backlog is a new incident.
    with scope(organization=org_a):
        assert check(org_a, drained_at + timedelta(minutes=1), LIMITS) is None
        pending(org_a, 1, timedelta(minutes=31), drained_at + timedelta(hours=1), start=10)
        again = check(org_a, drained_at + timedelta(hours=1), LIMITS)
    assert again.pk != opened.pk and again.ticket_id != opened.ticket_id
    assert [i.is_open for i in incidents(org_a)] == [False, True]


def test_more_pending_events_than_the_depth_limit_open_an_incident_without_lag(
    org_a, client_acme, operator_role, pending, now
):
    limits = Limits(lag_seconds=1800, pending=3)
    ids = pending(org_a, 4, timedelta(seconds=5), now)

    with scope(organization=org_a):
        incident = check(org_a, now, limits)
    assert incident.ticket.context["reasons"] == ["4 events are pending, more than the limit of 3."]

    with scopes_disabled():  # one processed: 3 pending is at the limit, not past it
        EventProcessing.objects.filter(event_id=ids[0]).update(status=ProcessingStatus.PROCESSED)
    with scope(organization=org_a):
        assert check(org_a, now + timedelta(minutes=1), limits).closed_at is not None


@override_settings(MESHLINE_LAG_INCIDENT_SECONDS=60, MESHLINE_BACKLOG_INCIDENT_DEPTH=10)
def test_the_limits_come_from_the_settings(org_a, client_acme, operator_role, pending, now):
    pending(org_a, 1, timedelta(seconds=61), now)

    with scope(organization=org_a):
        incident = check(org_a, now)

    assert (incident.lag_limit_seconds, incident.depth_limit) == (60, 10)
    assert "longer than the limit of 60 s" in incident.ticket.context["reasons"][0]


def test_without_an_owner_rule_the_incident_is_kept_without_a_ticket_and_logged_once(
    org_a, owner, client_acme, pending, now, caplog
):
    pending(org_a, 2, timedelta(hours=2), now)
    with (
        caplog.at_level(logging.WARNING, logger="owners.services.backlog_incidents"),
        scope(organization=org_a),
    ):
        first = check(org_a, now, LIMITS)
        second = check(org_a, now + timedelta(minutes=1), LIMITS)

    assert second.pk == first.pk and second.ticket_id is None
    assert "No active rule matches event type 'processing.lagging'" in second.ticket_error
    assert caplog.text.count("has no ticket") == 1
    assert len(trail(org_a, "processing.lagging")) == 1  # on record all the same
    with scopes_disabled():
        assert not Ticket.objects.filter(organization=org_a).exists()

    # An admin adds the rule: the next check opens the ticket, once.
    with scope(organization=org_a):
        make_rule(org_a, make_role(org_a, people=[owner]), event_type="processing.lagging")
        third = check(org_a, now + timedelta(minutes=2), LIMITS)
        check(org_a, now + timedelta(minutes=3), LIMITS)
    assert third.pk == first.pk and third.ticket is not None and third.ticket_error == ""
    assert third.ticket.opened_at == now + timedelta(minutes=2)
    with scopes_disabled():
        assert Ticket.objects.filter(organization=org_a).count() == 1


def test_a_ticket_closed_by_hand_stays_closed_and_no_second_one_opens(
    org_a, owner, client_acme, operator_role, pending, now
):
    pending(org_a, 2, timedelta(minutes=40), now)
    with scope(organization=org_a):
        incident = check(org_a, now, LIMITS)
        tickets.resolve(incident.ticket, tickets.Actor.for_user(owner), note="scaled workers")
        check(org_a, now + timedelta(minutes=1), LIMITS)
        drain(org_a)
        closed = check(org_a, now + timedelta(minutes=2), LIMITS)

    assert closed.closed_at == now + timedelta(minutes=2)
    with scopes_disabled():
        [ticket] = Ticket.objects.filter(organization=org_a)
    assert ticket.closed_note == "scaled workers"  # not overwritten by the check
    assert len(trail(org_a, "ticket.resolved")) == 1


def test_the_database_refuses_a_second_open_incident(org_a, now):
    fields = {
        "organization": org_a,
        "opened_at": now,
        "measured_at": now,
        "lag_limit_seconds": 1,
        "depth_limit": 1,
        "pending": 1,
        "lag_seconds": 1,
        "peak_pending": 1,
        "peak_lag_seconds": 1,
    }
    with scope(organization=org_a):
        BacklogIncident.objects.create(**fields)
        BacklogIncident.objects.create(**{**fields, "closed_at": now})  # closed ones: any number
        with pytest.raises(IntegrityError), transaction.atomic():
            BacklogIncident.objects.create(**fields)


def test_the_sweep_checks_only_organizations_past_a_limit_or_with_an_incident_open(
    org_a, org_b, client_acme, client_b_acme, operator_role, pending
):
    """Beat's task, run eagerly: it fans out, and each organization's task measures now."""
    now = timezone.now()
    pending(org_a, 2, timedelta(minutes=31), now)
    pending(org_b, 2, timedelta(minutes=5), now)  # behind, but within the limits

    assert backlog_sweep() == 1
    [incident] = incidents(org_a)
    assert incident.is_open and incident.ticket is not None
    assert incidents(org_b) == []
    assert backlog_sweep() == 1  # past a limit and with an incident open: checked once
    assert [i.pk for i in incidents(org_a)] == [incident.pk]

    drain(org_a)
    assert backlog_sweep() == 1  # A's open incident: only a check can close it
    assert not incidents(org_a)[0].is_open
    assert backlog_sweep() == 0


def test_another_organizations_backlog_never_touches_this_ones_incident(
    org_a, org_b, owner, outsider, client_acme, client_b_acme, operator_role, pending, now
):
    pending(org_a, 2, timedelta(minutes=31), now)
    with scope(organization=org_b):  # B routes its incidents too, and is far behind
        make_rule(org_b, make_role(org_b, people=[outsider]), event_type="processing.lagging")
    pending(org_b, 5, timedelta(hours=3), now, start=50)

    with scope(organization=org_a):
        a = check(org_a, now, LIMITS)
    with scope(organization=org_b):
        b = check(org_b, now, LIMITS)

    assert (a.pending, a.lag_seconds) == (2, 31 * 60)  # A's numbers only
    assert (b.pending, b.lag_seconds) == (5, 3 * 3600)
    assert a.ticket.assignee == owner and b.ticket.assignee == outsider
    # B's people never see A's ticket, under either organization's URL.
    as_b = DjangoClient()
    as_b.force_login(outsider)
    for org_slug in ("org-a", "org-b"):
        assert as_b.get(f"/o/{org_slug}/tickets/{a.ticket_id}/").status_code == 404
    assert as_b.get(f"/o/org-b/tickets/{b.ticket_id}/").status_code == 200
    # Draining A closes A's incident only.
    drain(org_a)
    with scope(organization=org_a):
        check(org_a, now + timedelta(minutes=1), LIMITS)
    assert [i.is_open for i in incidents(org_a)] == [False]
    assert [i.is_open for i in incidents(org_b)] == [True]


@override_settings(MESHLINE_BACKLOG_INCIDENT_DEPTH=2)
def test_ingestion_accepts_events_while_an_incident_is_open(
    org_a, client_acme, operator_role, pending, api_a, event_body
):
    now = timezone.now()
    pending(org_a, 3, timedelta(hours=1), now)
    with scope(organization=org_a):
        assert check(org_a, now).is_open

    response = api_a.post("/api/v1/events", event_body(idempotency_key="late-1"), format="json")

    assert response.status_code == 202, response.json()
    with scopes_disabled():
        assert EventProcessing.objects.get(event_id=response.json()["id"]).status == "pending"
    response = api_a.post(
        "/api/v1/events",
        {"events": [event_body(idempotency_key=f"late-batch-{n}") for n in range(3)]},
        format="json",
    )
    assert response.status_code == 200
    assert [r["status"] for r in response.json()["results"]] == ["accepted"] * 3


def test_the_tickets_api_says_a_backlog_incident_opened_it(
    org_a, client_acme, operator_role, pending, now, api_a, api_b
):
    pending(org_a, 1, timedelta(hours=1), now)
    with scope(organization=org_a):
        incident = check(org_a, now, LIMITS)

    response = api_a.get(f"/api/v1/tickets/{incident.ticket_id}")
    assert response.status_code == 200
    assert response.json()["opened_by"]["kind"] == "backlog_incident"
    assert response.json()["opened_by"]["incident_id"] == str(incident.pk)
    assert api_b.get(f"/api/v1/tickets/{incident.ticket_id}").status_code == 404


def test_the_dashboard_shows_the_open_incident_to_its_organization_only(
    org_a, member, outsider, client_acme, operator_role, pending, now
):
    pending(org_a, 4, timedelta(minutes=95), now)
    with scope(organization=org_a):
        incident = check(org_a, now, LIMITS)
    as_member, as_outsider = DjangoClient(), DjangoClient()
    as_member.force_login(member)
    as_outsider.force_login(outsider)

    page = as_member.get("/o/org-a/").content.decode()
    assert "Incident open</span>" in page
    assert f'href="/o/org-a/tickets/{incident.ticket_id}/"' in page
    assert '<span class="n">4</span> pending' in page
    assert '<span class="n">95.0 min</span> behind' in page
    other = as_outsider.get("/o/org-b/").content.decode()
    assert "Incident open" not in other and str(incident.ticket_id) not in other
    assert "One opens when the oldest pending event has waited more than 30.0 min" in other


@pytest.mark.parametrize(
    ("env", "seconds"),
    [({}, 1800), ({"M": "45"}, 2700), ({"S": "2"}, 2)],
)
def test_the_lag_limit_is_set_in_minutes_or_in_seconds(monkeypatch, env, seconds):
    for key in ("M", "S"):
        monkeypatch.delenv(f"LAG_{key}", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(f"LAG_{key}", value)
    assert env_minutes_or_seconds("LAG_M", "LAG_S", 30) == seconds


def test_setting_the_lag_limit_in_both_units_is_refused(monkeypatch):
    monkeypatch.setenv("LAG_M", "30")
    monkeypatch.setenv("LAG_S", "5")
    with pytest.raises(ConfigError, match="LAG_M or LAG_S, not both"):
        env_minutes_or_seconds("LAG_M", "LAG_S", 30)
