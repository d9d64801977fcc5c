"""Notifications: email and signed outbound webhooks, sent by Celery with retries.

``notify`` only writes a Notification row (deduplicated by key) and enqueues its sending
after commit; ``send`` makes one attempt and records it. Retries with backoff live in the
task (owners.tasks.send_notification). Webhook bodies are signed: header
``X-Meshline-Signature: sha256=<hex HMAC of the body with the endpoint's secret>``.
"""

import hashlib
import hmac
import json
import logging
import urllib.error
import urllib.request

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from owners.models import (
    ChannelKind,
    DeliveryStatus,
    Notification,
    NotificationAttempt,
    NotificationChannel,
)

log = logging.getLogger(__name__)
WEBHOOK_TIMEOUT_SECONDS = 5


def channels_for(organization_id, user) -> list[tuple[str, str, str]]:
    """(kind, address, secret) for each working channel; the account email as a fallback."""
    channels = [
        (c.kind, c.address, c.secret)
        for c in NotificationChannel.objects.filter(
            organization=organization_id, user=user, is_active=True, failing_since__isnull=True
        )
    ]
    if not channels and user.email:
        channels.append((ChannelKind.EMAIL, user.email, ""))
    return channels


def has_working_channel(organization_id, user) -> bool:
    return bool(channels_for(organization_id, user))


def notify(ticket, user, subject: str, *, dedupe_key: str, body: dict | None = None) -> list:
    """Queue a message to ``user`` on each working channel; once per dedupe key."""
    body = body or ticket_body(ticket)
    created = []
    for kind, address, secret in channels_for(ticket.organization_id, user):
        notification, was_created = Notification.objects.get_or_create(
            organization_id=ticket.organization_id,
            dedupe_key=f"{dedupe_key}:{kind}:{address}"[:200],
            defaults={
                "ticket": ticket,
                "recipient": user,
                "kind": kind,
                "address": address,
                "secret": secret,
                "subject": subject[:300],
                "body": body,
            },
        )
        if was_created:
            created.append(notification.pk)
    enqueue(ticket.organization_id, created)
    return created


def notify_webhook(ticket, endpoint, subject: str, *, dedupe_key: str) -> list:
    notification, was_created = Notification.objects.get_or_create(
        organization_id=ticket.organization_id,
        dedupe_key=dedupe_key[:200],
        defaults={
            "ticket": ticket,
            "kind": ChannelKind.WEBHOOK,
            "address": endpoint.url,
            "secret": endpoint.secret,
            "subject": subject[:300],
            "body": ticket_body(ticket),
        },
    )
    ids = [notification.pk] if was_created else []
    enqueue(ticket.organization_id, ids)
    return ids


def enqueue(organization_id, notification_ids: list) -> None:
    if not notification_ids:
        return

    def send_later():
        from owners.tasks import send_notification

        for pk in notification_ids:
            try:
                send_notification.apply_async(
                    kwargs={"organization_id": organization_id, "notification_id": pk}
                )
            except Exception:  # broker down: owners.tasks.resend_pending picks it up
                log.warning("notify: broker unreachable; notification %s left pending", pk)

    transaction.on_commit(send_later)


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


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


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
        except Exception as exc:  # recorded; the task decides whether to retry
            ok, detail = False, f"{type(exc).__name__}: {exc}"[:2000]
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
    """Out of retries: mark failed so the portal shows it."""
    Notification.objects.filter(pk=notification_id).exclude(status=DeliveryStatus.SENT).update(
        status=DeliveryStatus.FAILED
    )


def _post_webhook(notification: Notification) -> str:
    body = json.dumps(
        {"subject": notification.subject, **notification.body}, sort_keys=True
    ).encode()
    request = urllib.request.Request(
        notification.address,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Meshline-Webhook/1",
            "X-Meshline-Delivery": str(notification.pk),
            "X-Meshline-Signature": sign(notification.secret, body),
        },
    )
    with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:
        return f"HTTP {response.status}"
