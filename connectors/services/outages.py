"""Outbound outages: a receiver that keeps failing is one ticket, not one per event, and
many failing at once are one systemic outage, not one ticket per receiver.

``send`` calls ``breaker_opened`` when a subscription's breaker opens for the first time
since it last delivered, and ``recovered`` when it delivers again; both run in its
transaction, with the subscription row locked.

- A breaker opens: open the subscription's outage (trail ``subscription.failing``). If
  MESHLINE_OUTBOUND_OUTAGE_SUBSCRIPTIONS or more are failing, the organization's systemic
  outage opens (trail ``outbound.outage_started``) with one ticket through the owner map;
  otherwise this receiver gets its own ticket (owner map: ``subscription.failing``).
  An IncidentRule on ``outbound.outage_started`` can turn the systemic outage into incident
  mode (non-essential flows pause).
- A receiver recovers: its outage closes (``subscription.recovered``) and its ticket, if
  any, resolves itself; when the last failing one recovers, the systemic outage closes too
  (``outbound.outage_ended``) with its ticket.

Deliveries themselves are never dropped: the breaker only holds them (connectors.models).
"""

import logging
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction

from connectors.models import OutboundOutage, Subscription
from deliveries.services import trail
from owners.models import Priority, TicketSource
from owners.services import tickets

log = logging.getLogger(__name__)

FAILING = "subscription.failing"
RECOVERED = "subscription.recovered"
STARTED = "outbound.outage_started"
ENDED = "outbound.outage_ended"
RUNBOOK = (
    "Nothing is lost: deliveries wait behind the breaker, which tries one again after each "
    "cool-down. Check the receiver (its URL, TLS certificate, authentication, the attempts' "
    "responses under Connections); pause the subscription if it is being retired. When it "
    "answers 2xx again the breaker closes, the held deliveries go out in order, and this "
    "ticket resolves itself."
)


def _open_ones(organization):
    return OutboundOutage.objects.filter(organization=organization, closed_at__isnull=True)


def breaker_opened(subscription: Subscription, now: datetime) -> OutboundOutage | None:
    """The subscription's breaker opened: record its outage, and the systemic one when
    enough receivers fail at once. Idempotent: an open outage stands."""
    organization = subscription.organization
    try:
        with transaction.atomic():
            outage = OutboundOutage.objects.create(
                organization=organization, subscription=subscription, opened_at=now
            )
    except IntegrityError:
        return None
    trail.record(
        organization,
        FAILING,
        key=f"outbound-outage:{outage.pk}:opened",
        occurred_at=now,
        payload={
            "outage_id": str(outage.pk),
            "subscription_id": str(subscription.public_id),
            "name": subscription.name,
            "failures": subscription.consecutive_failures,
            "retry_at": subscription.breaker_until.isoformat()
            if subscription.breaker_until
            else None,
        },
    )
    failing = _open_ones(organization).filter(subscription__isnull=False)
    count = failing.count()
    systemic = _open_ones(organization).filter(subscription__isnull=True).first()
    if systemic is not None:
        systemic.failing = max(systemic.failing, count)
        systemic.save(update_fields=["failing"])
        _no_ticket(outage, "The systemic outbound outage's ticket covers this receiver.")
    elif count >= settings.MESHLINE_OUTBOUND_OUTAGE_SUBSCRIPTIONS:
        _start_systemic(organization, failing, count, now)
    else:
        _ensure_ticket(
            outage,
            title=f"Outbound subscription failing: {subscription.name}",
            event_type=FAILING,
            context={
                "subscription_id": str(subscription.public_id),
                "url": subscription.url,
                "failures": subscription.consecutive_failures,
                "remediation": RUNBOOK,
            },
        )
    return outage


def _start_systemic(organization, failing, count: int, now: datetime) -> None:
    names = sorted(failing.values_list("subscription__name", flat=True))
    try:
        with transaction.atomic():
            outage = OutboundOutage.objects.create(
                organization=organization, subscription=None, opened_at=now, failing=count
            )
    except IntegrityError:  # a concurrent send started it: that one stands
        return
    trail.record(
        organization,
        STARTED,
        key=f"outbound-outage:{outage.pk}:opened",
        occurred_at=now,
        payload={"outage_id": str(outage.pk), "failing": count, "subscriptions": names},
    )
    _ensure_ticket(
        outage,
        title=f"Outbound outage: {count} subscriptions' receivers failing",
        event_type=STARTED,
        context={"subscriptions": names, "failing": count, "remediation": RUNBOOK},
        priority=Priority.P1,
    )


def recovered(subscription: Subscription, now: datetime) -> None:
    """The subscription delivered again: close its outage, and the systemic one with the
    last failing receiver."""
    organization = subscription.organization
    outage = _open_ones(organization).filter(subscription=subscription).select_for_update().first()
    if outage is None:
        return
    _close(outage, RECOVERED, now, {"subscription_id": str(subscription.public_id)})
    if _open_ones(organization).filter(subscription__isnull=False).exists():
        return
    systemic = _open_ones(organization).filter(subscription__isnull=True).select_for_update()
    for outage in systemic:
        _close(outage, ENDED, now, {"failing_at_peak": outage.failing})


def _close(outage: OutboundOutage, event_type: str, now: datetime, payload: dict) -> None:
    outage.closed_at = now
    outage.save(update_fields=["closed_at"])
    trail.record(
        outage.organization,
        event_type,
        key=f"outbound-outage:{outage.pk}:closed",
        occurred_at=now,
        payload={
            "outage_id": str(outage.pk),
            "opened_at": outage.opened_at.isoformat(),
            **payload,
        },
    )
    if outage.ticket_id is not None and outage.ticket.is_active:
        tickets.resolve(
            outage.ticket,
            tickets.MESHLINE,
            note=f"Delivering again since {now:%Y-%m-%d %H:%M:%S} UTC.",
            at=now,
        )


def _ensure_ticket(
    outage: OutboundOutage, *, title, event_type, context, priority=Priority.P2
) -> None:
    try:
        ticket, _created = tickets.open_ticket(
            outage.organization,
            source=TicketSource.INCIDENT,
            source_key=f"outbound-outage:{outage.pk}",
            title=title,
            event_type=event_type,
            context={"outage_id": str(outage.pk), **context},
            priority=priority,
            at=outage.opened_at,
        )
    except tickets.NoOwnerError as exc:
        log.warning("outbound outage %s has no ticket: %s", outage.pk, exc)
        _no_ticket(outage, str(exc))
        return
    outage.ticket = ticket
    outage.save(update_fields=["ticket"])


def _no_ticket(outage: OutboundOutage, why: str) -> None:
    outage.ticket_error = why
    outage.save(update_fields=["ticket_error"])


def open_outages(organization) -> list[OutboundOutage]:
    """The Connections page's banner: open outages, the systemic one first."""
    return sorted(
        _open_ones(organization).select_related("subscription", "ticket"),
        key=lambda outage: (not outage.is_systemic, outage.opened_at),
    )
