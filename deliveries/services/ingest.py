"""Ingestion: validate events against the contract, store each valid one exactly once.

This is the hot path (see bench/ingest). A batch costs a fixed number of queries whatever
its size: one for clients, one for existing idempotency keys, one or two for deliverables,
one insert for events and one for their processing rows, all in one transaction. The
envelope is checked by hand rather than by a DRF serializer, which costs ~10x more per
event and reports errors less precisely; payloads by cached, compiled JSON Schemas.
"""

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from deliveries import registry
from deliveries.models import (
    Client,
    Deliverable,
    DeliverableType,
    Event,
    EventProcessing,
    EventSource,
)
from meshline.ids import uuid7

log = logging.getLogger(__name__)

ALLOWED_FIELDS = {
    "event_type",
    "deliverable_id",
    "client_id",
    "correlation_id",
    "idempotency_key",
    "actor",
    "occurred_at",
    "payload",
}
REQUIRED_FIELDS = ("event_type", "deliverable_id", "client_id", "actor", "occurred_at", "payload")
STRING_LIMITS = {
    "event_type": 64,
    "deliverable_id": 100,
    "client_id": 100,
    "correlation_id": 100,
    "idempotency_key": 200,
}
ACTOR_FIELDS = {"role": 100, "id": 200}
MAX_INSERT_ATTEMPTS = 3


class Status:
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass
class IngestResult:
    """The answer for one submitted event."""

    index: int
    status: str = Status.REJECTED
    event_id: str | None = None
    errors: list[dict] = field(default_factory=list)

    @property
    def is_conflict(self) -> bool:
        return any(error["code"] == "idempotency_conflict" for error in self.errors)

    def as_dict(self) -> dict:
        data: dict = {"index": self.index, "status": self.status}
        if self.event_id:
            data["id"] = self.event_id
        if self.errors:
            data["errors"] = self.errors
        return data


@dataclass
class Candidate:
    """A submitted event whose envelope and payload are valid, ready to store."""

    result: IngestResult
    data: dict
    occurred_at: datetime
    schema_version: int
    idempotency_key: str
    digest: str
    client: Client | None = None


def _error(code: str, message: str, field_name: str | None = None) -> dict:
    error = {"code": code, "message": message}
    if field_name:
        error["field"] = field_name
    return error


def _parse_occurred_at(value, errors: list[dict]) -> datetime | None:
    if not isinstance(value, str):
        errors.append(_error("invalid_type", "Must be an ISO 8601 string.", "occurred_at"))
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        errors.append(_error("invalid_datetime", "Not an ISO 8601 date-time.", "occurred_at"))
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        errors.append(
            _error(
                "timezone_required",
                "occurred_at must carry a time zone, e.g. 2026-11-21T10:00:00Z.",
                "occurred_at",
            )
        )
        return None
    return parsed


