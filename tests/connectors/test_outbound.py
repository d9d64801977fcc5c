"""Outbound subscriptions: one signed delivery per matching trail entry, retried with
backoff, every attempt recorded, held by the circuit breaker; and the issue's "Done when"
chain from a WordPress webhook to a ticket.opened delivered to a receiver that was down."""

import json
import random
from datetime import timedelta

import pytest
from django.utils import timezone
from django_scopes import scope
from standardwebhooks import Webhook

from connectors import services
from connectors.models import (
    BreakerState,
    OutboundAttempt,
    OutboundDelivery,
    OutboundStatus,
    Subscription,
)
from deliveries.models import Deliverable
from deliveries.services import trail
from gates.models import CheckName
from tests.connectors.conftest import fixture


@pytest.fixture
def subscribe(org_a):
    def make(url, event_types=("ticket.opened",), **fields):
        with scope(organization=org_a):
            return Subscription.objects.create(
                organization=org_a, name="Ops", url=url, event_types=list(event_types), **fields
            )

    return make


def _record(org_a, key="k-1", event_type="gate.failed", deliverable=None):
    with scope(organization=org_a):
        return trail.record(org_a, event_type, key=key, payload={"n": 1}, deliverable=deliverable)


def _deliveries(org_a):
    with scope(organization=org_a):
        return list(OutboundDelivery.objects.filter(organization=org_a).order_by("created_at"))


def _attempts(org_a):
    with scope(organization=org_a):
        return list(
            OutboundAttempt.objects.filter(organization=org_a).order_by("attempted_at", "pk")
        )


def test_done_when_wordpress_publish_to_ticket_opened_at_a_receiver_that_was_down(
    org_a,
    wp_endpoint,
    post_hook,
    owner_map,
    make_gate,
    receiver,
    subscribe,
):
    make_gate(CheckName.SCHEMA_CHECK)
    subscription = subscribe(f"{receiver.url}/meshline")
    receiver.status = 503  # down for the first attempts
    endpoint, _ = wp_endpoint

    assert post_hook(endpoint, fixture("wordpress_post_published.json")).status_code == 202

    [delivery] = _deliveries(org_a)  # the gate failed, a ticket opened, its entry queued
    assert delivery.event.event_type == "ticket.opened"
    assert delivery.event.deliverable.deliverable_id == "LP-77"
    assert (delivery.status, delivery.attempts) == (OutboundStatus.PENDING, 1)

    now = timezone.now()
    with scope(organization=org_a):
        assert services.send_due(org_a, now=now) == 0  # backing off: nothing due yet
        assert services.send_due(org_a, now=now + timedelta(minutes=1)) == 1
        receiver.status = 200
        assert services.send_due(org_a, now=now + timedelta(minutes=10)) == 1
        assert services.send_due(org_a, now=now + timedelta(hours=10)) == 0

    [delivery] = _deliveries(org_a)
    assert (delivery.status, delivery.attempts) == (OutboundStatus.DELIVERED, 3)
    attempts = _attempts(org_a)
    assert [(a.status_code, a.error) for a in attempts] == [
        (503, "HTTP 503"),
        (503, "HTTP 503"),
        (200, ""),
    ]
    assert attempts[-1].response_excerpt == "ok"
    assert len(receiver.requests) == 3
    ids = {headers["webhook-id"] for _path, headers, _body in receiver.requests}
    assert ids == {delivery.message_id}  # the same id on every retry
    path, headers, body = receiver.requests[-1]
    assert path == "/meshline"
    sent = Webhook(subscription.secret).verify(body, headers)
    assert sent["type"] == "ticket.opened"
    assert sent["data"]["deliverable_id"] == "LP-77"
    assert sent["data"]["client_id"] == "acme"


def test_canonical_events_reach_subscribers_once_processed(
    org_a,
    wp_endpoint,
    post_hook,
    receiver,
    subscribe,
):
    subscribe(f"{receiver.url}/", event_types=["page.published"])
    endpoint, _ = wp_endpoint
    post_hook(endpoint, fixture("wordpress_post_published.json"))
    [delivery] = _deliveries(org_a)
    assert delivery.status == OutboundStatus.DELIVERED
    [(_path, _headers, body)] = receiver.requests
    assert json.loads(body)["data"]["payload"]["url"] == "https://acme.example/lp/ridgeline-gtx"


