"""Sending: trail entries fanned out to subscriptions, sent with retries behind a
circuit breaker, paused, resumed and replayed."""

import json
import logging
import time
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from connectors.models import (
    BreakerState,
    OutboundAttempt,
    OutboundDelivery,
    OutboundStatus,
    Subscription,
)
from connectors.services import outages
from deliveries.models import Event
from meshline import outbound

log = logging.getLogger(__name__)

# While one worker sends, others leave the delivery alone for this long.
SEND_LEASE_SECONDS = 120
SEND_DUE_BATCH = 200

# --- outbound -------------------------------------------------------------------------------


def enqueue(organization, events: list[Event], now=None) -> list[OutboundDelivery]:
    """One delivery per matching (subscription, event); sent after the commit.

    Runs inside the transaction that stored the events, so a delivery exists exactly when
    its event does; the unique (subscription, event) makes a retried step a no-op. A
    subscription gets the events received since it was created: replaying older events
    (deliveries.services.replay) sends a new subscriber no history.
    """
    subscriptions = [
        s
        for s in _subscriptions(organization)
        if any(e.event_type in s.event_types for e in events)
    ]
    if not subscriptions:
        return []
    now = now or timezone.now()
    deliveries = [
        OutboundDelivery(
            organization=organization,
            subscription=subscription,
            event=event,
            next_attempt_at=now,
            created_at=now,
        )
        for event in events
        for subscription in subscriptions
        if subscription.matches(event) and subscription.created_at <= event.received_at
    ]
    OutboundDelivery.objects.bulk_create(deliveries, ignore_conflicts=True)
    from connectors.tasks import send_outbound

    for delivery in deliveries:
        if not delivery.subscription.paused:
            send_outbound.publish_on_commit(
                organization_id=organization.pk, delivery_id=str(delivery.public_id)
            )
    return deliveries


def _subscriptions(organization) -> list[Subscription]:
    """The organization's subscriptions, read once per processing batch (every trail entry
    the batch appends asks again), else each time."""
    from deliveries.services.processing import current_batch

    batch = current_batch()
    if batch is None:
        return list(Subscription.objects.filter(organization=organization))
    return batch.remember(
        "connectors.subscriptions",
        lambda: list(Subscription.objects.filter(organization=organization)),
    )


def on_batch_processed(batch) -> None:
    """processing_steps: canonical events, once processed, go to their subscribers."""
    enqueue(batch.organization, batch.events)


def on_trail_appended(organization, events) -> None:
    """trail_listeners: Meshline's own entries (ticket.opened, gate.failed...) likewise."""
    enqueue(organization, list(events))


def webhook_body(event: Event) -> bytes:
    """The Standard Webhooks payload shape: type, timestamp, data (the event envelope)."""
    return json.dumps(
        {
            "type": event.event_type,
            "timestamp": event.occurred_at.isoformat(),
            "data": {
                "id": str(event.pk),
                "event_type": event.event_type,
                "client_id": event.client.client_id if event.client_id else None,
                "deliverable_id": event.deliverable.deliverable_id
                if event.deliverable_id
                else None,
                "occurred_at": event.occurred_at.isoformat(),
                "correlation_id": event.correlation_id or None,
                "actor": {"role": event.actor_role, "id": event.actor_id},
                "payload": event.payload,
            },
        },
        sort_keys=True,
        default=str,
    ).encode()


def _claim(organization, delivery_id, now) -> OutboundDelivery | None:
    """Lock the delivery and its subscription; lease it if due and the breaker allows."""
    with transaction.atomic():
        delivery = (
            OutboundDelivery.objects.select_for_update()
            .filter(organization=organization, public_id=delivery_id)
            .first()
        )
        if (
            delivery is None
            or delivery.status != OutboundStatus.PENDING
            or delivery.next_attempt_at > now
        ):
            return None
        subscription = Subscription.objects.select_for_update().get(pk=delivery.subscription_id)
        if not subscription.may_send(now):
            return None
        if subscription.ordered and _waits_for_an_earlier_one(delivery):
            return None
        if subscription.breaker_state == BreakerState.OPEN:
            # Cooled down: this delivery is the one probe; the others wait for its verdict.
            subscription.breaker_state = BreakerState.HALF_OPEN
            subscription.save(update_fields=["breaker_state"])
        elif subscription.breaker_state == BreakerState.HALF_OPEN:
            return None
        delivery.attempts += 1
        delivery.next_attempt_at = now + timedelta(seconds=SEND_LEASE_SECONDS)
        delivery.save(update_fields=["attempts", "next_attempt_at"])
    delivery.subscription = subscription
    return delivery


def _waits_for_an_earlier_one(delivery: OutboundDelivery) -> bool:
    """For an ordered subscription: an earlier delivery of the same deliverable is still
    pending (a failed one that gave up no longer holds the line)."""
    deliverable_id = Event.objects.filter(pk=delivery.event_id).values("deliverable_id")[:1]
    return (
        OutboundDelivery.objects.filter(
            organization=delivery.organization_id,
            subscription=delivery.subscription_id,
            status=OutboundStatus.PENDING,
            pk__lt=delivery.pk,
            event__deliverable_id__in=deliverable_id,
        )
        .exclude(event__deliverable_id__isnull=True)
        .exists()
    )