def validate_envelope(raw, types: dict) -> tuple[dict | None, list[dict]]:
    """Check one event against the contract. Returns (normalized data, errors)."""
    errors: list[dict] = []
    if not isinstance(raw, dict):
        return None, [_error("invalid_type", "Each event must be a JSON object.")]
    for name in sorted(set(raw) - ALLOWED_FIELDS):
        errors.append(_error("unknown_field", "This field is not part of the contract.", name))
    for name in REQUIRED_FIELDS:
        if raw.get(name) is None:
            errors.append(_error("required", "This field is required.", name))
    for name, limit in STRING_LIMITS.items():
        value = raw.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            errors.append(_error("invalid_type", "Must be a string.", name))
        elif not value.strip():
            errors.append(_error("blank", "Must not be blank.", name))
        elif len(value) > limit:
            errors.append(_error("too_long", f"At most {limit} characters.", name))
    actor = raw.get("actor")
    if actor is not None:
        if not isinstance(actor, dict):
            errors.append(_error("invalid_type", "Must be an object with role and id.", "actor"))
        else:
            for name in sorted(set(actor) - set(ACTOR_FIELDS)):
                errors.append(_error("unknown_field", "Not part of actor.", f"actor.{name}"))
            for name, limit in ACTOR_FIELDS.items():
                value = actor.get(name)
                if not isinstance(value, str) or not value.strip():
                    errors.append(_error("required", "A non-empty string.", f"actor.{name}"))
                elif len(value) > limit:
                    errors.append(
                        _error("too_long", f"At most {limit} characters.", f"actor.{name}")
                    )
    occurred_at = None
    if raw.get("occurred_at") is not None:
        occurred_at = _parse_occurred_at(raw["occurred_at"], errors)
    payload = raw.get("payload")
    if payload is not None and not isinstance(payload, dict):
        errors.append(_error("invalid_type", "Must be a JSON object.", "payload"))
    event_type = raw.get("event_type")
    registered = None
    if isinstance(event_type, str) and event_type.strip():
        registered = types.get(event_type)
        if registered is None:
            errors.append(
                _error(
                    "unknown_event_type",
                    f"'{event_type}' is not a registered event type.",
                    "event_type",
                )
            )
        elif registered.internal:
            errors.append(
                _error(
                    "reserved_event_type",
                    f"'{event_type}' is written by Meshline only.",
                    "event_type",
                )
            )
    if errors:
        return None, errors
    for error in registered.validator.iter_errors(payload):
        path = ".".join(str(part) for part in error.absolute_path)
        errors.append(
            _error("payload_invalid", error.message, "payload" + (f".{path}" if path else ""))
        )
    if errors:
        return None, errors
    data = dict(raw)
    data["occurred_at"] = occurred_at
    data["schema_version"] = registered.version
    return data, []


def _digest(data: dict) -> str:
    canonical = {
        key: (value.isoformat() if isinstance(value, datetime) else value)
        for key, value in data.items()
        if key not in {"idempotency_key", "schema_version"}
    }
    if isinstance(data.get("occurred_at"), datetime):
        canonical["occurred_at"] = data["occurred_at"].astimezone(UTC).isoformat()
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def _oversize(raw) -> bool:
    limit = settings.MESHLINE_MAX_EVENT_BYTES
    encoded = json.dumps(raw, separators=(",", ":"), ensure_ascii=False)
    return len(encoded.encode()) > limit


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
        if _oversize(raw):
            result.errors = [
                _error(
                    "too_large",
                    f"An event may be at most {settings.MESHLINE_MAX_EVENT_BYTES} bytes.",
                )
            ]
            continue
        data, errors = validate_envelope(raw, types)
        if errors:
            result.errors = errors
            continue
        digest = _digest(data)
        key = data.get("idempotency_key") or f"sha256:{digest}"
        candidates.append(
            Candidate(result, data, data["occurred_at"], data["schema_version"], key, digest)
        )
    if candidates:
        _store(organization, candidates, source)
    return results


def _store(organization, candidates: list[Candidate], source: str) -> None:
    for attempt in range(1, MAX_INSERT_ATTEMPTS + 1):
        try:
            with transaction.atomic():
                created = _store_once(organization, candidates, source)
            break
        except IntegrityError:
            # Another request inserted one of our idempotency keys (or deliverables) between
            # our look-up and our insert. Its transaction has committed by now (the unique
            # index made us wait for it), so the next pass classifies those as duplicates.
            if attempt == MAX_INSERT_ATTEMPTS:
                raise
            log.info("ingest: concurrent insert of the same keys, retrying (attempt %s)", attempt)
            for candidate in candidates:
                candidate.result.status, candidate.result.event_id = Status.REJECTED, None
                candidate.result.errors = []
    if created:
        from deliveries.services.processing import dispatch_events

        transaction.on_commit(lambda: dispatch_events(organization.pk, created))


