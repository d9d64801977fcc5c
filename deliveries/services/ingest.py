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
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from referencing.exceptions import Unresolvable

from deliveries import registry
from deliveries.jsonlimits import find_problem
from deliveries.models import (
    REFERENCE_MESSAGE,
    REFERENCE_RE,
    Client,
    Deliverable,
    DeliverableType,
    Event,
    EventProcessing,
    EventSource,
    ProcessingStatus,
)
from meshline.ids import uuid7
from meshline.instants import instant_problem

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
# The submitter's references: restricted to the documented pattern (models.REFERENCE_RE).
REFERENCE_FIELDS = ("deliverable_id", "client_id")
ACTOR_FIELDS = {"role": 100, "id": 200}
NUL_MESSAGE = "Text contains a NUL character (\\u0000)."
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
    client_pk: int | None = None


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
    problem = instant_problem(parsed)
    if problem is not None:
        errors.append(_error(*problem, "occurred_at"))
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
        elif name in REFERENCE_FIELDS and not REFERENCE_RE.fullmatch(value):
            errors.append(_error("invalid_reference", REFERENCE_MESSAGE, name))
        elif "\x00" in value:
            # PostgreSQL cannot store NUL in text: refuse it here, as a 400.
            errors.append(_error("invalid_text", NUL_MESSAGE, name))
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
                elif "\x00" in value:
                    errors.append(_error("invalid_text", NUL_MESSAGE, f"actor.{name}"))
    occurred_at = None
    if raw.get("occurred_at") is not None:
        occurred_at = _parse_occurred_at(raw["occurred_at"], errors)
    payload = raw.get("payload")
    if payload is not None and not isinstance(payload, dict):
        errors.append(_error("invalid_type", "Must be a JSON object.", "payload"))
    elif payload is not None:
        # Before the JSON Schema: deep nesting would exhaust its recursion.
        problem = find_problem(payload, "payload")
        if problem is not None:
            errors.append(_error(problem.code, problem.message, problem.field))
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
    try:
        for error in registered.validator.iter_errors(payload):
            path = ".".join(str(part) for part in error.absolute_path)
            errors.append(
                _error("payload_invalid", error.message, "payload" + (f".{path}" if path else ""))
            )
    except Unresolvable as exc:
        # A schema stored before registration refused outside references: the registry
        # never fetches one (see registry._compile), so it cannot be checked against.
        return None, [
            _error(
                "schema_unresolvable",
                f"The schema of '{event_type}' (version {registered.version}) refers to "
                f"'{exc.ref}', which Meshline does not fetch; "
                "register a new version whose $ref points inside the schema.",
                "event_type",
            )
        ]
    if errors:
        return None, errors
    data = dict(raw)
    data["occurred_at"] = occurred_at
    data["schema_version"] = registered.version
    return data, []


_canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_IDEMPOTENCY_MEMBER = len('"idempotency_key":,')  # name, colon and the comma before it


def _canonical(data: dict) -> bytes:
    """The event's canonical JSON (UTF-8): what its content digest is taken of."""
    canonical = {
        key: (value.isoformat() if isinstance(value, datetime) else value)
        for key, value in data.items()
        if key not in {"idempotency_key", "schema_version"}
    }
    if isinstance(data.get("occurred_at"), datetime):
        canonical["occurred_at"] = data["occurred_at"].astimezone(UTC).isoformat()
    return _canonical_json(canonical).encode()


def _digest(data: dict) -> str:
    return hashlib.sha256(_canonical(data)).hexdigest()


def _size(value) -> int:
    """Bytes of the value's compact JSON (UTF-8): the measure of the event size limit."""
    encoded = _compact_json(value)
    return len(encoded) if encoded.isascii() else len(encoded.encode())


def _oversize(raw) -> bool:
    try:
        return _size(raw) > settings.MESHLINE_MAX_EVENT_BYTES
    except (UnicodeEncodeError, RecursionError):
        # An invalid event with unpaired surrogates, or nested too deep: report its errors.
        return False


