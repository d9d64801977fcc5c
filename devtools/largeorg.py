"""A large organization for measuring the portal: by default 1,000,000 events, 20,000
deliverables, 50,000 tickets and 100,000 gate evaluations over 90 days.

Rows are generated in Python and written with PostgreSQL COPY (minutes with the ORM,
seconds with COPY); on SQLite, bulk_create is used, which is fine for small sizes.
The organization is configured like the demo (roles, rotas, owner map, gates).
"""

import random
import time
from datetime import timedelta

from django.db import connection
from django.utils import timezone
from django_scopes import scope

from deliveries.models import Client, Deliverable, Event, EventProcessing, LifecycleState, Tier
from deliveries.services import throughput
from deliveries.services.ingest import EVENT_FIELDS
from gates.models import Gate, GateEvaluation
from meshline.ids import uuid7
from meshline.models import Role
from meshline.services import create_organization, create_user
from owners.models import OwnerRole, Ticket

EVENT_TYPES = [
    ("intake.received", 2),
    ("scope.accepted", 1),
    ("asset.uploaded", 4),
    ("asset.approved", 2),
    ("page.published", 3),
    ("sitemap.submitted", 2),
    ("search_export.processed", 5),
    ("change.requested", 1),
    ("crm.touch", 2),
]
STATES = LifecycleState.values
DAYS = 90


def _copy(model, fields: list[str], rows) -> int:
    """COPY rows (tuples in ``fields`` order) into the model's table; returns the count."""
    from psycopg.types.json import Jsonb

    table = model._meta.db_table
    columns = [model._meta.get_field(name).column for name in fields]
    json_positions = [
        i
        for i, name in enumerate(fields)
        if model._meta.get_field(name).get_internal_type() == "JSONField"
    ]
    count = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor if hasattr(cursor, "cursor") else cursor
        with raw.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                if json_positions:
                    row = list(row)
                    for i in json_positions:
                        row[i] = Jsonb(row[i])
                copy.write_row(row)
                count += 1
    return count


def _write(model, fields, rows, batch=5000) -> int:
    if connection.vendor == "postgresql":
        return _copy(model, fields, rows)
    count, chunk = 0, []
    for row in rows:
        chunk.append(model(**dict(zip(fields, row, strict=True))))
        if len(chunk) >= batch:
            model.objects.bulk_create(chunk)
            count += len(chunk)
            chunk = []
    model.objects.bulk_create(chunk)
    return count + len(chunk)


