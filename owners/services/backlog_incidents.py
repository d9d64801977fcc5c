"""Backlog incidents: the seeds' "lost event" exception (consumer lag > 30 min or queue depth
over a threshold), opened and closed by measurement alone.

Beat runs ``check`` for each organization whose backlog is past a limit or that has an
incident open (owners.tasks.backlog_sweep). ``check`` measures once and acts on it:

- past a limit, nothing open: open one ``BacklogIncident`` and one incident ticket through
  the owner map (event type ``processing.lagging``: map it to the operator role), then tell
  whoever owns the waiting events' types that their events are late;
- past a limit, one open: keep it and its ticket, with the latest and peak numbers;
- back under both limits: close it, and resolve its ticket with a note.

Ingestion never looks at any of this: events are accepted however far behind processing is.
Trail entries carry the measurement's time, which the caller passes in (``now``).
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from deliveries.models import EventProcessing, ProcessingStatus
from deliveries.services import trail
from deliveries.services.backlog import Backlog, measure
from owners.models import BacklogIncident, Priority, Ticket, TicketSource
from owners.services import owner_map, tickets
from owners.services.notifications import Outbox
from owners.services.schedules import who_is_on_duty

log = logging.getLogger(__name__)

LAG_EVENT_TYPE = BacklogIncident.EVENT_TYPE
CAUGHT_UP_EVENT_TYPE = "processing.caught_up"
# The affected owners are found from the oldest waiting events: the ones already late.
AFFECTED_SAMPLE = 1000
RUNBOOK = (
    "Events are safe: they are stored, stay pending until processed, and the sweeper "
    "dispatches them again. Check that workers run and consume (manage.py worker_health, "
    "the worker logs) and how much waits in the broker (meshline_broker_queue_depth on "
    "/metrics); add worker processes or hosts if they are all busy. Events that gave up "
    "after their attempts are not pending: find them under Events, processing failed. "
    "This ticket resolves itself once the backlog is back under both limits; then hold "
    "the incident retrospective."
)


@dataclass(frozen=True)
class Limits:
    """When a backlog becomes an incident: lag over ``lag_seconds`` or more than ``pending``."""

    lag_seconds: int
    pending: int

    @classmethod
    def from_settings(cls) -> "Limits":
        return cls(settings.MESHLINE_LAG_INCIDENT_SECONDS, settings.MESHLINE_BACKLOG_INCIDENT_DEPTH)

    def passed_by(self, backlog: Backlog) -> list[str]:
        """Why ``backlog`` is an incident, one sentence per limit passed (empty: it is not)."""
        reasons = []
        if backlog.lag.total_seconds() > self.lag_seconds:
            reasons.append(
                f"The oldest pending event has waited {_duration(backlog.lag_seconds)}, "
                f"longer than the limit of {_duration(self.lag_seconds)}."
            )
        if backlog.pending > self.pending:
            reasons.append(
                f"{backlog.pending:,} events are pending, more than the limit of {self.pending:,}."
            )
        return reasons


def _duration(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 2 * 3600:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"


def check(organization, now: datetime, limits: Limits | None = None) -> BacklogIncident | None:
    """Measure the organization's backlog at ``now`` and open, keep or close its incident.

    Returns the incident it opened, kept or closed (None: no incident, none needed). Safe to
    run twice at once: the open incident's row lock serializes two checks, and the database
    allows one open incident per organization, so a racing second opening gives way.
    """
    limits = limits or Limits.from_settings()
    backlog = measure(organization, now)
    reasons = limits.passed_by(backlog)
    with transaction.atomic():
        incident = (
            BacklogIncident.objects.select_for_update()
            .filter(organization=organization, closed_at__isnull=True)
            .first()
        )
        if incident is None:
            return _open(organization, backlog, reasons, limits) if reasons else None
        incident.organization = organization
        if reasons:
            _keep(incident, backlog, reasons, limits)
        else:
            _close(incident, backlog, limits)
    return incident


def _open(organization, backlog: Backlog, reasons: list[str], limits: Limits):
    now = backlog.measured_at
    incident = BacklogIncident(
        organization=organization,
        opened_at=now,
        lag_limit_seconds=limits.lag_seconds,
        depth_limit=limits.pending,
        measured_at=now,
        pending=backlog.pending,
        lag_seconds=backlog.lag_seconds,
        peak_pending=backlog.pending,
        peak_lag_seconds=backlog.lag_seconds,
    )
    try:
        with transaction.atomic():
            incident.save(force_insert=True)
    except IntegrityError:  # a concurrent check opened it first: that one stands
        return BacklogIncident.objects.get(organization=organization, closed_at__isnull=True)
    trail.record(
        organization,
        LAG_EVENT_TYPE,
        key=f"backlog-incident:{incident.pk}:opened",
        occurred_at=now,
        payload={
            "incident_id": str(incident.pk),
            "pending": backlog.pending,
            "lag_seconds": backlog.lag_seconds,
            "lag_limit_seconds": limits.lag_seconds,
            "depth_limit": limits.pending,
            "reasons": reasons,
        },
    )
    _ensure_ticket(incident, reasons, limits)
    _notify_affected_owners(incident, now)
    return incident


def _keep(incident: BacklogIncident, backlog: Backlog, reasons: list[str], limits: Limits):
    """Still behind: the same incident and ticket, with the latest numbers."""
    incident.measured_at = backlog.measured_at
    incident.pending = backlog.pending
    incident.lag_seconds = backlog.lag_seconds
    incident.peak_pending = max(incident.peak_pending, backlog.pending)
    incident.peak_lag_seconds = max(incident.peak_lag_seconds, backlog.lag_seconds)
    incident.save(
        update_fields=["measured_at", "pending", "lag_seconds", "peak_pending", "peak_lag_seconds"]
    )
    if incident.ticket_id is None:
        # No owner rule when it opened: an admin may have added one since.
        _ensure_ticket(incident, reasons, limits)
        return
    ticket = Ticket.objects.select_for_update(of=("self",)).get(pk=incident.ticket_id)
    if ticket.is_active:  # a person closed it by hand: it stays closed
        ticket.context = _context(incident, reasons, limits)
        ticket.save(update_fields=["context", "updated_at"])


def _close(incident: BacklogIncident, backlog: Backlog, limits: Limits) -> None:
    now = backlog.measured_at
    incident.closed_at = now
    incident.measured_at = now
    incident.pending = backlog.pending
    incident.lag_seconds = backlog.lag_seconds
    incident.save(update_fields=["closed_at", "measured_at", "pending", "lag_seconds"])
    note = (
        f"Caught up at {now:%Y-%m-%d %H:%M:%S} UTC: {backlog.pending:,} events pending, the "
        f"oldest waiting {_duration(backlog.lag_seconds)} (limits: {_duration(limits.lag_seconds)}, "
        f"{limits.pending:,} events). Worst while open: {incident.peak_pending:,} pending, "
        f"{_duration(incident.peak_lag_seconds)} behind."
    )
    trail.record(
        incident.organization,
        CAUGHT_UP_EVENT_TYPE,
        key=f"backlog-incident:{incident.pk}:closed",
        occurred_at=now,
        payload={
            "incident_id": str(incident.pk),
            "ticket_id": str(incident.ticket_id) if incident.ticket_id else None,
            "pending": backlog.pending,
            "lag_seconds": backlog.lag_seconds,
            "peak_pending": incident.peak_pending,
            "peak_lag_seconds": incident.peak_lag_seconds,
            "opened_at": incident.opened_at.isoformat(),
        },
    )
    if incident.ticket_id is not None:
        ticket = Ticket.objects.get(pk=incident.ticket_id)
        if ticket.is_active:
            tickets.resolve(ticket, tickets.MESHLINE, note=note, at=now)


def _context(incident: BacklogIncident, reasons: list[str], limits: Limits) -> dict:
    """What the ticket shows: why, the latest and worst numbers, and what to do."""
    return {
        "incident_id": str(incident.pk),
        "reasons": reasons,
        "remediation": RUNBOOK,
        "measured_at": incident.measured_at.isoformat(),
        "pending": incident.pending,
        "lag_seconds": incident.lag_seconds,
        "peak_pending": incident.peak_pending,
        "peak_lag_seconds": incident.peak_lag_seconds,
        "lag_limit_seconds": limits.lag_seconds,
        "depth_limit": limits.pending,
    }


def _ensure_ticket(incident: BacklogIncident, reasons: list[str], limits: Limits) -> None:
    """Open the incident's ticket through the owner map; without an owner rule keep the
    incident without one and say why (logged once per distinct reason, retried each check)."""
    try:
        ticket, _created = tickets.open_ticket(
            incident.organization,
            source=TicketSource.INCIDENT,
            source_key=f"backlog-incident:{incident.pk}",
            title=(
                f"Processing is behind: {incident.pending:,} events pending, the oldest "
                f"waiting {_duration(incident.lag_seconds)}"
            ),
            event_type=LAG_EVENT_TYPE,
            context=_context(incident, reasons, limits),
            priority=Priority.P1,
            at=incident.measured_at,
        )
    except tickets.NoOwnerError as exc:
        if incident.ticket_error != str(exc):
            log.warning(
                "backlog incident %s of %s has no ticket: %s",
                incident.pk,
                incident.organization.slug,
                exc,
            )
            incident.ticket_error = str(exc)
            incident.save(update_fields=["ticket_error"])
        return
    incident.ticket = ticket
    incident.ticket_error = ""
    incident.save(update_fields=["ticket", "ticket_error"])


def _notify_affected_owners(incident: BacklogIncident, now: datetime) -> None:
    """Tell the on-duty owner of each role whose events wait (the owner map's answer for the
    oldest waiting events), once per incident; the ticket's assignee heard already."""
    waiting = (
        EventProcessing.objects.filter(
            organization=incident.organization, status=ProcessingStatus.PENDING
        )
        .order_by("enqueued_at")
        .values_list(
            "event__event_type", "event__deliverable__client__tier", "event__deliverable__type"
        )[:AFFECTED_SAMPLE]
    )
    rules = owner_map.active_rules(incident.organization)
    types_by_role: dict = {}
    for event_type, tier, deliverable_type in set(waiting):
        rule = owner_map.resolve(
            incident.organization, event_type, tier or "", deliverable_type or "", rules
        ).rule
        if rule is not None:
            types_by_role.setdefault(rule.owner_role, set()).add(event_type)
    ticket = incident.ticket
    already = ticket.assignee_id if ticket is not None else None
    outbox = Outbox(incident.organization_id)
    for role, event_types in sorted(types_by_role.items(), key=lambda item: item[0].name):
        person = who_is_on_duty(role, now).primary
        if person is None or person.pk == already:
            continue
        outbox.notify(
            ticket,
            person,
            f"Processing is behind: {role.name}'s events wait "
            f"({', '.join(sorted(event_types))}); oldest {_duration(incident.lag_seconds)}",
            dedupe_key=f"backlog-incident:{incident.pk}:affected:{person.pk}",
            body={
                "incident_id": str(incident.pk),
                "ticket_id": str(ticket.pk) if ticket is not None else None,
                "owner_role": role.name,
                "event_types": sorted(event_types),
                "pending": incident.pending,
                "lag_seconds": incident.lag_seconds,
            },
        )
    outbox.flush()


def latest(organization) -> BacklogIncident | None:
    """The open incident, else the most recent closed one (the dashboard's panel)."""
    return (
        BacklogIncident.objects.filter(organization=organization)
        .select_related("ticket")
        .order_by(F("closed_at").desc(nulls_first=True))
        .first()
    )