def _size_from_canonical(raw: dict, canonical: bytes, data: dict) -> int:
    """``_size(raw)`` for a valid event, without encoding it a second time.

    The canonical form holds the same members with the same values, in another order
    (which does not change the length), except that it leaves out ``idempotency_key`` and
    spells ``occurred_at`` in UTC: swap those back in.
    """
    size = len(canonical) + _size(raw["occurred_at"])
    size -= _size(data["occurred_at"].astimezone(UTC).isoformat())
    if "idempotency_key" in raw:
        size += _IDEMPOTENCY_MEMBER + _size(raw["idempotency_key"])
    return size


def _too_large() -> list[dict]:
    return [
        _error(
            "too_large",
            f"An event may be at most {settings.MESHLINE_MAX_EVENT_BYTES} bytes.",
        )
    ]


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
    store.insert(organization, rows, now)
    return [row[0] for row in rows]


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
        Deliverable.objects.bulk_create(missing.values(), ignore_conflicts=True)
        deliverables.update(store.deliverables(organization, missing.keys()))


def _guess_type(event_type: str) -> str:
    if event_type.startswith("asset."):
        return DeliverableType.ASSET
    if event_type.startswith(("page.", "sitemap.")):
        return DeliverableType.LANDING_PAGE
    return DeliverableType.OTHER


# --- storage --------------------------------------------------------------------------------
# An event row, as _store_once builds it: the columns of deliveries_event, in this order.
EVENT_FIELDS = (
    "id",
    "organization_id",
    "event_type",
    "schema_version",
    "client_id",
    "deliverable_id",
    "correlation_id",
    "idempotency_key",
    "content_digest",
    "actor_role",
    "actor_id",
    "occurred_at",
    "received_at",
    "payload",
    "source",
)
PROCESSING_FIELDS = (
    "event_id",
    "organization_id",
    "status",
    "attempts",
    "enqueued_at",
    "processed_at",
    "last_error",
)


class OrmStorage:
    """Portable storage through the ORM (SQLite, and any database without a fast path)."""

    @staticmethod
    def lookup(organization, client_refs, keys, deliverable_refs):
        """(client pk by reference, (event id, digest) by idempotency key,
        (deliverable pk, client pk) by reference), for the references given."""
        clients = dict(
            Client.objects.filter(organization=organization, client_id__in=client_refs).values_list(
                "client_id", "pk"
            )
        )
        existing = {
            key: (event_id, digest)
            for key, event_id, digest in Event.objects.filter(
                organization=organization, idempotency_key__in=keys
            ).values_list("idempotency_key", "id", "content_digest")
        }
        return clients, existing, OrmStorage.deliverables(organization, deliverable_refs)

    @staticmethod
    def deliverables(organization, refs) -> dict:
        return {
            ref: (pk, client_pk)
            for ref, pk, client_pk in Deliverable.objects.filter(
                organization=organization, deliverable_id__in=refs
            ).values_list("deliverable_id", "pk", "client_id")
        }

    @staticmethod
    def insert(organization, rows: list[tuple], now) -> None:
        Event.objects.bulk_create(
            [Event(**dict(zip(EVENT_FIELDS, row, strict=True))) for row in rows]
        )
        EventProcessing.objects.bulk_create(
            [
                EventProcessing(event_id=row[0], organization=organization, enqueued_at=now)
                for row in rows
            ]
        )


