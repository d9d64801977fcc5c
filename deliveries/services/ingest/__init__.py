"""Ingestion: validate events against the contract, store each valid one exactly once.

This is the hot path (see bench/ingest.py). A batch costs a fixed number of statements
whatever its size, all in one transaction. On PostgreSQL: one look-up of clients,
idempotency keys and deliverables together, a deliverable insert only when an event names
a new one, and the events COPYed in with their processing rows (a single event: one
INSERT for both). Elsewhere (SQLite) the same steps go through the ORM. The envelope is
checked by hand rather than by a DRF serializer, which costs ~10x more per event and
reports errors less precisely; payloads by cached, compiled JSON Schemas. A valid event's
size is derived from the canonical JSON its digest needs, rather than from a second encoding.
"""

import hashlib
import logging

from django.conf import settings
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from deliveries import registry
from deliveries.models import Deliverable, DeliverableType, EventSource
from deliveries.services.ingest.canonical import (
    _canonical,
    _digest,
    _oversize,
    _size,
    _size_from_canonical,
    _too_large,
)
from deliveries.services.ingest.envelope import (
    ACTOR_FIELDS,
    ALLOWED_FIELDS,
    NUL_MESSAGE,
    REFERENCE_FIELDS,
    REQUIRED_FIELDS,
    STRING_LIMITS,
    _parse_occurred_at,
    validate_envelope,
)
from deliveries.services.ingest.results import Candidate, IngestResult, Status, _error
from deliveries.services.ingest.storage import (
    EVENT_FIELDS,
    PROCESSING_FIELDS,
    OrmStorage,
    PostgresStorage,
    _storage,
)
from meshline import telemetry
from meshline.db import is_retryable
from meshline.ids import uuid7

__all__ = [
    "ACTOR_FIELDS",
    "ALLOWED_FIELDS",
    "EVENT_FIELDS",
    "NUL_MESSAGE",
    "PROCESSING_FIELDS",
    "REFERENCE_FIELDS",
    "REQUIRED_FIELDS",
    "STRING_LIMITS",
    "Candidate",
    "IngestResult",
    "OrmStorage",
    "PostgresStorage",
    "Status",
    "_canonical",
    "_digest",
    "_parse_occurred_at",
    "_size",
    "_size_from_canonical",
    "_storage",
    "ingest_events",
    "validate_envelope",
]

log = logging.getLogger(__name__)
MAX_INSERT_ATTEMPTS = 3


def ingest_events(
    organization, raw_events: list, *, source: str = EventSource.API
) -> list[IngestResult]:
    """Validate and store events for one organization; one result per event, in order.

    Valid events are committed before this returns; invalid ones leave no trace. Each event
    stands alone: one bad event in a batch does not stop the others.
    """
    types = registry.types_for(organization)
    results = [IngestResult(index=i) for i in range(len(raw_events))]
    candidates: list[Candidate] = []
    for result, raw in zip(results, raw_events, strict=True):
        # An oversize event is answered too_large alone, whatever else is wrong with it. A
        # valid event's size comes from the canonical JSON that its digest needs anyway.
        data, errors = validate_envelope(raw, types)
        if errors:
            result.errors = _too_large() if _oversize(raw) else errors
            continue
        try:
            canonical = _canonical(data)
        except UnicodeEncodeError:
            result.errors = [
                _error("invalid_text", "Text contains an unpaired surrogate (not valid Unicode).")
            ]
            continue
        if _size_from_canonical(raw, canonical, data) > settings.MESHLINE_MAX_EVENT_BYTES:
            result.errors = _too_large()
            continue
        digest = hashlib.sha256(canonical).hexdigest()
        key = data.get("idempotency_key") or f"sha256:{digest}"
        candidates.append(
            Candidate(result, data, data["occurred_at"], data["schema_version"], key, digest)
        )
    if candidates:
        _store(organization, candidates, source)
        telemetry.tag_events(c.data for c in candidates if c.result.status == Status.ACCEPTED)
    return results