def send(organization, delivery_id, now=None) -> OutboundAttempt | None:
    """One attempt of one delivery; the recorded attempt, or None if it was not due.

    The HTTP request runs outside any transaction (a slow receiver must not hold locks);
    the lease set by the claim keeps a concurrent sweeper off it meanwhile.
    """
    now = now or timezone.now()
    delivery = _claim(organization, delivery_id, now)
    if delivery is None:
        return None
    subscription = delivery.subscription
    event = Event.objects.select_related("client", "deliverable").get(pk=delivery.event_id)
    body = webhook_body(event)
    started = time.monotonic()
    status_code, error, excerpt = None, "", ""
    try:
        headers = outbound.signature_headers(subscription.secret, delivery.message_id, body)
        headers["Content-Type"] = "application/json"
        reply = outbound.post_reply(subscription.url, body, headers)
        status_code, excerpt = reply.status, reply.excerpt
    except outbound.OutboundError as exc:
        error, excerpt = str(exc)[:100], exc.excerpt
        if error.startswith("HTTP "):
            status_code = int(error[5:])
    latency = int((time.monotonic() - started) * 1000)
    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().get(pk=subscription.pk)
        attempt = OutboundAttempt.objects.create(
            organization=organization,
            delivery=delivery,
            attempted_at=now,
            status_code=status_code,
            error=error,
            latency_ms=latency,
            response_excerpt=excerpt[:500],
        )
        subscription.organization = organization
        was_failing = subscription.breaker_opens > 0
        if error:
            subscription.record_failure(now)
            if not was_failing and subscription.breaker_opens:
                outages.breaker_opened(subscription, now)
            delivery.last_error = error
            if delivery.attempts >= delivery.MAX_ATTEMPTS:
                delivery.status = OutboundStatus.FAILED
            else:
                delivery.next_attempt_at = now + delivery.retry_delay()
        else:
            subscription.record_success()
            if was_failing:
                outages.recovered(subscription, now)
            delivery.status = OutboundStatus.DELIVERED
            delivery.delivered_at = now
            delivery.last_error = ""
        subscription.save(
            update_fields=[
                "breaker_state",
                "consecutive_failures",
                "breaker_opens",
                "breaker_until",
            ]
        )
        delivery.save(update_fields=["status", "next_attempt_at", "delivered_at", "last_error"])
    return attempt


def send_due(organization, now=None, limit: int = SEND_DUE_BATCH) -> int:
    """Attempt every due delivery of the organization, oldest first (so an ordered
    subscription's held delivery goes right after the one it waited for); attempts made.

    The retry path: what failed waits for its backoff, what the breaker held waits for the
    cool-down, and the beat task calls this once per organization with work due.
    """
    now = now or timezone.now()
    due = (
        OutboundDelivery.objects.filter(
            organization=organization,
            status=OutboundStatus.PENDING,
            next_attempt_at__lte=now,
            subscription__paused=False,
        )
        .order_by("pk")
        .values_list("public_id", flat=True)[:limit]
    )
    return sum(1 for delivery_id in list(due) if send(organization, delivery_id, now) is not None)


def set_paused(subscription: Subscription, paused: bool, now=None) -> None:
    """Pause (deliveries queue, nothing is sent) or resume (due ones go out at once)."""
    subscription.paused = paused
    subscription.save(update_fields=["paused"])
    if not paused:
        from connectors.tasks import send_due_for

        send_due_for.publish_on_commit(organization_id=subscription.organization_id)


def subscription_backlog(organization) -> dict[int, int]:
    """Pending deliveries per subscription, in one query."""
    rows = (
        OutboundDelivery.objects.filter(organization=organization, status=OutboundStatus.PENDING)
        .values("subscription_id")
        .annotate(n=Count("pk"))
    )
    return {row["subscription_id"]: row["n"] for row in rows}


def replay_outbound(subscription: Subscription, since: datetime, until: datetime, now=None) -> int:
    """Send again every delivery of ``subscription`` whose entry occurred in [since, until)
    and that gave up (failed) or was delivered; how many were queued.

    Each keeps its webhook-id (receivers deduplicate on it) and its attempt log; its retry
    count starts over. Pending ones are on their way already and are left alone.
    """
    now = now or timezone.now()
    queued = OutboundDelivery.objects.filter(
        organization=subscription.organization_id,
        subscription=subscription,
        event__occurred_at__gte=since,
        event__occurred_at__lt=until,
        status__in=[OutboundStatus.FAILED, OutboundStatus.DELIVERED],
    ).update(status=OutboundStatus.PENDING, attempts=0, next_attempt_at=now, delivered_at=None)
    if queued and not subscription.paused:
        from connectors.tasks import send_due_for

        send_due_for.publish_on_commit(organization_id=subscription.organization_id)
    return queued
