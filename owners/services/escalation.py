"""Escalation: move overdue tickets up their (snapshotted) policy, one step per due time.

The sweep claims due tickets with ``SELECT ... FOR UPDATE SKIP LOCKED`` and re-checks
``next_escalation_at <= now`` under the lock, so two overlapping sweeps never run the same
step twice: the second either skips the locked row or sees it no longer due. Nothing is
held in memory between sweeps, so a ticket that fell due while the workers were down is
simply due at the next sweep. Work per ticket is a few in-memory computations; rows are
written in bulk per chunk (see bench/escalation.py).
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.utils import timezone

from deliveries.services import trail
from owners.models import (
    ACTIVE_STATUSES,
    BusinessCalendar,
    OwnerRole,
    StepAction,
    Ticket,
    WebhookEndpoint,
)
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
    lookups = _Lookups()  # one pass, one ``now``: looked up once for every chunk
    for start in range(0, len(ids), CHUNK):
        done += _escalate_chunk(organization, ids[start : start + CHUNK], now, lookups)
    return done


def _claim(organization, ids: list, now: datetime, lookups: "_Lookups"):
    """Lock the claimable tickets among ``ids``. Roles and calendars, a handful shared by
    thousands of tickets, come from ``lookups`` rather than a join per row, and the
    ticket's context (a gate failure's detail) is not read: the sweep never uses it."""
    queryset = (
        Ticket.objects.filter(
            organization=organization,
            pk__in=ids,
            status__in=ACTIVE_STATUSES,
            next_escalation_at__lte=now,
        )
        .select_related("deliverable")
        .defer("context", "closed_note")
    )
    if connection.features.has_select_for_update_skip_locked:
        queryset = queryset.select_for_update(skip_locked=True, of=("self",))
    tickets = list(queryset)
    lookups.load_roles(organization, {ticket.owner_role_id for ticket in tickets})
    lookups.load_calendars(organization, {ticket.calendar_id for ticket in tickets})
    for ticket in tickets:
        ticket.owner_role = lookups.roles[ticket.owner_role_id]
        ticket.calendar = lookups.calendars.get(ticket.calendar_id)
    return tickets


@dataclass
class _Lookups:
    """What one pass looks up at most once: calendars, deadlines, who is on duty per role,
    roles, named people and webhooks. Every ticket of a pass is handled at the same ``now``,
    so a deadline depends only on the calendar and the step's wait."""

    specs: dict = field(default_factory=dict)
    deadlines: dict = field(default_factory=dict)
    duty: dict = field(default_factory=dict)
    roles: dict = field(default_factory=dict)
    calendars: dict = field(default_factory=dict)
    people: dict = field(default_factory=dict)
    webhooks: dict = field(default_factory=dict)

    def load_roles(self, organization, ids: set) -> None:
        wanted = ids - self.roles.keys()
        if wanted:
            self.roles.update(OwnerRole.objects.filter(organization=organization).in_bulk(wanted))

    def load_calendars(self, organization, ids: set) -> None:
        wanted = ids - self.calendars.keys() - {None}
        if wanted:
            self.calendars.update(
                BusinessCalendar.objects.filter(organization=organization).in_bulk(wanted)
            )

    def role(self, ticket: Ticket, role_id) -> OwnerRole | None:
        if role_id not in self.roles:
            self.roles[role_id] = OwnerRole.objects.filter(
                organization=ticket.organization_id, pk=role_id
            ).first()
        return self.roles[role_id]

    def deadline(self, ticket: Ticket, now: datetime, step: dict) -> datetime:
        key = (ticket.calendar_id, step["wait_minutes"], step["wait_kind"])
        if key not in self.deadlines:
            if ticket.calendar_id not in self.specs:
                self.specs[ticket.calendar_id] = calendar_spec(ticket.calendar)
            self.deadlines[key] = deadline(
                self.specs[ticket.calendar_id], now, step["wait_minutes"], step["wait_kind"]
            )
        return self.deadlines[key]