def test_a_trail_entry_is_queued_once_per_subscription_and_filtered_by_client(
    org_a, client_acme, client_beta, subscribe, django_capture_on_commit_callbacks
):

    all_clients = subscribe("https://hooks.example/a", event_types=["gate.failed"], paused=True)
    beta_only = subscribe(
        "https://hooks.example/b", event_types=["gate.failed"], client=client_beta, paused=True
    )
    subscribe("https://hooks.example/c", event_types=["ticket.opened"], paused=True)
    with scope(organization=org_a):
        deliverable = Deliverable.objects.create(
            organization=org_a, client=client_acme, deliverable_id="LP-1"
        )
    event = _record(org_a, deliverable=deliverable)
    _record(org_a, deliverable=deliverable)  # the same key again: nothing new
    [delivery] = _deliveries(org_a)
    assert (delivery.subscription_id, delivery.event_id) == (all_clients.pk, event.pk)
    assert beta_only.pk != delivery.subscription_id


def test_paused_subscriptions_queue_and_resume_sends(
    org_a,
    receiver,
    subscribe,
    django_capture_on_commit_callbacks,
):
    subscription = subscribe(f"{receiver.url}/", event_types=["gate.failed"], paused=True)
    with django_capture_on_commit_callbacks(execute=True):
        _record(org_a)
    with scope(organization=org_a):
        assert services.send_due(org_a) == 0
        assert receiver.requests == []
        with django_capture_on_commit_callbacks(execute=True):
            services.set_paused(subscription, False)
    [delivery] = _deliveries(org_a)
    assert delivery.status == OutboundStatus.DELIVERED
    assert len(receiver.requests) == 1


def test_circuit_breaker_opens_holds_probes_once_and_closes(
    org_a,
    receiver,
    subscribe,
):
    subscription = subscribe(f"{receiver.url}/", event_types=["gate.failed"], paused=True)
    receiver.status = 500
    for n in range(7):
        _record(org_a, key=f"k-{n}")
    now = timezone.now()
    with scope(organization=org_a):
        subscription.paused = False
        subscription.save()
        # Five deliveries fail: the breaker opens and the other two are held.
        assert services.send_due(org_a, now=now) == 5
        subscription.refresh_from_db()
        assert subscription.breaker_state == BreakerState.OPEN
        assert subscription.breaker_until == now + Subscription.BREAKER_COOLDOWN
        assert services.send_due(org_a, now=now + timedelta(seconds=30)) == 0
        # Cooled down: exactly one probe goes out; it fails, the cool-down doubles.
        later = now + timedelta(hours=1)
        assert services.send_due(org_a, now=later) == 1
        subscription.refresh_from_db()
        assert subscription.breaker_state == BreakerState.OPEN
        assert subscription.breaker_until == later + 2 * Subscription.BREAKER_COOLDOWN
        # The receiver is back: the next probe succeeds, the breaker closes and the rest
        # follow in the same run.
        receiver.status = 200
        assert services.send_due(org_a, now=later + timedelta(minutes=2)) == 7
        subscription.refresh_from_db()
        assert (subscription.breaker_state, subscription.consecutive_failures) == (
            BreakerState.CLOSED,
            0,
        )
    assert {d.status for d in _deliveries(org_a)} == {OutboundStatus.DELIVERED}
    assert len(receiver.requests) == 5 + 1 + 7


def test_retry_delay_doubles_with_jitter_and_is_capped():
    delivery = OutboundDelivery()
    rng = random.Random(7)
    delays = []
    for attempts in range(1, 11):
        delivery.attempts = attempts
        delays.append(delivery.retry_delay(rng))
    base = OutboundDelivery.RETRY_BASE
    for attempts, delay in enumerate(delays, start=1):
        expected = min(base * 2 ** (attempts - 1), OutboundDelivery.RETRY_CAP)
        assert expected * 0.8 <= delay <= expected * 1.2
    assert sum(delays, timedelta()) > timedelta(hours=6)  # retries span hours


def test_a_delivery_gives_up_after_max_attempts(org_a, subscribe, receiver):
    subscription = subscribe(f"{receiver.url}/", event_types=["gate.failed"], paused=True)
    receiver.status = 502
    _record(org_a)
    now = timezone.now()
    with scope(organization=org_a):
        subscription.paused = False
        subscription.save()
        OutboundDelivery.objects.filter(organization=org_a).update(
            attempts=OutboundDelivery.MAX_ATTEMPTS - 1
        )
        assert services.send_due(org_a, now=now) == 1
    [delivery] = _deliveries(org_a)
    assert (delivery.status, delivery.last_error) == (OutboundStatus.FAILED, "HTTP 502")


def test_a_blocked_address_is_recorded_as_a_failed_attempt(org_a, subscribe, settings):
    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    subscription = subscribe("http://127.0.0.1:9/", event_types=["gate.failed"], paused=True)
    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = []  # the operator withdrew the allowance
    _record(org_a)
    with scope(organization=org_a):
        subscription.paused = False
        subscription.save()
        assert services.send_due(org_a) == 1
    [attempt] = _attempts(org_a)
    assert (attempt.status_code, attempt.error) == (None, "blocked address")