def _store(organization, candidates: list[Candidate], source: str) -> None:
    """Store the candidates in one transaction, retrying when a concurrent insert wins."""
    for attempt in range(1, MAX_INSERT_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                created = _store_once(organization, candidates, source)
            break
        except (IntegrityError, OperationalError) as exc:
            # Another request inserted one of our idempotency keys (or deliverables) between
            # our look-up and our insert. Its transaction has committed by now (the unique
            # index made us wait for it), so the next pass classifies those as duplicates.
            # Or PostgreSQL broke a deadlock with another writer by rolling us back whole.
            if attempt == MAX_INSERT_ATTEMPTS or not (
                isinstance(exc, IntegrityError) or is_retryable(exc)
            ):
                raise
            log.info("ingest: concurrent insert of the same keys, retrying (attempt %s)", attempt)
            for candidate in candidates:
                candidate.result.status, candidate.result.event_id = Status.REJECTED, None
                candidate.result.errors = []
    if created:
        from deliveries.services.processing import dispatch_events

        event_ids, deliverable_ids = zip(*created, strict=True)
        telemetry.on_commit(lambda: dispatch_events(organization.pk, event_ids, deliverable_ids))


def _store_once(organization, candidates: list[Candidate], source: str) -> list:
    """One attempt: classify duplicates, create deliverables, insert. Returns the new
    events' (id, deliverable key) pairs."""
    store = _storage()
    clients, existing, deliverables = store.lookup(
        organization,
        {c.data["client_id"] for c in candidates},
        {c.idempotency_key for c in candidates},
        {c.data["deliverable_id"] for c in candidates},
    )
    to_store: list[Candidate] = []
    for candidate in candidates:
        result = candidate.result
        client_pk = clients.get(candidate.data["client_id"])
        if client_pk is None:
            result.errors = [
                _error(
                    "unknown_client",
                    f"No client '{candidate.data['client_id']}' is registered; "
                    "create it first (POST /api/v1/clients).",
                    "client_id",
                )
            ]
            continue
        previous = existing.get(candidate.idempotency_key)
        if previous is not None:
            _classify_repeat(candidate, *previous)
            continue
        existing[candidate.idempotency_key] = (None, candidate.digest)  # in-batch repeats
        candidate.client_pk = client_pk
        to_store.append(candidate)
    if not to_store:
        return []

    _create_missing_deliverables(organization, to_store, deliverables, store)
    now = timezone.now()
    rows: list[tuple] = []
    for candidate in to_store:
        deliverable_pk, owner_pk = deliverables[candidate.data["deliverable_id"]]
        if owner_pk != candidate.client_pk:
            candidate.result.errors = [
                _error(
                    "deliverable_client_mismatch",
                    f"Deliverable '{candidate.data['deliverable_id']}' belongs to another client.",
                    "client_id",
                )
            ]
            continue
        event_id = uuid7()
        data = candidate.data
        rows.append(
            (
                event_id,
                organization.pk,
                data["event_type"],
                candidate.schema_version,
                candidate.client_pk,
                deliverable_pk,
                data.get("correlation_id") or "",
                candidate.idempotency_key,
                candidate.digest,
                data["actor"]["role"],
                data["actor"]["id"],
                candidate.occurred_at,
                now,
                data["payload"],
                source,
            )
        )
        candidate.result.status = Status.ACCEPTED
        candidate.result.event_id = str(event_id)
    # In-batch repeats point at the event stored for their first occurrence.
    stored = {row[7]: str(row[0]) for row in rows}
    for candidate in candidates:
        if candidate.result.status == Status.DUPLICATE and candidate.result.event_id is None:
            candidate.result.event_id = stored.get(candidate.idempotency_key)
            if candidate.result.event_id is None:  # its first occurrence was rejected
                candidate.result.status = Status.REJECTED
                candidate.result.errors = [
                    _error("duplicate_of_rejected", "Repeats an event rejected in this batch.")
                ]
    if not rows:
        return []
    # In key order, as deliverables: concurrent repeats of the same keys wait, not deadlock.
    store.insert(organization, sorted(rows, key=lambda row: row[7]), now)
    return [(row[0], row[5]) for row in rows]


def _classify_repeat(candidate: Candidate, event_id, digest: str) -> None:
    """A repeated idempotency key: a duplicate if the content matches, else a conflict."""
    result = candidate.result
    if digest != candidate.digest:
        result.status = Status.REJECTED
        result.errors = [
            _error(
                "idempotency_conflict",
                "This idempotency_key was already used for an event with different content.",
                "idempotency_key",
            )
        ]
        return
    result.status = Status.DUPLICATE
    result.event_id = str(event_id) if event_id else None


def _create_missing_deliverables(
    organization, candidates: list[Candidate], deliverables: dict, store
) -> None:
    """Create the deliverables first named by these events (from their first event) and add
    them to ``deliverables`` (reference -> (pk, client pk))."""
    missing: dict[str, Deliverable] = {}
    for candidate in candidates:
        ref = candidate.data["deliverable_id"]
        if ref in deliverables or ref in missing:
            continue
        payload = candidate.data["payload"]
        # An organization's own event types need not declare these hints: use them only
        # when they are storable (a number for a title, or an unknown type, used to be a 500).
        hinted_type, title = payload.get("deliverable_type"), payload.get("title")
        missing[ref] = Deliverable(
            organization=organization,
            client_id=candidate.client_pk,
            deliverable_id=ref,
            type=hinted_type
            if hinted_type in DeliverableType.values
            else _guess_type(candidate.data["event_type"]),
            title=title[:300] if isinstance(title, str) else "",
        )
    if missing:
        # ignore_conflicts: a concurrent request may create the same deliverable; re-read.
        # In reference order: two requests creating the same new deliverables then wait for
        # each other in one order, and cannot deadlock.
        Deliverable.objects.bulk_create(
            [missing[ref] for ref in sorted(missing)], ignore_conflicts=True
        )
        deliverables.update(store.deliverables(organization, missing.keys()))


def _guess_type(event_type: str) -> str:
    if event_type.startswith("asset."):
        return DeliverableType.ASSET
    if event_type.startswith(("page.", "sitemap.")):
        return DeliverableType.LANDING_PAGE
    return DeliverableType.OTHER
