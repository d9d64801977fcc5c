"""Reviews and the weekly assurance check.

Reviews: every active flow, gate and owner rule has a ``Review`` (created by ``sync``, due
``interval_days`` after the last review or after it was first seen). An overdue review shows
on the queue of the owner role's people (the flow's owner role, the rule's role, for a gate
the role the owner map gives its event type) until one of them, or an admin, marks it
reviewed; its owner is told once per due date (``governance.review_overdue``) and each
review is recorded (``governance.reviewed``).

Assurance: once a week each person with open tickets assigned is asked to confirm their SLA
status as shown (``governance.assurance_requested``): one click per ticket or "all as
shown" (``governance.assurance_confirmed`` when the last one is). A check still unconfirmed
ASSURANCE_DAYS after it opened escalates like a ticket, because it is one: opened through
the owner map (event type ``governance.assurance_missed``) and escalated by its rule's
policy; confirming late resolves it.
"""

import logging
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from deliveries.services import trail
from flows.models import AssuranceCheck, Flow, Review, ReviewKind
from gates.models import Gate, GateMode
from meshline.models import Membership, Role
from owners.models import ACTIVE_STATUSES, Priority, RotaLayer, Ticket, TicketSource
from owners.services import owner_map, tickets
from owners.services.notifications import Outbox
from owners.services.schedules import who_is_on_duty

log = logging.getLogger(__name__)

ASSURANCE_DAYS = 2
DUE_SOON = timedelta(hours=24)
MISSED = "governance.assurance_missed"


# --- reviews ------------------------------------------------------------------------------


def _targets(organization) -> list[tuple[str, object, object]]:
    """(kind, row, owner role) of every active flow, gate and owner rule."""
    found = [
        (ReviewKind.FLOW, flow, flow.owner_role)
        for flow in Flow.objects.filter(organization=organization, is_active=True).select_related(
            "owner_role"
        )
    ]
    rules = owner_map.active_rules(organization)
    found += [(ReviewKind.OWNER_RULE, rule, rule.owner_role) for rule in rules]
    for gate in Gate.objects.filter(organization=organization).exclude(mode=GateMode.OFF):
        event_type = (gate.event_types or ["page.published"])[0]
        rule = owner_map.resolve(organization, event_type, "", "", rules).rule
        found.append((ReviewKind.GATE, gate, rule.owner_role if rule else None))
    return found


def sync(organization, now: datetime) -> list[Review]:
    """Give every active target a review and keep its owner and label current; returns the
    reviews that fell overdue since the last sync (each told once per due date)."""
    existing = {(r.kind, r.target_id): r for r in Review.objects.filter(organization=organization)}
    for kind, row, role in _targets(organization):
        review = existing.get((kind, row.pk))
        label = str(row)[:200]
        if review is None:
            Review.objects.create(
                organization=organization,
                kind=kind,
                target_id=row.pk,
                target_label=label,
                owner_role=role,
                due_at=now + timedelta(days=Review.DEFAULT_INTERVAL_DAYS),
            )
        elif (review.owner_role_id, review.target_label) != (getattr(role, "pk", None), label):
            review.owner_role, review.target_label = role, label
            review.save(update_fields=["owner_role", "target_label"])
    overdue = list(
        Review.objects.filter(organization=organization, due_at__lte=now).select_related(
            "owner_role"
        )
    )
    told = [review for review in overdue if review.overdue_told_for != review.due_at]
    for review in told:
        review.overdue_told_for = review.due_at
        review.save(update_fields=["overdue_told_for"])
        trail.record(
            organization,
            "governance.review_overdue",
            key=f"review:{review.pk}:overdue:{review.due_at.isoformat()}",
            occurred_at=review.due_at,
            payload=_review_payload(review),
        )
    _tell_owners(organization, told, now)
    return told


def _review_payload(review: Review, **extra) -> dict:
    return {
        "review_id": review.pk,
        "kind": review.kind,
        "target": review.target_label,
        "owner_role": review.owner_role.name if review.owner_role else None,
        "due_at": review.due_at.isoformat(),
        **extra,
    }