def test_replaying_a_time_range_resends_delivered_and_failed_ones_once_more(
    org_a, receiver, subscribe, django_capture_on_commit_callbacks
):
    subscription = subscribe(f"{receiver.url}/", event_types=["gate.failed"], paused=True)
    base = timezone.now() - timedelta(days=1)
    with scope(organization=org_a):
        for n, hours in enumerate((0, 1, 2, 5)):
            trail.record(
                org_a,
                "gate.failed",
                key=f"r-{n}",
                payload={"n": n},
                occurred_at=base + timedelta(hours=hours),
            )
        subscription.paused = False
        subscription.save()
        assert services.send_due(org_a) == 4
        deliveries = sorted(_deliveries(org_a), key=lambda d: d.event.occurred_at)
        OutboundDelivery.objects.filter(pk=deliveries[1].pk).update(status=OutboundStatus.FAILED)
        OutboundDelivery.objects.filter(pk=deliveries[2].pk).update(status=OutboundStatus.PENDING)
        first_ids = [headers["webhook-id"] for _p, headers, _b in receiver.requests]
        receiver.requests.clear()

        with django_capture_on_commit_callbacks(execute=True):
            queued = services.replay_outbound(subscription, base, base + timedelta(hours=3))

    # 0 h (delivered) and 1 h (failed) again; 2 h is pending (on its way), 5 h out of range.
    assert queued == 2
    resent = [headers["webhook-id"] for _p, headers, _b in receiver.requests]
    assert sorted(resent) == sorted([deliveries[0].message_id, deliveries[1].message_id])
    assert set(resent) <= set(first_ids)  # the same ids as the first time
    assert {d.status for d in _deliveries(org_a)} == {
        OutboundStatus.DELIVERED,
        OutboundStatus.PENDING,
    }


def test_a_replay_sends_a_subscription_none_of_the_events_before_it(
    org_a, client_acme, subscribe, replay_events, django_capture_on_commit_callbacks
):
    from deliveries.services import ingest_events
    from tests.gates.conftest import event

    def submit(key):
        with scope(organization=org_a), django_capture_on_commit_callbacks(execute=True):
            (result,) = ingest_events(org_a, [event("intake.received", "LP-1", {}, key=key)])
        return result.event_id

    old = submit("before")
    subscription = subscribe("https://receiver.example/hook", ["intake.received"], paused=True)
    new = submit("after")
    assert replay_events(org_a, [old, new]).replayed == 2
    assert [(d.subscription_id, str(d.event_id)) for d in _deliveries(org_a)] == [
        (subscription.pk, new)
    ]


def test_an_ordered_subscription_holds_a_deliverables_later_events_behind_a_retry(
    org_a, client_acme, receiver, subscribe
):
    ordered = subscribe(f"{receiver.url}/ordered", event_types=["gate.failed"], ordered=True)
    loose = subscribe(f"{receiver.url}/loose", event_types=["gate.failed"])
    with scope(organization=org_a):
        lp1, lp2 = (
            Deliverable.objects.create(organization=org_a, client=client_acme, deliverable_id=ref)
            for ref in ("LP-1", "LP-2")
        )
    first, second, other = (
        _record(org_a, key, deliverable=d) for key, d in (("a", lp1), ("b", lp1), ("c", lp2))
    )

    def delivery(subscription, event):
        with scope(organization=org_a):
            return OutboundDelivery.objects.get(subscription=subscription, event=event).public_id

    now = timezone.now()
    with scope(organization=org_a):
        receiver.status = 500
        assert services.send(org_a, delivery(ordered, first), now).error == "HTTP 500"
        assert services.send(org_a, delivery(loose, first), now).error == "HTTP 500"
        receiver.status = 200
        # LP-1's second event waits behind its first; LP-2's does not; nor does anything
        # for the subscription that did not ask for order.
        assert services.send(org_a, delivery(ordered, second), now) is None
        assert services.send(org_a, delivery(ordered, other), now).status_code == 200
        assert services.send(org_a, delivery(loose, second), now).status_code == 200
        later = now + timedelta(hours=1)
        # Both first events again, LP-1's second for the ordered one, LP-2's for the other.
        assert services.send_due(org_a, now=later) == 4
    # What the ordered receiver got: LP-1's first (refused, then again), its second only
    # after it; LP-2's in between.
    ids = [
        json.loads(body)["data"]["id"] for path, _h, body in receiver.requests if path == "/ordered"
    ]
    assert ids == [str(e.pk) for e in (first, other, first, second)]
