"""Tickets: open (idempotently, through the owner map), acknowledge, reassign, resolve, cancel.

Every change is recorded in the trail and made under a row lock, so concurrent actions
(a person acknowledging while the sweep escalates) serialize instead of overwriting.
"""

import copy
from dataclasses import dataclass, replace
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from deliveries.services import trail
from meshline import bulk, extensions
from owners.models import (
    ACTIVE_STATUSES,
    Priority,
    Ticket,
    TicketStatus,
)
from owners.services import notifications, owner_map
from owners.services.schedules import (
    DutyRoster,
    business_calendar,
    deadline,
)


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


@dataclass(frozen=True)
class TicketRequest:
    """One ticket to open, as ``open_ticket`` takes it (for ``open_tickets``)."""

    source: str
    source_key: str
    title: str
    event_type: str
    deliverable: object = None
    context: dict | None = None
    priority: str = Priority.P3
    owner_role: object = None
    # When it opens (deadlines, who is on duty), if not the moment the whole call names.
    at: datetime | None = None


@dataclass(frozen=True)
class Opened:
    """What became of one ``TicketRequest``: the ticket (new or the one already open for
    its key), or, when no rule routes it, ``no_owner`` saying why and no ticket."""

    ticket: Ticket | None
    created: bool
    no_owner: str = ""


class _Routing:
    """The owner map's rules, calendars and who is on duty, each read once: a sweep
    opening a thousand tickets for three roles reads three rotas, not a thousand."""

    def __init__(self, organization, now: datetime):
        self.organization = organization
        self.now = now
        self._rules: dict = {}  # "active": the owner map's rules, once read
        self._resolutions: dict = {}
        self._calendars: dict = {}
        self._policies: dict = {}
        self._duty: dict = {}

    def resolution(self, event_type: str, deliverable):
        client = deliverable.client if deliverable is not None else None
        key = (event_type, client.tier if client else "", deliverable.type if deliverable else "")
        if key not in self._resolutions:
            if "active" not in self._rules:
                self._rules["active"] = owner_map.active_rules(self.organization)
            self._resolutions[key] = owner_map.resolve(
                self.organization, *key, rules=self._rules["active"]
            )
        return self._resolutions[key]

    def policy(self, rule) -> dict:
        """The rule's escalation policy as tickets keep it (a copy: each ticket its own)."""
        if rule.pk not in self._policies:
            self._policies[rule.pk] = (
                rule.escalation_policy.snapshot()
                if rule.escalation_policy
                else {"steps": [], "repeat": 0}
            )
        return copy.deepcopy(self._policies[rule.pk])

    def calendar(self, client):
        key = client.pk if client is not None else None
        if key not in self._calendars:
            self._calendars[key] = business_calendar(self.organization, client)
        return self._calendars[key]

    def duty(self, role, at: datetime):
        if role.pk not in self._duty:
            self._duty[role.pk] = DutyRoster(role)
        return self._duty[role.pk].at(at)


def _routing(organization, now: datetime) -> _Routing:
    """The routing for one ``open_tickets`` call. In a processing batch, every step that
    opens tickets (gates, billing, attribution) shares one: the owner map, calendars,
    policies and rotas are read once per batch, not once per step; ``now`` is the call's."""
    from deliveries.services.processing import current_batch

    batch = current_batch()
    if batch is None or batch.organization.pk != organization.pk:
        return _Routing(organization, now)
    shared = batch.remember("owners.routing", lambda: _Routing(organization, now))
    return _at(shared, now)


def _at(routing: _Routing, now: datetime) -> _Routing:
    """The same reads (its caches are shared, not copied), at another moment."""
    view = copy.copy(routing)
    view.now = now
    return view


def _build(organization, request: TicketRequest, routing: _Routing):
    """The unsaved ticket for ``request`` and who is on duty for it; NoOwnerError if no
    rule routes it."""
    deliverable = request.deliverable
    client = deliverable.client if deliverable is not None else None
    resolution = routing.resolution(request.event_type, deliverable)
    rule = resolution.rule
    if rule is None:
        raise NoOwnerError(resolution.reasons[0])
    now = request.at or routing.now
    calendar, spec = routing.calendar(client)
    policy = routing.policy(rule)
    steps = policy["steps"]
    role = request.owner_role or rule.owner_role
    duty = routing.duty(role, now)
    reasons = resolution.reasons + (
        [f"Owned by {role.name}, the owner named by what opened it."] if request.owner_role else []
    )
    ticket = Ticket(
        organization=organization,
        source=request.source,
        source_key=request.source_key,
        title=request.title[:300],
        deliverable=deliverable,
        priority=request.priority,
        owner_role=role,
        assignee=duty.primary,
        calendar=calendar,
        rule_snapshot={**rule.snapshot(), "reasons": reasons},
        policy_snapshot=policy,
        context=request.context or {},
        opened_at=now,
        respond_due_at=deadline(spec, now, rule.respond_minutes, "business"),
        resolve_due_at=deadline(spec, now, rule.resolve_minutes, "business"),
        next_escalation_at=(
            deadline(spec, now, steps[0]["wait_minutes"], steps[0]["wait_kind"]) if steps else None
        ),
    )
    return ticket, duty, rule


