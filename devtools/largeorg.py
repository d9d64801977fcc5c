"""A large organization for measuring the portal: by default 1,000,000 events, 20,000
deliverables, 50,000 tickets and 100,000 gate evaluations over 90 days.

Rows are generated in Python and written with PostgreSQL COPY (minutes with the ORM,
seconds with COPY); on SQLite, bulk_create is used, which is fine for small sizes.
The organization is configured like the demo (roles, rotas, owner map, gates).
"""

import random
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection
from django.utils import timezone
from django_scopes import scope

from deliveries.models import (
    Client,
    Deliverable,
    DeliverableType,
    Event,
    EventProcessing,
    EventSource,
    LifecycleState,
    ProcessingStatus,
    Tier,
)
from deliveries.services import throughput
from deliveries.services.ingest import EVENT_FIELDS, PROCESSING_FIELDS
from gates.models import Gate, GateEvaluation, GateMode, Outcome
from meshline.ids import uuid7
from meshline.models import Role
from meshline.services import create_organization, create_user
from owners.models import OwnerRole, Priority, Ticket, TicketSource, TicketStatus

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


DELIVERABLE_FIELDS = [
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
]
TICKET_FIELDS = [
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
]
EVALUATION_FIELDS = [
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
]
DELIVERABLE_TYPES = [
    DeliverableType.LANDING_PAGE,
    DeliverableType.SEO_PAGE,
    DeliverableType.ASSET,
    DeliverableType.BRIEF,
]
TICKET_PRIORITIES = [Priority.P2, Priority.P3, Priority.P3, Priority.P4]


@dataclass
class _Run:
    """What every step shares: the organization, one seeded random source, one "now"."""

    organization: object
    rng: random.Random
    log: object
    now: object = field(default_factory=timezone.now)
    started: float = field(default_factory=time.perf_counter)
    users: dict = field(default_factory=dict)

    def done(self, what: str) -> None:
        self.log(f"{what} ({time.perf_counter() - self.started:.0f} s)")


def _organization(slug: str, rng, log) -> _Run:
    """The organization with the demo's users (one viewer more), configured like the demo."""
    from devtools.demo import DEMO_PASSWORD, DEMO_USERS

    organization, _ = create_organization(slug, f"Large organization ({slug})")
    organization.timezone = "Europe/Berlin"  # as the demo: local days, not UTC ones
    organization.save(update_fields=["timezone"])
    run = _Run(organization, rng, log)
    run.users = {
        email: create_user(email, organization, role, DEMO_PASSWORD) for email, role in DEMO_USERS
    }
    create_user(f"viewer@{slug}.example", organization, Role.VIEWER, DEMO_PASSWORD)
    return run


def _configure(run: _Run) -> None:
    from devtools.demo import gates as gates_demo
    from devtools.demo import owners as owners_demo

    if Event.objects.filter(organization=run.organization).exists():
        slug = run.organization.slug
        raise RuntimeError(f"organization '{slug}' already has events; use another --slug")
    owners_demo.configure(run.organization, run.users)
    gates_demo.configure(run.organization, run.users)


def _clients(run: _Run, clients: int) -> list[int]:
    Client.objects.bulk_create(
        Client(
            organization=run.organization,
            client_id=f"client-{i:03d}",
            name=f"Client {i:03d}",
            tier=run.rng.choice(Tier.values),
        )
        for i in range(clients)
    )
    client_ids = list(
        Client.objects.filter(organization=run.organization).values_list("pk", flat=True)
    )
    run.log(f"clients: {len(client_ids)}")
    return client_ids