def _tell_owners(organization, reviews: list[Review], now: datetime) -> None:
    outbox = Outbox(organization.pk)
    for review in reviews:
        if review.owner_role is None:
            continue
        person = who_is_on_duty(review.owner_role, now).primary
        if person is None:
            continue
        outbox.notify(
            None,
            person,
            f"Review due: {review} (every {review.interval_days} days)",
            dedupe_key=f"review:{review.pk}:{review.due_at.isoformat()}:{person.pk}",
            body={"review_id": review.pk, "target": review.target_label},
        )
    outbox.flush()


def roles_of(organization, user) -> set[int]:
    """The owner roles whose rota names ``user`` in any layer (rotas name people by id)."""
    return {
        layer.rota.role_id
        for layer in RotaLayer.objects.filter(organization=organization).select_related("rota")
        if user.pk in (layer.people or [])
    }


def due_for(organization, user, now: datetime) -> list[Review]:
    """Overdue reviews for the queue of ``user``: those of the roles they are on."""
    return list(
        Review.objects.filter(
            organization=organization,
            due_at__lte=now,
            owner_role__in=roles_of(organization, user),
        ).select_related("owner_role")
    )


def _may_review(review: Review, user) -> bool:
    is_admin = Membership.objects.filter(
        organization=review.organization_id, user=user, role=Role.ADMIN
    ).exists()
    return is_admin or review.owner_role_id in roles_of(review.organization, user)


def complete(review: Review, user, *, note: str = "", now: datetime | None = None) -> Review:
    """Mark reviewed (by one of the owner role's people or an admin); due again after its
    interval."""
    now = now or timezone.now()
    if not _may_review(review, user):
        raise PermissionDenied("Only the owner role's people or an admin review this.")
    with transaction.atomic():
        review = Review.objects.select_for_update().get(pk=review.pk)
        review.last_reviewed_at, review.last_reviewed_by, review.last_note = now, user, note
        review.due_at = now + timedelta(days=review.interval_days)
        review.save()
        trail.record(
            review.organization,
            "governance.reviewed",
            key=f"review:{review.pk}:completed:{now.isoformat()}",
            actor_role="user",
            actor_id=user.email or user.username,
            occurred_at=now,
            payload=_review_payload(review, note=note),
        )
    return review


# --- assurance ----------------------------------------------------------------------------


def week_of(now: datetime):
    day = now.date()
    return day - timedelta(days=day.weekday())


def sla_status(ticket: Ticket, now: datetime) -> str:
    """breached (past a deadline), due_soon (resolve-by within a day) or on_track."""
    if ticket.resolve_due_at and ticket.resolve_due_at < now:
        return "breached"
    if ticket.status == "open" and ticket.respond_due_at and ticket.respond_due_at < now:
        return "breached"
    if ticket.resolve_due_at and ticket.resolve_due_at - now < DUE_SOON:
        return "due_soon"
    return "on_track"


def open_week(organization, now: datetime) -> list[AssuranceCheck]:
    """This week's check for every person with open tickets assigned; idempotent."""
    week = week_of(now)
    done = set(
        AssuranceCheck.objects.filter(organization=organization, week=week).values_list(
            "person_id", flat=True
        )
    )
    by_person: dict = {}
    for ticket in (
        Ticket.objects.filter(
            organization=organization,
            status__in=ACTIVE_STATUSES,
            assignee__isnull=False,
            opened_at__lte=now,
        )
        .exclude(assignee__in=done)
        .select_related("assignee")
        .order_by("resolve_due_at", "pk")
    ):
        by_person.setdefault(ticket.assignee, []).append(ticket)
    opened = []
    outbox = Outbox(organization.pk)
    for person, owned in by_person.items():
        items = [
            {
                "ticket_id": str(ticket.pk),
                "title": ticket.title[:200],
                "status": sla_status(ticket, now),
                "resolve_due_at": ticket.resolve_due_at.isoformat()
                if ticket.resolve_due_at
                else None,
                "confirmed_at": None,
            }
            for ticket in owned
        ]
        try:
            with transaction.atomic():
                check = AssuranceCheck.objects.create(
                    organization=organization,
                    person=person,
                    week=week,
                    requested_at=now,
                    due_at=now + timedelta(days=ASSURANCE_DAYS),
                    items=items,
                )
        except IntegrityError:  # a concurrent sweep opened it
            continue
        _record(check, "governance.assurance_requested", now, items=len(items))
        outbox.notify(
            None,
            person,
            f"Weekly assurance: confirm the SLA status of your {len(items)} open ticket(s)",
            dedupe_key=f"assurance:{check.pk}:requested",
            body={"check_id": str(check.pk), "week": week.isoformat(), "items": len(items)},
        )
        opened.append(check)
    outbox.flush()
    return opened


