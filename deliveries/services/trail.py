"""Meshline's own entries in the trail (ticket.opened, rota.handoff, ...).

Higher layers record what they did by calling ``record`` (one entry) or ``record_many`` (a
sweep's worth, in two INSERTs) directly: audit is explicit, and every entry Meshline writes
gets its digest and idempotency key here, nowhere else. An entry is keyed, so a retried task
appends it once. It is stored already processed: the
trail is its only effect. Higher layers hear of new entries through
``meshline.extensions.trail_listeners``, inside the appending transaction (connectors queue
outbound deliveries that way).
"""

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from deliveries.models import (
    Client,
    Deliverable,
    Event,
    EventProcessing,
    EventSource,
    ProcessingStatus,
)
from meshline import bulk
from meshline.extensions import trail_listeners


@dataclass(frozen=True)
class Entry:
    """One Meshline entry for ``record_many``; the same fields ``record`` takes."""

    event_type: str
    key: str
    payload: dict
    deliverable: Deliverable | None = None
    actor_role: str = "meshline"
    actor_id: str = "meshline"
    occurred_at: datetime | None = None
    correlation_id: str = ""
    # An entry about a client rather than one deliverable (an invoice): its client's trail.
    client: Client | None = None

    @property
    def idempotency_key(self) -> str:
        return f"meshline:{self.key}"

    def build(self, organization, now: datetime) -> Event:
        """The unsaved row: digest over (type, payload), stamped with when it happened."""
        digest = hashlib.sha256(
            json.dumps([self.event_type, self.payload], sort_keys=True, default=str).encode()
        ).hexdigest()
        return Event(
            organization=organization,
            event_type=self.event_type,
            client_id=(
                self.deliverable.client_id
                if self.deliverable is not None
                else (self.client.pk if self.client is not None else None)
            ),
            deliverable=self.deliverable,
            correlation_id=self.correlation_id,
            idempotency_key=self.idempotency_key,
            content_digest=digest,
            actor_role=self.actor_role,
            actor_id=self.actor_id,
            occurred_at=self.occurred_at or now,
            received_at=now,
            payload=self.payload,
            source=EventSource.MESHLINE,
        )


def _processed(event: Event, now: datetime) -> EventProcessing:
    # Stored already processed: the trail is the entry's only effect.
    return EventProcessing(
        event=event,
        organization=event.organization,
        status=ProcessingStatus.PROCESSED,
        enqueued_at=now,
        processed_at=now,
    )


def record(
    organization,
    event_type: str,
    *,
    key: str,
    payload: dict,
    deliverable=None,
    actor_role: str = "meshline",
    actor_id: str = "meshline",
    occurred_at=None,
    correlation_id: str = "",
    client=None,
) -> Event:
    """Append one Meshline event (idempotent by ``key``) and return it. ``client`` places
    an entry that concerns no single deliverable in that client's trail."""
    entry = Entry(
        event_type,
        key,
        payload,
        deliverable,
        actor_role,
        actor_id,
        occurred_at,
        correlation_id,
        client,
    )
    existing = Event.objects.filter(
        organization=organization, idempotency_key=entry.idempotency_key
    ).first()
    if existing is not None:
        return existing
    now = timezone.now()
    try:
        with transaction.atomic():
            event = entry.build(organization, now)
            event.save(force_insert=True)
            _processed(event, now).save(force_insert=True)
            _notify(organization, [event])
    except IntegrityError:  # a concurrent retry recorded it first
        return Event.objects.get(organization=organization, idempotency_key=entry.idempotency_key)
    return event


def record_many(organization, entries: Sequence[Entry]) -> list[Event]:
    """Append many entries in two COPYs (INSERTs off PostgreSQL); returns the new rows.

    Entries whose key is in the trail already are skipped, so a retried caller appends each
    once. Callers that may race on the same keys hold a lock on what the entries are about
    (escalation holds the tickets' rows), as a concurrent duplicate raises IntegrityError.
    """
    if not entries:
        return []
    keys = [entry.idempotency_key for entry in entries]
    recorded = set(
        Event.objects.filter(organization=organization, idempotency_key__in=keys).values_list(
            "idempotency_key", flat=True
        )
    )
    now = timezone.now()
    events, seen = [], set(recorded)
    for entry in entries:
        if entry.idempotency_key not in seen:
            seen.add(entry.idempotency_key)
            events.append(entry.build(organization, now))
    with transaction.atomic():
        bulk.insert(events)
        bulk.insert([_processed(event, now) for event in events])
        _notify(organization, events)
    return events


def _notify(organization, events: list[Event]) -> None:
    """Hand the new entries to the trail listeners, inside the appending transaction."""
    if events:
        for listener in trail_listeners:
            listener(organization, events)
