"""Replay and backfill: re-run processing for an organization's stored events.

An operator picks events (a time range on ``occurred_at``, event types, one deliverable,
only those whose processing failed) and processing runs again for them through
``processing.process_batch``, the one entry point workers use too. Processing skips what is
already processed, so each chunk's processing rows are first put back to pending
(``reset_for_replay``). Every processing step is idempotent (verdicts, tickets, trail
entries, billable items, flow runs, reporting rows and outbound deliveries are keyed), so a
replayed range changes nothing that is already right, and does what a fixed fault kept
from happening. Meshline's own trail entries are never replayed: they are effects, not input.
"""

import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from django.db import transaction
from django.db.models import Case, Count, F, Q, Value, When
from django.utils import timezone

from deliveries import registry
from deliveries.models import Deliverable, Event, EventProcessing, EventSource, ProcessingStatus
from deliveries.services import processing

log = logging.getLogger(__name__)

DEFAULT_CHUNK_SIZE = 200
MAX_CHUNK_SIZE = 5000


class ReplayError(ValueError):
    """Replay arguments that cannot be used; the message says which and why."""


@dataclass(frozen=True)
class Selection:
    """Which of an organization's events to replay. ``until`` is exclusive."""

    since: datetime | None = None
    until: datetime | None = None
    event_types: tuple[str, ...] = ()
    deliverable_id: str = ""
    failed_only: bool = False

    def __post_init__(self):
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and timezone.is_naive(value):
                raise ReplayError(f"{name} must carry a time zone.")
        if self.since and self.until and self.since >= self.until:
            raise ReplayError(
                f"since ({self.since.isoformat()}) must be before until ({self.until.isoformat()})."
            )


def parse_moment(value: str, zone, *, end: bool = False) -> datetime:
    """An ISO date or date-time from the command line, as an aware instant.

    A date is a day in the organization's time zone: its start, or (``end``, for
    ``--until``) the start of the next day, so ``--since D --until D`` is the whole day D.
    A date-time must carry its offset (``Z`` or ``+01:00``): a guessed zone could replay
    the wrong hours.
    """
    text = (value or "").strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ReplayError(
            f"{value!r} is not an ISO date (2026-11-21) or date-time with an offset "
            "(2026-11-21T10:00:00Z)."
        ) from None
    if "T" not in text.upper() and " " not in text:  # a bare date
        day = date.fromisoformat(text)
        if end:
            day += timedelta(days=1)
        return datetime.combine(day, time.min, tzinfo=zone)
    if timezone.is_naive(moment):
        raise ReplayError(
            f"{value!r} has no time zone: add one (2026-11-21T10:00:00Z or +01:00), or give "
            "a date, which counts in the organization's time zone."
        )
    return moment


def check(organization, selection: Selection) -> None:
    """Refuse names that select nothing by mistake: an event type the organization does
    not know, a deliverable it does not have."""
    known = registry.types_for(organization)
    unknown = [name for name in selection.event_types if name not in known]
    if unknown:
        raise ReplayError(f"Unknown event type(s) for {organization.slug}: {', '.join(unknown)}.")
    if (
        selection.deliverable_id
        and not Deliverable.objects.filter(
            organization=organization, deliverable_id=selection.deliverable_id
        ).exists()
    ):
        raise ReplayError(f"No deliverable {selection.deliverable_id!r} in {organization.slug}.")


def failed_condition(prefix: str = "processing__") -> Q:
    """Processing that gave up (failed) or keeps failing (pending with an error)."""
    return Q(**{f"{prefix}status": ProcessingStatus.FAILED}) | (
        Q(**{f"{prefix}status": ProcessingStatus.PENDING}) & ~Q(**{f"{prefix}last_error": ""})
    )


def select_events(organization, selection: Selection):
    """The organization's submitted events the selection names, oldest first."""
    events = Event.objects.filter(organization=organization).exclude(source=EventSource.MESHLINE)
    if selection.since is not None:
        events = events.filter(occurred_at__gte=selection.since)
    if selection.until is not None:
        events = events.filter(occurred_at__lt=selection.until)
    if selection.event_types:
        events = events.filter(event_type__in=selection.event_types)
    if selection.deliverable_id:
        events = events.filter(deliverable__deliverable_id=selection.deliverable_id)
    if selection.failed_only:
        events = events.filter(failed_condition())
    return events.order_by("occurred_at", "id")


@dataclass
class Plan:
    """What a replay would touch: event counts by type and by processing status."""

    total: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)


def plan(organization, selection: Selection) -> Plan:
    """Counts for a dry run, in one query; changes nothing."""
    result = Plan()
    by_type, by_status = Counter(), Counter()
    rows = (
        select_events(organization, selection)
        .order_by()
        .values_list("event_type", "processing__status")
        .annotate(n=Count("id"))
    )
    for event_type, status, n in rows:
        by_type[event_type] += n
        by_status[status or "none"] += n
        result.total += n
    result.by_type, result.by_status = (
        dict(sorted(by_type.items())),
        dict(sorted(by_status.items())),
    )
    return result


