"""Notifications: email and signed outbound webhooks, sent by Celery with retries.

``notify`` only writes a Notification row (deduplicated by key) and enqueues its sending
after commit; ``send`` makes one attempt and records it. Retries with backoff live in the
task (owners.tasks.send_notification). Webhooks go through meshline.outbound: public
addresses only, checked again at send time, signed per Standard Webhooks (``webhook-id``
is the same for every attempt of one notification), failures recorded as classified text.
"""

import json
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from meshline import bulk, outbound, telemetry
from owners.models import (
    ChannelKind,
    DeliveryStatus,
    Notification,
    NotificationAttempt,
    NotificationChannel,
)

log = logging.getLogger(__name__)


def channels_for(organization_id, user) -> list[tuple[str, str, int | None]]:
    """(kind, address, channel id) for each working channel; the account email (no channel
    id) as a fallback."""
    channels = [
        (kind, address, pk)
        for pk, kind, address in NotificationChannel.objects.filter(
            organization=organization_id, user=user, is_active=True, failing_since__isnull=True
        ).values_list("pk", "kind", "address")
    ]
    if not channels and user.email:
        channels.append((ChannelKind.EMAIL, user.email, None))
    return channels


def reachable_people(organization_id, user_ids) -> dict[int, tuple[object, bool]]:
    """{user id: (user, can be notified)} for many people in two queries (same rule as
    ``channels_for``: a working channel, or else an account email). Unknown ids are absent."""
    users = get_user_model().objects.in_bulk(set(user_ids))
    with_channel = set(
        NotificationChannel.objects.filter(
            organization=organization_id,
            user__in=list(users),
            is_active=True,
            failing_since__isnull=True,
        ).values_list("user_id", flat=True)
    )
    return {pk: (user, pk in with_channel or bool(user.email)) for pk, user in users.items()}


def notify(ticket, user, subject: str, *, dedupe_key: str, body: dict | None = None) -> list:
    """Queue a message to ``user`` on each working channel; once per dedupe key."""
    outbox = Outbox(ticket.organization_id)
    outbox.notify(ticket, user, subject, dedupe_key=dedupe_key, body=body)
    return outbox.flush()


class Outbox:
    """Notifications gathered for many tickets, then written and queued together.

    ``notify`` and ``notify_webhook`` only collect rows (the first row per dedupe key wins);
    ``flush`` inserts those whose key is new in one statement and queues them with one
    after-commit callback. Channels are looked up once per person per outbox. The escalation
    sweep keeps one outbox per chunk of tickets; the module-level ``notify`` is an outbox of
    one message.
    """

    def __init__(self, organization_id):
        self.organization_id = organization_id
        self.rows: dict[str, Notification] = {}
        self._channels: dict = {}

    def channels(self, user) -> list[tuple[str, str, int | None]]:
        if user.pk not in self._channels:
            self._channels[user.pk] = channels_for(self.organization_id, user)
        return self._channels[user.pk]

    def notify(self, ticket, user, subject: str, *, dedupe_key: str, body: dict | None = None):
        body = body or ticket_body(ticket)
        for kind, address, channel_id in self.channels(user):
            self._add(
                ticket,
                f"{dedupe_key}:{kind}:{address}",
                recipient=user,
                kind=kind,
                address=address,
                channel_id=channel_id,
                subject=subject[:300],
                body=body,
            )

    def notify_webhook(self, ticket, endpoint, subject: str, *, dedupe_key: str):
        self._add(
            ticket,
            dedupe_key,
            kind=ChannelKind.WEBHOOK,
            address=endpoint.url,
            endpoint=endpoint,
            subject=subject[:300],
            body=ticket_body(ticket),
        )

    def _add(self, ticket, dedupe_key: str, **fields) -> None:
        key = dedupe_key[:200]
        if key not in self.rows:
            self.rows[key] = Notification(
                organization_id=self.organization_id, ticket=ticket, dedupe_key=key, **fields
            )

    def flush(self) -> list:
        """Write the rows whose dedupe key is new and queue them; returns their ids."""
        rows, self.rows = self.rows, {}
        if not rows:
            return []
        taken = set(
            Notification.objects.filter(
                organization=self.organization_id, dedupe_key__in=list(rows)
            ).values_list("dedupe_key", flat=True)
        )
        new = [row for key, row in rows.items() if key not in taken]
        try:
            with transaction.atomic():
                bulk.insert(new)
            created = [row.pk for row in new]
        except IntegrityError:  # a concurrent writer took a key meanwhile: one by one
            created = [row.pk for row in new if _get_or_create(row)]
        enqueue(self.organization_id, created)
        return created


