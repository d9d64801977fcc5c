"""The two storage back ends of ingestion: the ORM (portable) and SQL with COPY (PostgreSQL).

Both answer the same three operations (look-up, deliverables, insert) for a batch in a fixed
number of statements; ``_storage()`` picks one for the current connection.
"""

import json
import logging
import time

from django.db import connection

from deliveries.models import Client, Deliverable, Event, EventProcessing, ProcessingStatus
from meshline import bulk

log = logging.getLogger(__name__)

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
    "replay_count",
    "replayed_at",
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
            "SELECT id, %s, %s, 0, %s, NULL, '', 0, NULL FROM e"
        )
        self.copy_sql = f"COPY {event} ({columns}) FROM STDIN"
        self.insert_processing_sql = (
            f"INSERT INTO {processing} ({processing_columns}) "
            "SELECT unnest(%s::uuid[]), %s, %s, 0, %s, NULL, '', 0, NULL"
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
            bulk.note_copy_time(self.copy_sql, started)
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
    """The back end for the current connection (PostgreSQL's SQL once checked usable)."""
    global _postgres_storage
    if connection.vendor != "postgresql":
        return OrmStorage
    if _postgres_storage is None:
        if not PostgresStorage.usable():
            log.warning("ingest: the event models changed; using the ORM until the SQL follows")
            return OrmStorage
        _postgres_storage = PostgresStorage()
    return _postgres_storage
