"""Escalation: move overdue tickets up their (snapshotted) policy, one step per due time.

The sweep claims due tickets with ``SELECT ... FOR UPDATE SKIP LOCKED`` and re-checks
``next_escalation_at <= now`` under the lock, so two overlapping sweeps never run the same
step twice: the second either skips the locked row or sees it no longer due. Nothing is
held in memory between sweeps, so a ticket that fell due while the workers were down is
simply due at the next sweep. Work per ticket is a few in-memory computations; rows are
written in bulk per chunk (see bench/escalation.py).
"""

import logging
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from deliveries.models import Event, EventProcessing, EventSource, ProcessingStatus
from owners.models import ACTIVE_STATUSES, OwnerRole, StepAction, Ticket, WebhookEndpoint
from owners.services import notifications
from owners.services.schedules import calendar_spec, deadline, who_is_on_duty

log = logging.getLogger(__name__)
CHUNK = 500


def due_ticket_ids(organization, now: datetime, limit: int) -> list:
    return list(
        Ticket.objects.filter(
            organization=organization,
            status__in=ACTIVE_STATUSES,
            next_escalation_at__lte=now,
        )
        .order_by("next_escalation_at")
        .values_list("pk", flat=True)[:limit]
    )


def escalate_due_tickets(organization, now: datetime | None = None, limit: int = 10_000) -> int:
    """Run the due escalation step of every due ticket of one organization; count them."""
    now = now or timezone.now()
    done = 0
    ids = due_ticket_ids(organization, now, limit)
    for start in range(0, len(ids), CHUNK):
        done += _escalate_chunk(organization, ids[start : start + CHUNK], now)
    return done


def _claim(organization, ids: list, now: datetime):
    queryset = Ticket.objects.filter(
        organization=organization,
        pk__in=ids,
        status__in=ACTIVE_STATUSES,
        next_escalation_at__lte=now,
    ).select_related("owner_role", "deliverable", "calendar")
    if connection.features.has_select_for_update_skip_locked:
        queryset = queryset.select_for_update(skip_locked=True, of=("self",))
    return list(queryset)


def _escalate_chunk(organization, ids: list, now: datetime) -> int:
    specs: dict = {}
    duty_cache: dict = {}
    roles: dict = {}
    with transaction.atomic():
        tickets = _claim(organization, ids, now)
        if not tickets:
            return 0
        trail_rows, processing_rows, changed = [], [], []
        for ticket in tickets:
            steps = ticket.policy_snapshot.get("steps") or []
            total = len(steps) * (1 + int(ticket.policy_snapshot.get("repeat", 0)))
            if ticket.escalation_level >= total:
                ticket.next_escalation_at = None  # policy exhausted
                changed.append(ticket)
                continue
            step = steps[ticket.escalation_level % len(steps)]
            recipients = _act(ticket, step, now, duty_cache, roles)
            event = Event(
                organization=organization,
                event_type="ticket.escalated",
                client_id=ticket.deliverable.client_id if ticket.deliverable else None,
                deliverable=ticket.deliverable,
                idempotency_key=f"meshline:ticket:{ticket.pk}:escalated:{ticket.escalation_level}",
                content_digest="",
                actor_role="meshline",
                actor_id="escalation-sweep",
                occurred_at=now,
                received_at=now,
                source=EventSource.MESHLINE,
                payload={
                    "ticket_id": str(ticket.pk),
                    "title": ticket.title,
                    "level": ticket.escalation_level + 1,
                    "action": step["action"],
                    "notified": recipients,
                    "was_due_at": ticket.next_escalation_at.isoformat(),
                },
            )
            trail_rows.append(event)
            processing_rows.append(
                EventProcessing(
                    event=event,
                    organization=organization,
                    status=ProcessingStatus.PROCESSED,
                    enqueued_at=now,
                    processed_at=now,
                )
            )
            ticket.escalation_level += 1
            if ticket.escalation_level < total:
                following = steps[ticket.escalation_level % len(steps)]
                if ticket.calendar_id not in specs:
                    specs[ticket.calendar_id] = calendar_spec(ticket.calendar)
                ticket.next_escalation_at = deadline(
                    specs[ticket.calendar_id],
                    now,
                    following["wait_minutes"],
                    following["wait_kind"],
                )
            else:
                ticket.next_escalation_at = None
            changed.append(ticket)
        Event.objects.bulk_create(trail_rows)
        EventProcessing.objects.bulk_create(processing_rows)
        Ticket.objects.bulk_update(
            changed, ["escalation_level", "next_escalation_at", "updated_at"]
        )
    return len(trail_rows)


def _act(ticket: Ticket, step: dict, now: datetime, duty_cache: dict, roles: dict) -> list[str]:
    """Notify whoever the step names; returns who was notified (for the trail)."""
    action = step["action"]
    level = ticket.escalation_level
    people = []
    if action in (StepAction.NOTIFY_PRIMARY, StepAction.NOTIFY_BACKUP, StepAction.NOTIFY_ROLE):
        role = ticket.owner_role
        if action == StepAction.NOTIFY_ROLE:
            role_id = step["target_role"]
            if role_id not in roles:
                roles[role_id] = OwnerRole.objects.filter(pk=role_id).first()
            role = roles[role_id]
        if role is not None:
            if role.pk not in duty_cache:
                duty_cache[role.pk] = who_is_on_duty(role, now)
            duty = duty_cache[role.pk]
            person = duty.backup if action == StepAction.NOTIFY_BACKUP else duty.primary
            if person is not None:
                people.append(person)
    elif action == StepAction.NOTIFY_PEOPLE:
        people = list(get_user_model().objects.filter(pk__in=step.get("people") or []))
    elif action == StepAction.WEBHOOK:
        endpoint = WebhookEndpoint.objects.filter(pk=step.get("webhook"), is_active=True).first()
        if endpoint is None:
            return []
        notifications.notify_webhook(
            ticket,
            endpoint,
            f"Escalation level {level + 1}: {ticket.title}",
            dedupe_key=f"ticket:{ticket.pk}:step:{level}:webhook:{endpoint.pk}",
        )
        return [f"webhook:{endpoint.name}"]
    for person in people:
        notifications.notify(
            ticket,
            person,
            f"Escalated (level {level + 1}): {ticket.title}",
            dedupe_key=f"ticket:{ticket.pk}:step:{level}:{person.pk}",
        )
    return [person.email or person.username for person in people]