def _escalate_chunk(
    organization, ids: list, now: datetime, lookups: "_Lookups | None" = None
) -> int:
    """Escalate the claimable tickets among ``ids``: a fixed number of queries per chunk.

    Notifications, trail entries and ticket updates are collected per ticket and written in
    bulk before the chunk commits; the notifications are queued once, after commit.
    """
    lookups = lookups or _Lookups()
    outbox = notifications.Outbox(organization.pk)
    with transaction.atomic():
        tickets = _claim(organization, ids, now, lookups)
        if not tickets:
            return 0
        entries: list[trail.Entry] = []
        updates: dict = {}  # (escalation_level, next_escalation_at) -> ticket ids
        for ticket in tickets:
            steps = ticket.policy_snapshot.get("steps") or []
            total = len(steps) * (1 + int(ticket.policy_snapshot.get("repeat", 0)))
            if ticket.escalation_level >= total:
                # Policy exhausted: clear a leftover due time.
                updates.setdefault((ticket.escalation_level, None), []).append(ticket.pk)
                continue
            step = steps[ticket.escalation_level % len(steps)]
            recipients = _act(ticket, step, now, lookups, outbox)
            entries.append(
                trail.Entry(
                    "ticket.escalated",
                    key=f"ticket:{ticket.pk}:escalated:{ticket.escalation_level}",
                    deliverable=ticket.deliverable,
                    actor_id="escalation-sweep",
                    occurred_at=now,
                    payload={
                        "ticket_id": str(ticket.pk),
                        "title": ticket.title,
                        "level": ticket.escalation_level + 1,
                        "action": step["action"],
                        "notified": recipients,
                        "was_due_at": ticket.next_escalation_at.isoformat(),
                    },
                )
            )
            level = ticket.escalation_level + 1
            following = (
                lookups.deadline(ticket, now, steps[level % len(steps)]) if level < total else None
            )
            updates.setdefault((level, following), []).append(ticket.pk)
        outbox.flush()
        trail.record_many(organization, entries)
        # A handful of distinct (level, next due time) pairs per chunk: one UPDATE each,
        # rather than bulk_update's CASE over every row. Stamped by hand: update() skips
        # auto_now.
        stamp = timezone.now()
        for (level, following), pks in updates.items():
            Ticket.objects.filter(organization=organization, pk__in=pks).update(
                escalation_level=level, next_escalation_at=following, updated_at=stamp
            )
    return len(entries)


def _act(
    ticket: Ticket, step: dict, now: datetime, lookups: _Lookups, outbox: notifications.Outbox
) -> list[str]:
    """Notify whoever the step names (into ``outbox``); returns who it was, for the trail."""
    action = step["action"]
    level = ticket.escalation_level
    people = []
    if action in (StepAction.NOTIFY_PRIMARY, StepAction.NOTIFY_BACKUP, StepAction.NOTIFY_ROLE):
        role, rota_backup = ticket.owner_role, action == StepAction.NOTIFY_BACKUP
        if action == StepAction.NOTIFY_ROLE:
            role = lookups.role(ticket, step["target_role"])
        elif rota_backup and ticket.rule_snapshot.get("backup_role"):
            # The matched rule names a backup role: its person on duty is the backup. A
            # role deleted since falls back to the owner role's rota backup.
            backup_role = lookups.role(ticket, ticket.rule_snapshot["backup_role"])
            if backup_role is not None:
                role, rota_backup = backup_role, False
        if role is not None:
            if role.pk not in lookups.duty:
                lookups.duty[role.pk] = who_is_on_duty(role, now)
            duty = lookups.duty[role.pk]
            person = duty.backup if rota_backup else duty.primary
            if person is not None:
                people.append(person)
    elif action == StepAction.NOTIFY_PEOPLE:
        named = tuple(step.get("people") or [])
        if named not in lookups.people:
            # Named when the policy was saved; only those still members are told.
            lookups.people[named] = list(
                get_user_model().objects.filter(
                    pk__in=named, memberships__organization=ticket.organization_id
                )
            )
        people = lookups.people[named]
    elif action == StepAction.WEBHOOK:
        webhook_id = step.get("webhook")
        if webhook_id not in lookups.webhooks:
            lookups.webhooks[webhook_id] = WebhookEndpoint.objects.filter(
                pk=webhook_id, is_active=True
            ).first()
        endpoint = lookups.webhooks[webhook_id]
        if endpoint is None:
            return []
        outbox.notify_webhook(
            ticket,
            endpoint,
            f"Escalation level {level + 1}: {ticket.title}",
            dedupe_key=f"ticket:{ticket.pk}:step:{level}:webhook:{endpoint.pk}",
        )
        return [f"webhook:{endpoint.name}"]
    for person in people:
        outbox.notify(
            ticket,
            person,
            f"Escalated (level {level + 1}): {ticket.title}",
            dedupe_key=f"ticket:{ticket.pk}:step:{level}:{person.pk}",
        )
    return [person.email or person.username for person in people]