def _deliverables(run: _Run, deliverables: int, client_ids: list[int]) -> list[tuple]:
    """Writes the deliverables; returns (pk, client pk) of each."""
    rng, now = run.rng, run.now
    _write(
        Deliverable,
        DELIVERABLE_FIELDS,
        (
            (
                run.organization.pk,
                client_ids[i % len(client_ids)],
                f"D-{i:06d}",
                rng.choice(DELIVERABLE_TYPES),
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
    rows = list(
        Deliverable.objects.filter(organization=run.organization).values_list("pk", "client_id")
    )
    run.done(f"deliverables: {len(rows)}")
    return rows


def _events(run: _Run, events: int, evaluations: int, deliverable_rows) -> list[tuple]:
    """Writes the events, processed; returns (event id, deliverable pk) of the events that
    get an evaluation, spread evenly: every ``step``-th event, up to one per event."""
    rng, organization = run.rng, run.organization
    types = [name for name, weight in EVENT_TYPES for _ in range(weight)]
    sampled = []
    all_event_ids = []  # for the processing rows: reading them back mid-COPY would deadlock
    step = max(1, events // max(1, evaluations))

    def event_rows():
        base = run.now - timedelta(days=DAYS)
        for i in range(events):
            deliverable_id, client_id = deliverable_rows[rng.randrange(len(deliverable_rows))]
            event_id = uuid7()
            all_event_ids.append(event_id)
            if i % step == 0:
                sampled.append((event_id, deliverable_id))
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
                EventSource.API,
            )

    _write(Event, list(EVENT_FIELDS), event_rows())  # rows in the API's own column order
    run.done(f"events: {events}")
    # The trigger counted them as deltas; beat would fold them within a minute.
    throughput.compact(organization)
    processed = ProcessingStatus.PROCESSED
    _write(
        EventProcessing,
        PROCESSING_FIELDS,
        (
            (event_id, organization.pk, processed, 1, run.now, run.now, "", 0, None)
            for event_id in all_event_ids
        ),
    )
    run.done("processing rows")
    return sampled


def _ticket_status(roll: float) -> str:
    if roll < 0.08:
        return TicketStatus.OPEN
    return TicketStatus.ACKNOWLEDGED if roll < 0.12 else TicketStatus.RESOLVED


def _tickets(run: _Run, tickets: int, deliverable_rows) -> None:
    rng, now = run.rng, run.now
    roles = list(OwnerRole.objects.filter(organization=run.organization))
    people = [user.pk for user in run.users.values()]

    def ticket_rows():
        for i in range(tickets):
            opened = now - timedelta(days=rng.random() * DAYS)
            status = _ticket_status(rng.random())
            resolved = (
                opened + timedelta(hours=rng.random() * 72)
                if status == TicketStatus.RESOLVED
                else None
            )
            deliverable_id, _client = deliverable_rows[rng.randrange(len(deliverable_rows))]
            yield (
                uuid7(),
                run.organization.pk,
                TicketSource.GATE_FAILURE,
                f"large:{i}",
                f"Generated ticket {i}",
                deliverable_id,
                rng.choice(TICKET_PRIORITIES),
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

    _write(Ticket, TICKET_FIELDS, ticket_rows())
    run.done(f"tickets: {tickets}")


def _evaluations(run: _Run, sampled: list[tuple], evaluations: int) -> None:
    rng = run.rng
    gates = list(Gate.objects.filter(organization=run.organization))
    _write(
        GateEvaluation,
        EVALUATION_FIELDS,
        (
            (
                uuid7(),
                run.organization.pk,
                gates[i % len(gates)].pk,
                event_id,
                deliverable_id,
                Outcome.PASS if rng.random() < 0.9 else Outcome.FAIL,
                GateMode.ENFORCE,
                [],
                {},
                False,
                1.0,
                run.now - timedelta(days=rng.random() * DAYS),
            )
            for i, (event_id, deliverable_id) in enumerate(sampled[:evaluations])
        ),
    )
    run.done("evaluations")


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
    """Build the organization step by step; returns it and the seconds it took."""
    run = _organization(slug, random.Random(seed), log)
    with scope(organization=run.organization):
        _configure(run)
        client_ids = _clients(run, clients)
        deliverable_rows = _deliverables(run, deliverables, client_ids)
        sampled = _events(run, events, evaluations, deliverable_rows)
        _tickets(run, tickets, deliverable_rows)
        _evaluations(run, sampled, evaluations)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return {"organization": run.organization, "seconds": time.perf_counter() - run.started}
