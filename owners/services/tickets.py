"""Tickets: open (idempotently, through the owner map), acknowledge, reassign, resolve, cancel.

Every change is recorded in the trail and made under a row lock, so concurrent actions
(a person acknowledging while the sweep escalates) serialize instead of overwriting.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from deliveries.services import trail
from meshline import extensions
from owners.models import (
    ACTIVE_STATUSES,
    Priority,
    Ticket,
    TicketStatus,
)
from owners.services import notifications, owner_map
from owners.services.schedules import calendar_for, calendar_spec, deadline, who_is_on_duty


class TicketError(Exception):
    """A ticket action that cannot be done; the message says why, for the user.

    ``field`` names the input the user can change to succeed (a form shows the error next
    to it, the API names it), so callers never need to know which guard raised.
    """

    code = "invalid"

    def __init__(self, message: str, code: str | None = None, field: str | None = None):
        super().__init__(message)
        if code:
            self.code = code
        self.field = field


class NoOwnerError(TicketError):
    code = "no_owner"


@dataclass
class Actor:
    """Who did something: a person, an API key or Meshline itself."""

    role: str
    id: str
    user: object | None = None

    @classmethod
    def for_user(cls, user) -> "Actor":
        return cls("user", user.email or user.username, user)

    @classmethod
    def for_api_key(cls, api_key) -> "Actor":
        return cls("api_key", f"{api_key.name} ({api_key.prefix})")


MESHLINE = Actor("meshline", "meshline")


def _record(
    ticket: Ticket,
    event_type: str,
    step: str,
    actor: Actor,
    *,
    at: datetime | None = None,
    **payload,
) -> None:
    """Append the ticket's step to the trail, stamped with when it happened (``at``)."""
    trail.record(
        ticket.organization,
        event_type,
        key=f"ticket:{ticket.pk}:{step}",
        deliverable=ticket.deliverable,
        actor_role=actor.role,
        actor_id=actor.id,
        occurred_at=at,
        payload={"ticket_id": str(ticket.pk), "title": ticket.title, **payload},
    )


def open_ticket(
    organization,
    *,
    source: str,
    source_key: str,
    title: str,
    event_type: str,
    deliverable=None,
    context: dict | None = None,
    priority: str = Priority.P3,
    at: datetime | None = None,
    owner_role=None,
) -> tuple[Ticket, bool]:
    """Open the ticket for ``(source, source_key)`` once; a retry returns the same ticket.

    The owner map picks the role from (event type, client tier, deliverable type); the rota
    picks the person; deadlines are in the client's (or organization's) business calendar.
    ``owner_role`` (a flow's owner) takes the work instead of the map's role; the matching
    rule still sets the deadlines and the escalation policy.
    """
    existing = Ticket.objects.filter(
        organization=organization, source=source, source_key=source_key
    ).first()
    if existing is not None:
        return existing, False
    client = deliverable.client if deliverable is not None else None
    resolution = owner_map.resolve(
        organization,
        event_type,
        client.tier if client else "",
        deliverable.type if deliverable else "",
    )
    rule = resolution.rule
    if rule is None:
        raise NoOwnerError(resolution.reasons[0])
    now = at or timezone.now()
    calendar = calendar_for(organization, client)
    spec = calendar_spec(calendar)
    policy = (
        rule.escalation_policy.snapshot() if rule.escalation_policy else {"steps": [], "repeat": 0}
    )
    steps = policy["steps"]
    role = owner_role or rule.owner_role
    duty = who_is_on_duty(role, now)
    ticket = Ticket(
        organization=organization,
        source=source,
        source_key=source_key,
        title=title[:300],
        deliverable=deliverable,
        priority=priority,
        owner_role=role,
        assignee=duty.primary,
        calendar=calendar,
        rule_snapshot={
            **rule.snapshot(),
            "reasons": resolution.reasons
            + ([f"Owned by {role.name}, the owner named by what opened it."] if owner_role else []),
        },
        policy_snapshot=policy,
        context=context or {},
        opened_at=now,
        respond_due_at=deadline(spec, now, rule.respond_minutes, "business"),
        resolve_due_at=deadline(spec, now, rule.resolve_minutes, "business"),
        next_escalation_at=(
            deadline(spec, now, steps[0]["wait_minutes"], steps[0]["wait_kind"]) if steps else None
        ),
    )
    try:
        with transaction.atomic():
            ticket.save(force_insert=True)
            _record(
                ticket,
                "ticket.opened",
                "opened",
                MESHLINE,
                at=now,
                source=source,
                owner_role=role.name,
                assignee=duty.primary.email if duty.primary else None,
                rule_id=rule.pk,
                respond_due_at=ticket.respond_due_at.isoformat(),
                resolve_due_at=ticket.resolve_due_at.isoformat(),
            )
            if duty.primary is not None:
                notifications.notify(
                    ticket,
                    duty.primary,
                    f"[{ticket.get_priority_display()}] New ticket for {role.name}: {ticket.title}",
                    dedupe_key=f"ticket:{ticket.pk}:opened:{duty.primary.pk}",
                )
    except IntegrityError:  # opened concurrently by a retried task: return that one
        return Ticket.objects.get(
            organization=organization, source=source, source_key=source_key
        ), False
    return ticket, True