def _store_once(organization, candidates: list[Candidate], source: str) -> list:
    """One attempt: classify duplicates, create deliverables, insert. Returns new event ids."""
    client_refs = {c.data["client_id"] for c in candidates}
    clients = {
        client.client_id: client
        for client in Client.objects.filter(organization=organization, client_id__in=client_refs)
    }
    existing = {
        key: (event_id, digest)
        for key, event_id, digest in Event.objects.filter(
            organization=organization,
            idempotency_key__in={c.idempotency_key for c in candidates},
        ).values_list("idempotency_key", "id", "content_digest")
    }
    to_store: list[Candidate] = []
    for candidate in candidates:
        result = candidate.result
        client = clients.get(candidate.data["client_id"])
        if client is None:
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
        candidate.client = client
        to_store.append(candidate)
    if not to_store:
        return []

    deliverables = _deliverables_for(organization, to_store)
    now = timezone.now()
    events: list[Event] = []
    for candidate in to_store:
        deliverable = deliverables[candidate.data["deliverable_id"]]
        if deliverable.client_id != candidate.client.pk:
            candidate.result.errors = [
                _error(
                    "deliverable_client_mismatch",
                    f"Deliverable '{deliverable.deliverable_id}' belongs to another client.",
                    "client_id",
                )
            ]
            continue
        event = Event(
            id=uuid7(),
            organization=organization,
            event_type=candidate.data["event_type"],
            schema_version=candidate.schema_version,
            client=candidate.client,
            deliverable=deliverable,
            correlation_id=candidate.data.get("correlation_id") or "",
            idempotency_key=candidate.idempotency_key,
            content_digest=candidate.digest,
            actor_role=candidate.data["actor"]["role"],
            actor_id=candidate.data["actor"]["id"],
            occurred_at=candidate.occurred_at,
            received_at=now,
            payload=candidate.data["payload"],
            source=source,
        )
        events.append(event)
        candidate.result.status = Status.ACCEPTED
        candidate.result.event_id = str(event.id)
    # In-batch repeats point at the event stored for their first occurrence.
    stored = {e.idempotency_key: str(e.id) for e in events}
    for candidate in candidates:
        if candidate.result.status == Status.DUPLICATE and candidate.result.event_id is None:
            candidate.result.event_id = stored.get(candidate.idempotency_key)
            if candidate.result.event_id is None:  # its first occurrence was rejected
                candidate.result.status = Status.REJECTED
                candidate.result.errors = [
                    _error("duplicate_of_rejected", "Repeats an event rejected in this batch.")
                ]
    if not events:
        return []
    Event.objects.bulk_create(events)
    EventProcessing.objects.bulk_create(
        [EventProcessing(event=e, organization=organization, enqueued_at=now) for e in events]
    )
    return [e.pk for e in events]


def _classify_repeat(candidate: Candidate, event_id, digest: str) -> None:
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


def _deliverables_for(organization, candidates: list[Candidate]) -> dict[str, Deliverable]:
    """Existing deliverables by reference, creating the missing ones from their first event."""
    refs = {c.data["deliverable_id"] for c in candidates}
    found = {
        d.deliverable_id: d
        for d in Deliverable.objects.filter(organization=organization, deliverable_id__in=refs)
    }
    missing: dict[str, Deliverable] = {}
    for candidate in candidates:
        ref = candidate.data["deliverable_id"]
        if ref in found or ref in missing:
            continue
        payload = candidate.data["payload"]
        missing[ref] = Deliverable(
            organization=organization,
            client=candidate.client,
            deliverable_id=ref,
            type=payload.get("deliverable_type") or _guess_type(candidate.data["event_type"]),
            title=(payload.get("title") or "")[:300],
        )
    if missing:
        # ignore_conflicts: a concurrent request may create the same deliverable; re-read.
        Deliverable.objects.bulk_create(missing.values(), ignore_conflicts=True)
        found.update(
            {
                d.deliverable_id: d
                for d in Deliverable.objects.filter(
                    organization=organization, deliverable_id__in=missing.keys()
                )
            }
        )
    return found


def _guess_type(event_type: str) -> str:
    if event_type.startswith("asset."):
        return DeliverableType.ASSET
    if event_type.startswith(("page.", "sitemap.")):
        return DeliverableType.LANDING_PAGE
    return DeliverableType.OTHER