class PostgresStorage:
    """The same operations in SQL on PostgreSQL: one statement for every look-up, and the
    events COPYed in (one INSERT for a single event), with their processing rows.

    The ORM costs more CPU building and compiling a query than PostgreSQL spends running
    it, and bulk_create sends a batch as one huge INSERT that the server parses slowly;
    bench/ingest.py measures both. Every statement names the organization, as the scoped
    ORM managers would make it.
    """

    def __init__(self):
        client, event, deliverable, processing = (
            model._meta.db_table for model in (Client, Event, Deliverable, EventProcessing)
        )
        self.lookup_sql = (
            "SELECT 1, client_id, id, NULL::uuid, NULL::text, NULL::bigint "
            f"FROM {client} WHERE organization_id = %s AND client_id = ANY(%s) "
            "UNION ALL "
            "SELECT 2, idempotency_key, NULL, id, content_digest, NULL "
            f"FROM {event} WHERE organization_id = %s AND idempotency_key = ANY(%s) "
            "UNION ALL "
            "SELECT 3, deliverable_id, id, NULL, NULL, client_id "
            f"FROM {deliverable} WHERE organization_id = %s AND deliverable_id = ANY(%s)"
        )
        self.deliverables_sql = (
            f"SELECT deliverable_id, id, client_id FROM {deliverable} "
            "WHERE organization_id = %s AND deliverable_id = ANY(%s)"
        )
        columns = ", ".join(EVENT_FIELDS)
        processing_columns = ", ".join(PROCESSING_FIELDS)
        placeholders = ", ".join(
            "%s::jsonb" if name == "payload" else "%s" for name in EVENT_FIELDS
        )
        self.insert_one_sql = (
            f"WITH e AS (INSERT INTO {event} ({columns}) VALUES ({placeholders}) RETURNING id) "
            f"INSERT INTO {processing} ({processing_columns}) "
            "SELECT id, %s, %s, 0, %s, NULL, '' FROM e"
        )
        self.copy_sql = f"COPY {event} ({columns}) FROM STDIN"
        self.insert_processing_sql = (
            f"INSERT INTO {processing} ({processing_columns}) "
            "SELECT unnest(%s::uuid[]), %s, %s, 0, %s, NULL, ''"
        )

    @staticmethod
    def usable() -> bool:
        """Whether the models still have exactly the columns this SQL writes."""
        event = {f.column for f in Event._meta.concrete_fields}
        processing = {f.column for f in EventProcessing._meta.concrete_fields}
        return event == set(EVENT_FIELDS) and processing == set(PROCESSING_FIELDS)

    def lookup(self, organization, client_refs, keys, deliverable_refs):
        org = organization.pk
        clients, existing, deliverables = {}, {}, {}
        with connection.cursor() as cursor:
            cursor.execute(
                self.lookup_sql,
                [org, list(client_refs), org, list(keys), org, list(deliverable_refs)],
            )
            for kind, ref, pk, event_id, digest, client_pk in cursor.fetchall():
                if kind == 1:
                    clients[ref] = pk
                elif kind == 2:
                    existing[ref] = (event_id, digest)
                else:
                    deliverables[ref] = (pk, client_pk)
        return clients, existing, deliverables

    def deliverables(self, organization, refs) -> dict:
        with connection.cursor() as cursor:
            cursor.execute(self.deliverables_sql, [organization.pk, list(refs)])
            return {ref: (pk, client_pk) for ref, pk, client_pk in cursor.fetchall()}

    def insert(self, organization, rows: list[tuple], now) -> None:
        pending = ProcessingStatus.PENDING
        with connection.cursor() as cursor:
            if len(rows) == 1:
                values = _with_json_payload(rows[0])
                cursor.execute(self.insert_one_sql, [*values, organization.pk, pending, now])
                return
            started = time.monotonic()
            with connection.wrap_database_errors, cursor.copy(self.copy_sql) as copy:
                for row in rows:
                    copy.write_row(_with_json_payload(row))
            # Django's debug cursor logs the COPY when it opens, before a row is written:
            # give that entry the whole COPY's time (a second entry would count it twice).
            if connection.queries_logged and connection.queries_log:
                entry = connection.queries_log[-1]
                if entry["sql"] == self.copy_sql:
                    entry["time"] = f"{time.monotonic() - started:.3f}"
            cursor.execute(
                self.insert_processing_sql,
                [[row[0] for row in rows], organization.pk, pending, now],
            )


_PAYLOAD = EVENT_FIELDS.index("payload")
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _with_json_payload(row: tuple) -> list:
    values = list(row)
    values[_PAYLOAD] = _dumps(values[_PAYLOAD])
    return values


_postgres_storage: PostgresStorage | None = None


def _storage():
    global _postgres_storage
    if connection.vendor != "postgresql":
        return OrmStorage
    if _postgres_storage is None:
        if not PostgresStorage.usable():
            log.warning("ingest: the event models changed; using the ORM until the SQL follows")
            return OrmStorage
        _postgres_storage = PostgresStorage()
    return _postgres_storage