def _locked(ticket: Ticket) -> Ticket:
    return (
        Ticket.objects.select_for_update(of=("self",))
        .select_related("organization", "deliverable")
        .get(pk=ticket.pk)
    )


def acknowledge(ticket: Ticket, actor: Actor) -> Ticket:
    """Someone has it. Escalation pauses until the resolve deadline passes."""
    with transaction.atomic():
        ticket = _locked(ticket)
        if ticket.status != TicketStatus.OPEN:
            raise TicketError(
                f"Only open tickets can be acknowledged; this one is {ticket.status}.",
                "invalid_status",
            )
        ticket.status = TicketStatus.ACKNOWLEDGED
        ticket.acknowledged_at = timezone.now()
        if actor.user is not None and ticket.assignee_id is None:
            ticket.assignee = actor.user
        if ticket.next_escalation_at is not None:
            ticket.next_escalation_at = max(ticket.next_escalation_at, ticket.resolve_due_at)
        ticket.save()
        _record(ticket, "ticket.acknowledged", "acknowledged", actor)
    return ticket


def reassign(ticket: Ticket, actor: Actor, assignee) -> Ticket:
    """Give the ticket to another member of the organization."""
    from meshline.models import Membership

    if not Membership.objects.filter(organization=ticket.organization_id, user=assignee).exists():
        raise TicketError("The new assignee is not a member of this organization.", "not_member")
    with transaction.atomic():
        ticket = _locked(ticket)
        if ticket.status not in ACTIVE_STATUSES:
            raise TicketError("Closed tickets cannot be reassigned.", "invalid_status")
        previous = ticket.assignee
        ticket.assignee = assignee
        ticket.reassignments += 1
        ticket.save()
        _record(
            ticket,
            "ticket.reassigned",
            f"reassigned:{timezone.now().isoformat()}",
            actor,
            previous=previous.email if previous else None,
            assignee=assignee.email,
        )
        notifications.notify(
            ticket,
            assignee,
            f"Ticket reassigned to you: {ticket.title}",
            dedupe_key=f"ticket:{ticket.pk}:reassigned:{timezone.now().timestamp()}",
        )
    return ticket


def resolve(
    ticket: Ticket,
    actor: Actor,
    note: str = "",
    waiver_reason: str = "",
    *,
    at: datetime | None = None,
) -> Ticket:
    """Close as done. Guards registered by higher layers may refuse (e.g. gate still failing).

    ``at``: when it was done, for a resolution Meshline observed (a backlog drained) rather
    than one a person made just now.
    """
    with transaction.atomic():
        ticket = _locked(ticket)
        if ticket.status not in ACTIVE_STATUSES:
            raise TicketError(f"This ticket is already {ticket.status}.", "invalid_status")
        for guard in extensions.resolve_guards:  # higher layers' vetoes (gates)
            guard(ticket, waiver_reason)
        ticket.status = TicketStatus.RESOLVED
        ticket.resolved_at = at or timezone.now()
        ticket.next_escalation_at = None
        ticket.closed_note = note or waiver_reason
        ticket.save()
        _record(
            ticket, "ticket.resolved", "resolved", actor, at=at, note=note, waiver=waiver_reason
        )
    return ticket


def cancel(ticket: Ticket, actor: Actor, reason: str) -> Ticket:
    if not reason.strip():
        raise TicketError("Say why the ticket is cancelled.", "reason_required")
    with transaction.atomic():
        ticket = _locked(ticket)
        if ticket.status not in ACTIVE_STATUSES:
            raise TicketError(f"This ticket is already {ticket.status}.", "invalid_status")
        ticket.status = TicketStatus.CANCELLED
        ticket.resolved_at = timezone.now()
        ticket.next_escalation_at = None
        ticket.closed_note = reason
        ticket.save()
        _record(ticket, "ticket.cancelled", "cancelled", actor, reason=reason)
    return ticket


def for_deliverable(deliverable):
    return (
        Ticket.objects.filter(organization=deliverable.organization_id, deliverable=deliverable)
        .select_related("owner_role", "assignee")
        .order_by("opened_at")
    )


def trail_section(deliverable) -> list[dict]:
    """Tickets for the deliverable trail API."""
    return [
        {
            "id": str(t.pk),
            "title": t.title,
            "source": t.source,
            "status": t.status,
            "priority": t.priority,
            "owner_role": t.owner_role.slug,
            "assignee": t.assignee.email if t.assignee else None,
            "opened_at": t.opened_at.isoformat(),
            "resolve_due_at": t.resolve_due_at.isoformat() if t.resolve_due_at else None,
            "escalation_level": t.escalation_level,
            "billing_flag": bool(t.context.get("billing_flag")),
        }
        for t in for_deliverable(deliverable)
    ]


def portal_section(request, deliverable) -> dict:
    return {"tickets": list(for_deliverable(deliverable))}