def _opened_entry(ticket: Ticket, duty, rule) -> trail.Entry:
    return trail.Entry(
        "ticket.opened",
        f"ticket:{ticket.pk}:opened",
        {
            "ticket_id": str(ticket.pk),
            "title": ticket.title,
            "source": ticket.source,
            "owner_role": ticket.owner_role.name,
            "assignee": duty.primary.email if duty.primary else None,
            "rule_id": rule.pk,
            "respond_due_at": ticket.respond_due_at.isoformat(),
            "resolve_due_at": ticket.resolve_due_at.isoformat(),
        },
        deliverable=ticket.deliverable,
        actor_role=MESHLINE.role,
        actor_id=MESHLINE.id,
        occurred_at=ticket.opened_at,
    )


def _notify_opened(outbox: notifications.Outbox, ticket: Ticket, duty) -> None:
    if duty.primary is not None:
        outbox.notify(
            ticket,
            duty.primary,
            f"[{ticket.get_priority_display()}] New ticket for {ticket.owner_role.name}: "
            f"{ticket.title}",
            dedupe_key=f"ticket:{ticket.pk}:opened:{duty.primary.pk}",
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
    request = TicketRequest(
        source, source_key, title, event_type, deliverable, context, priority, owner_role, at
    )
    return _open_one(organization, request)


def _open_one(organization, request: TicketRequest) -> tuple[Ticket, bool]:
    key = {"source": request.source, "source_key": request.source_key}
    existing = Ticket.objects.filter(organization=organization, **key).first()
    if existing is not None:
        return existing, False
    built = _build(organization, request, _Routing(organization, request.at or timezone.now()))
    try:
        _write(organization, [built])
    except IntegrityError:  # opened concurrently by a retried task: return that one
        return Ticket.objects.get(organization=organization, **key), False
    return built[0], True


def _write(organization, built: list[tuple]) -> None:
    """New tickets (``_build``'s triples), their ``ticket.opened`` entries and their
    notifications, written together; IntegrityError if one's key was taken meanwhile."""
    with transaction.atomic():
        bulk.insert([ticket for ticket, _duty, _rule in built])
        trail.record_many(organization, [_opened_entry(*triple) for triple in built])
        outbox = notifications.Outbox(organization.pk)
        for ticket, duty, _rule in built:
            _notify_opened(outbox, ticket, duty)
        outbox.flush()


def open_tickets(
    organization, requests: list[TicketRequest], *, at: datetime | None = None
) -> list[Opened]:
    """``open_ticket`` for many requests at once, with the same result as one by one, in
    a fixed number of statements: one look-up of the keys already open, the routing read
    once (``_Routing``), then the tickets, their ``ticket.opened`` entries and their
    notifications each written together. A request whose key another writer opened
    meanwhile makes the batch fall back to ``open_ticket`` one by one (which returns it).
    Requests repeating a key get the first one's ticket.
    """
    if not requests:
        return []
    existing = {
        (t.source, t.source_key): t
        for t in Ticket.objects.filter(
            organization=organization,
            source__in={r.source for r in requests},
            source_key__in={r.source_key for r in requests},
        )
    }
    routing = _routing(organization, at or timezone.now())
    results: dict[tuple[str, str], Opened] = {}
    new = []
    for request in requests:
        key = (request.source, request.source_key)
        if key in results:
            continue
        if key in existing:
            results[key] = Opened(existing[key], False)
            continue
        try:
            ticket, duty, rule = _build(organization, request, routing)
        except NoOwnerError as exc:
            results[key] = Opened(None, False, str(exc))
            continue
        results[key] = Opened(ticket, True)
        new.append((ticket, duty, rule))
    try:
        _write(organization, new)
    except IntegrityError:  # a concurrent writer opened one of them: one by one
        return [
            _open_alone(organization, request, request.at or routing.now) for request in requests
        ]
    return [results[(r.source, r.source_key)] for r in requests]


def _open_alone(organization, request: TicketRequest, at: datetime) -> Opened:
    try:
        ticket, created = _open_one(organization, replace(request, at=at))
    except NoOwnerError as exc:
        return Opened(None, False, str(exc))
    return Opened(ticket, created)


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