@dataclass
class Outcome:
    """What a replay did. ``replayed``: processed again; ``skipped``: processing found
    nothing to do (processed meanwhile by a worker); ``failed``: a step raised, the event
    keeps its error and stays pending for the sweeper's retries."""

    selected: int = 0
    replayed: int = 0
    skipped: int = 0
    failed: int = 0
    by_type: dict[str, Counter] = field(default_factory=dict)

    def add(self, other: "Outcome") -> None:
        self.selected += other.selected
        self.replayed += other.replayed
        self.skipped += other.skipped
        self.failed += other.failed
        for event_type, counts in other.by_type.items():
            self.by_type.setdefault(event_type, Counter()).update(counts)


def reset_for_replay(organization, event_ids: list, now: datetime | None = None) -> int:
    """Put the events' processing back to pending so processing runs them again.

    Attempts start afresh for events that never finished (failed, or pending with an
    error): a fixed fault gets the full MAX_ATTEMPTS again. Processed events keep their
    count. ``enqueued_at`` is now, so the sweeper leaves them to the caller for its grace
    period (and picks them up after it, should the caller die).
    """
    now = now or timezone.now()
    with transaction.atomic():
        return EventProcessing.objects.filter(
            organization=organization, event_id__in=event_ids
        ).update(
            status=ProcessingStatus.PENDING,
            attempts=Case(
                When(status=ProcessingStatus.PROCESSED, then=F("attempts")), default=Value(0)
            ),
            enqueued_at=now,
            replay_count=F("replay_count") + 1,
            replayed_at=now,
        )


def replay_chunk(organization, event_ids: list, now: datetime | None = None) -> Outcome:
    """Reset and process one chunk of the organization's events, in the order given
    (ids of other organizations' events are ignored)."""
    wanted = list(dict.fromkeys(str(pk) for pk in event_ids))
    found = {
        str(pk)
        for pk in EventProcessing.objects.filter(
            organization=organization, event_id__in=wanted
        ).values_list("event_id", flat=True)
    }
    ids = [pk for pk in wanted if pk in found]
    if not ids:
        return Outcome()
    reset_for_replay(organization, ids, now)
    result = processing.process_batch(organization, ids)
    outcome = Outcome(len(ids), result.processed, result.skipped, result.failed)
    rows = (
        EventProcessing.objects.filter(organization=organization, event_id__in=ids)
        .values_list("event__event_type", "status")
        .annotate(n=Count("pk"))
    )
    for event_type, status, n in rows:
        outcome.by_type.setdefault(event_type, Counter())[status] += n
    return outcome


def chunks(organization, selection: Selection, size: int) -> Iterator[list]:
    """The selected event ids, ``size`` at a time, paged by (occurred_at, id).

    Keyset pages rather than one cursor: each chunk commits, and a server-side cursor
    does not outlive its transaction. ``failed_only`` selections shrink as they succeed,
    which a keyset page, unlike an offset, does not trip over.
    """
    events = select_events(organization, selection)
    after = None
    while True:
        page = events
        if after is not None:
            at, pk = after
            page = page.filter(Q(occurred_at__gt=at) | Q(occurred_at=at, id__gt=pk))
        rows = list(page.values_list("id", "occurred_at")[:size])
        if not rows:
            return
        yield [pk for pk, _at in rows]
        after = (rows[-1][1], rows[-1][0])


def replay(
    organization,
    selection: Selection,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    progress: Callable[[Outcome, int], None] | None = None,
    now: Callable[[], datetime] = timezone.now,
) -> Outcome:
    """Re-run processing for the selected events, chunk by chunk; the totals.

    ``progress(outcome so far, total selected)`` is called after each chunk. Must run in
    the organization's scope.
    """
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ReplayError(f"chunk size must be between 1 and {MAX_CHUNK_SIZE}.")
    total = select_events(organization, selection).count()
    outcome = Outcome()
    for chunk in chunks(organization, selection, chunk_size):
        outcome.add(replay_chunk(organization, chunk, now()))
        if progress is not None:
            progress(outcome, total)
    log.info(
        "replay %s: selected %s, replayed %s, skipped %s, failed %s",
        organization.slug,
        outcome.selected,
        outcome.replayed,
        outcome.skipped,
        outcome.failed,
    )
    return outcome


def queue_replay(organization, events) -> tuple[int, bool]:
    """Reset ``events`` (a queryset) for replay and queue their processing: the admin's
    way, no thousands of events processed inside a request. Returns (events reset, queued).

    Only the organization's submitted events count. Not queued (broker down) loses
    nothing: the rows are pending in the database and the sweeper dispatches them after
    its grace period.
    """
    ids = list(
        events.filter(organization=organization)
        .exclude(source=EventSource.MESHLINE)
        .order_by("occurred_at", "id")
        .values_list("id", flat=True)
    )
    for start in range(0, len(ids), MAX_CHUNK_SIZE):
        reset_for_replay(organization, ids[start : start + MAX_CHUNK_SIZE])
    if not ids:
        return 0, True
    return len(ids), processing.dispatch_events(organization.pk, ids)