def _record(check: AssuranceCheck, event_type: str, at: datetime, user=None, **extra) -> None:
    trail.record(
        check.organization,
        event_type,
        key=f"assurance:{check.pk}:{event_type}",
        actor_role="user" if user else "meshline",
        actor_id=(user.email or user.username) if user else "meshline",
        occurred_at=at,
        payload={
            "check_id": str(check.pk),
            "person": check.person.email or check.person.username,
            "week": check.week.isoformat(),
            **extra,
        },
    )


def confirm(
    check: AssuranceCheck, user, *, ticket_ids=None, now: datetime | None = None
) -> AssuranceCheck:
    """Confirm items as shown: the given tickets, or all pending ones (``ticket_ids`` None).
    Only the person asked confirms. The last confirmation completes the check and resolves
    its escalation ticket, if it had one."""
    now = now or timezone.now()
    if check.person_id != user.pk:
        raise PermissionDenied("Only the person asked confirms their assurance check.")
    with transaction.atomic():
        check = AssuranceCheck.objects.select_for_update().get(pk=check.pk)
        wanted = None if ticket_ids is None else {str(t) for t in ticket_ids}
        for item in check.items:
            if not item["confirmed_at"] and (wanted is None or item["ticket_id"] in wanted):
                item["confirmed_at"] = now.isoformat()
        if not check.pending_items and check.confirmed_at is None:
            check.confirmed_at = now
            _record(check, "governance.assurance_confirmed", now, user, items=len(check.items))
            if check.ticket_id is not None and check.ticket.is_active:
                tickets.resolve(
                    check.ticket,
                    tickets.MESHLINE,
                    note=f"Confirmed by {user.email or user.username} at {now:%Y-%m-%d %H:%M} UTC.",
                    at=now,
                )
        check.save(update_fields=["items", "confirmed_at"])
    return check


def escalate_missed(organization, now: datetime) -> list[AssuranceCheck]:
    """Checks past their due time, unconfirmed: one ticket each through the owner map."""
    with transaction.atomic():
        return _escalate(organization, now)


def _escalate(organization, now: datetime) -> list[AssuranceCheck]:
    missed = list(
        AssuranceCheck.objects.select_for_update(skip_locked=True, of=("self",))
        .filter(
            organization=organization,
            confirmed_at__isnull=True,
            escalated_at__isnull=True,
            due_at__lte=now,
        )
        .select_related("person")
    )
    for check in missed:
        check.escalated_at = now
        name = check.person.email or check.person.username
        try:
            check.ticket, _ = tickets.open_ticket(
                organization,
                source=TicketSource.ASSURANCE,
                source_key=f"assurance:{check.pk}",
                title=f"Assurance check not confirmed: {name}, week {check.week:%G-W%V}",
                event_type=MISSED,
                context={
                    "check_id": str(check.pk),
                    "person": name,
                    "pending": len(check.pending_items),
                    "remediation": (
                        f"Ask {name} to confirm the SLA status of their open tickets on their "
                        "queue, or reassign the tickets; this resolves itself when they confirm."
                    ),
                },
                priority=Priority.P3,
                at=now,
            )
        except tickets.NoOwnerError as exc:
            check.ticket_error = str(exc)
        check.save(update_fields=["escalated_at", "ticket", "ticket_error"])
        _record(check, MISSED, now, pending=len(check.pending_items))
    return missed


def current_check(organization, user, now: datetime) -> AssuranceCheck | None:
    """The person's check of this week, else their latest unconfirmed one (one query)."""
    return (
        AssuranceCheck.objects.filter(organization=organization, person=user)
        .filter(Q(week=week_of(now)) | Q(confirmed_at__isnull=True))
        .order_by("-week")
        .first()
    )