def generate(
    slug="large",
    *,
    events=1_000_000,
    deliverables=20_000,
    tickets=50_000,
    evaluations=100_000,
    clients=20,
    seed=7,
    log=print,
) -> dict:
    from devtools.demo import DEMO_PASSWORD, DEMO_USERS
    from devtools.demo import gates as gates_demo
    from devtools.demo import owners as owners_demo

    rng = random.Random(seed)
    started = time.perf_counter()
    organization, _ = create_organization(slug, f"Large organization ({slug})")
    organization.timezone = "Europe/Berlin"  # as the demo: local days, not UTC ones
    organization.save(update_fields=["timezone"])
    users = {
        email: create_user(email, organization, role, DEMO_PASSWORD) for email, role in DEMO_USERS
    }
    create_user(f"viewer@{slug}.example", organization, Role.VIEWER, DEMO_PASSWORD)
    now = timezone.now()
    with scope(organization=organization):
        if Event.objects.filter(organization=organization).exists():
            raise RuntimeError(f"organization '{slug}' already has events; use another --slug")
        owners_demo.configure(organization, users)
        gates_demo.configure(organization, users)
        client_rows = [
            Client(
                organization=organization,
                client_id=f"client-{i:03d}",
                name=f"Client {i:03d}",
                tier=rng.choice(Tier.values),
            )
            for i in range(clients)
        ]
        Client.objects.bulk_create(client_rows)
        client_ids = list(
            Client.objects.filter(organization=organization).values_list("pk", flat=True)
        )
        log(f"clients: {len(client_ids)}")
        _write(
            Deliverable,
            [
                "organization_id",
                "client_id",
                "deliverable_id",
                "type",
                "title",
                "url",
                "state",
                "state_changed_at",
                "last_event_at",
                "created_at",
                "updated_at",
            ],
            (
                (
                    organization.pk,
                    client_ids[i % len(client_ids)],
                    f"D-{i:06d}",
                    rng.choice(["landing_page", "seo_page", "asset", "brief"]),
                    f"Deliverable {i}",
                    f"https://client{i % len(client_ids)}.example/p/{i}",
                    rng.choice(STATES),
                    now - timedelta(days=rng.random() * DAYS),
                    now - timedelta(days=rng.random() * DAYS),
                    now - timedelta(days=DAYS),
                    now,
                )
                for i in range(deliverables)
            ),
        )
        deliverable_rows = list(
            Deliverable.objects.filter(organization=organization).values_list("pk", "client_id")
        )
        log(f"deliverables: {len(deliverable_rows)} ({time.perf_counter() - started:.0f} s)")
        types = [name for name, weight in EVENT_TYPES for _ in range(weight)]
        event_ids = []
        all_event_ids = []  # for the processing rows: reading them back mid-COPY would deadlock

        # Evaluations (and tickets' events) are spread evenly over the events: every
        # ``step``-th event is a candidate, so up to one evaluation per event.
        step = max(1, events // max(1, evaluations))

        def event_rows():
            base = now - timedelta(days=DAYS)
            for i in range(events):
                deliverable_id, client_id = deliverable_rows[rng.randrange(len(deliverable_rows))]
                event_id = uuid7()
                all_event_ids.append(event_id)
                if i % step == 0:
                    event_ids.append((event_id, deliverable_id))
                occurred = base + timedelta(seconds=rng.random() * DAYS * 86400)
                yield (
                    event_id,
                    organization.pk,
                    rng.choice(types),
                    1,
                    client_id,
                    deliverable_id,
                    "",
                    f"large-{i}",
                    "",
                    "tool",
                    "generator",
                    occurred,
                    occurred,
                    {"n": i},
                    "api",
                )

        _write(Event, list(EVENT_FIELDS), event_rows())  # rows in the API's own column order
        log(f"events: {events} ({time.perf_counter() - started:.0f} s)")
        # The trigger counted them as deltas; beat would fold them within a minute.
        throughput.compact(organization)
        _write(
            EventProcessing,
            [
                "event_id",
                "organization_id",
                "status",
                "attempts",
                "enqueued_at",
                "processed_at",
                "last_error",
            ],
            (
                (event_id, organization.pk, "processed", 1, now, now, "")
                for event_id in all_event_ids
            ),
        )
        log(f"processing rows ({time.perf_counter() - started:.0f} s)")
        roles = list(OwnerRole.objects.filter(organization=organization))
        people = [user.pk for user in users.values()]

        def ticket_rows():
            for i in range(tickets):
                opened = now - timedelta(days=rng.random() * DAYS)
                roll = rng.random()
                status = "open" if roll < 0.08 else "acknowledged" if roll < 0.12 else "resolved"
                resolved = (
                    opened + timedelta(hours=rng.random() * 72) if status == "resolved" else None
                )
                deliverable_id, _client = deliverable_rows[rng.randrange(len(deliverable_rows))]
                yield (
                    uuid7(),
                    organization.pk,
                    "gate_failure",
                    f"large:{i}",
                    f"Generated ticket {i}",
                    deliverable_id,
                    rng.choice(["p2", "p3", "p3", "p4"]),
                    status,
                    rng.choice(roles).pk,
                    rng.choice(people),
                    {},
                    {},
                    {"reasons": ["generated"]},
                    opened,
                    opened + timedelta(hours=2),
                    opened + timedelta(hours=8),
                    None,
                    resolved,
                    "",
                    0,
                    None,
                    now,
                )

        _write(
            Ticket,
            [
                "id",
                "organization_id",
                "source",
                "source_key",
                "title",
                "deliverable_id",
                "priority",
                "status",
                "owner_role_id",
                "assignee_id",
                "rule_snapshot",
                "policy_snapshot",
                "context",
                "opened_at",
                "respond_due_at",
                "resolve_due_at",
                "acknowledged_at",
                "resolved_at",
                "closed_note",
                "escalation_level",
                "next_escalation_at",
                "updated_at",
            ],
            ticket_rows(),
        )
        log(f"tickets: {tickets} ({time.perf_counter() - started:.0f} s)")
        gates = list(Gate.objects.filter(organization=organization))
        _write(
            GateEvaluation,
            [
                "id",
                "organization_id",
                "gate_id",
                "event_id",
                "deliverable_id",
                "outcome",
                "mode",
                "reasons",
                "details",
                "billing_flag",
                "duration_ms",
                "evaluated_at",
            ],
            (
                (
                    uuid7(),
                    organization.pk,
                    gates[i % len(gates)].pk,
                    event_id,
                    deliverable_id,
                    "pass" if rng.random() < 0.9 else "fail",
                    "enforce",
                    [],
                    {},
                    False,
                    1.0,
                    now - timedelta(days=rng.random() * DAYS),
                )
                for i, (event_id, deliverable_id) in enumerate(event_ids[:evaluations])
            ),
        )
        log(f"evaluations ({time.perf_counter() - started:.0f} s)")
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return {"organization": organization, "seconds": time.perf_counter() - started}