def _get_or_create(row: Notification) -> bool:
    """Insert ``row`` unless its dedupe key exists (then ``row.pk`` is that row's); created?"""
    defaults = {
        field.attname: getattr(row, field.attname)
        for field in Notification._meta.concrete_fields
        if field.attname not in {"id", "organization_id", "dedupe_key", "created_at"}
    }
    notification, created = Notification.objects.get_or_create(
        organization_id=row.organization_id, dedupe_key=row.dedupe_key, defaults=defaults
    )
    row.pk = notification.pk
    return created


def enqueue(organization_id, notification_ids: list) -> None:
    """After commit, have each notification sent by its own task (with its own retries).

    Several notifications (an escalation sweep's chunk) go out as one fan-out message,
    owners.send_notifications, which queues the per-notification tasks from a worker:
    publishing costs the committing process about half a millisecond per message.
    """
    if not notification_ids:
        return
    from owners.tasks import send_notifications

    ids = list(notification_ids)
    # Broker down: owners.tasks.resend_pending_notifications picks them up.
    if len(ids) == 1:
        telemetry.on_commit(lambda: dispatch(organization_id, ids))
    else:
        send_notifications.publish_on_commit(organization_id=organization_id, notification_ids=ids)


def dispatch(organization_id, notification_ids: list) -> None:
    """Queue one owners.send_notification task per notification, now."""
    from owners.tasks import send_notification

    for pk in notification_ids:
        # Broker down: owners.tasks.resend_pending_notifications picks it up.
        if not send_notification.publish(organization_id=organization_id, notification_id=pk):
            return


def ticket_body(ticket) -> dict:
    return {
        "ticket_id": str(ticket.pk),
        "title": ticket.title,
        "priority": ticket.priority,
        "status": ticket.status,
        "owner_role": ticket.owner_role.name,
        "deliverable_id": ticket.deliverable.deliverable_id if ticket.deliverable else None,
        "respond_due_at": ticket.respond_due_at.isoformat() if ticket.respond_due_at else None,
        "resolve_due_at": ticket.resolve_due_at.isoformat() if ticket.resolve_due_at else None,
        "escalation_level": ticket.escalation_level,
    }


def send(notification_id) -> bool:
    """One delivery attempt, recorded. True when delivered (or already delivered)."""
    with transaction.atomic():
        notification = Notification.objects.select_for_update().filter(pk=notification_id).first()
        if notification is None or notification.status == DeliveryStatus.SENT:
            return True
        try:
            if notification.kind == ChannelKind.EMAIL:
                send_mail(
                    notification.subject,
                    json.dumps(notification.body, indent=2),
                    settings.DEFAULT_FROM_EMAIL,
                    [notification.address],
                )
                detail = "sent"
            else:
                detail = _post_webhook(notification)
            ok = True
        except outbound.OutboundError as exc:  # classified: safe to show the tenant
            ok, detail = False, str(exc)
        except Exception as exc:  # recorded; the task decides whether to retry
            if notification.kind == ChannelKind.EMAIL:
                ok, detail = False, f"{type(exc).__name__}: {exc}"[:2000]
            else:  # never an internal of an outbound request: details go to the log
                log.exception("webhook notification %s failed", notification.pk)
                ok, detail = False, outbound.Failure.CONNECTION
        notification.attempts += 1
        if ok:
            notification.status = DeliveryStatus.SENT
            notification.sent_at = timezone.now()
            notification.last_error = ""
        else:
            notification.last_error = detail
        notification.save()
        NotificationAttempt.objects.create(
            organization_id=notification.organization_id,
            notification=notification,
            ok=ok,
            detail=detail,
        )
    return ok


def give_up(notification_id) -> None:
    """Out of retries: mark failed so the portal shows it, and flag the channel it used.

    A flagged channel is skipped by ``channels_for``, so a person left with no working
    channel shows up in the coverage report before their next shift.
    """
    notification = (
        Notification.objects.filter(pk=notification_id).exclude(status=DeliveryStatus.SENT).first()
    )
    if notification is None:
        return
    Notification.objects.filter(pk=notification.pk).update(status=DeliveryStatus.FAILED)
    if notification.channel_id is not None:
        NotificationChannel.objects.filter(
            organization=notification.organization_id,
            pk=notification.channel_id,
            failing_since__isnull=True,
        ).update(failing_since=timezone.now())


def _post_webhook(notification: Notification) -> str:
    """One signed POST through the outbound guard; "HTTP 2xx" or OutboundError."""
    body = json.dumps(
        {"subject": notification.subject, **notification.body}, sort_keys=True
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Meshline-Webhook/2",
        **outbound.signature_headers(
            notification.signing_secret(), f"msg_meshline_{notification.pk}", body
        ),
    }
    return f"HTTP {outbound.post(notification.address, body, headers)}"
