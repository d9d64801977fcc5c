"""Meshline's own entries in the trail (ticket.opened, rota.handoff, ...).

Higher layers record what they did by calling ``record`` directly (audit is explicit). An
entry is keyed, so a retried task appends it once. It is stored already processed: the
trail is its only effect.
"""

import hashlib
import json

from django.db import IntegrityError, transaction
from django.utils import timezone

from deliveries.models import Event, EventProcessing, EventSource, ProcessingStatus


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
) -> Event:
    """Append one Meshline event (idempotent by ``key``) and return it."""
    idempotency_key = f"meshline:{key}"
    existing = Event.objects.filter(
        organization=organization, idempotency_key=idempotency_key
    ).first()
    if existing is not None:
        return existing
    now = timezone.now()
    digest = hashlib.sha256(
        json.dumps([event_type, payload], sort_keys=True, default=str).encode()
    ).hexdigest()
    try:
        with transaction.atomic():
            event = Event.objects.create(
                organization=organization,
                event_type=event_type,
                client_id=deliverable.client_id if deliverable is not None else None,
                deliverable=deliverable,
                correlation_id=correlation_id,
                idempotency_key=idempotency_key,
                content_digest=digest,
                actor_role=actor_role,
                actor_id=actor_id,
                occurred_at=occurred_at or now,
                received_at=now,
                payload=payload,
                source=EventSource.MESHLINE,
            )
            EventProcessing.objects.create(
                event=event,
                organization=organization,
                status=ProcessingStatus.PROCESSED,
                enqueued_at=now,
                processed_at=now,
            )
    except IntegrityError:  # a concurrent retry recorded it first
        return Event.objects.get(organization=organization, idempotency_key=idempotency_key)
    return event
