"""Processing one event costs the same in an organization with a long history as in a new one.

Two organizations are configured like the demo (every ``demo_configure`` entry: roles and
owner map, gates, billing, flows, a paused outbound subscription). One of them also gets
100,000 earlier events, 100,000 gate evaluations and 10,000 tickets, written with COPY by
``devtools.largeorg`` (the generator behind ``generate_large_org``), all at least two days
old. The same ``page.published`` (it runs every page gate) is then processed in each through
the one entry point, ``process_batch``, with the gate evaluations and notifications it
queues; PostgreSQL must read no more rows of any table for the busy organization than for
the quiet one.

Rows read are this transaction's own counters: ``pg_stat_xact_user_tables`` (rows read by
sequential scans plus rows fetched by index scans) and ``pg_stat_get_xact_tuples_returned``
of each index (index entries read, which catches an index-only scan of the history too).
``pg_stat_user_tables`` would not do: a backend flushes its counters there only when idle
outside a transaction, and the test's transaction never commits. Each measurement runs in a
savepoint that is rolled back, so both see the same tables; otherwise a sequential scan of a
small table would read the rows the previous measurement added.
"""

from contextlib import contextmanager
from datetime import timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django_scopes import scope

from deliveries.models import Client, Event
from deliveries.services import ingest_events
from deliveries.services.processing import process_batch
from devtools import largeorg
from gates.models import GateEvaluation, GateMode, Outcome
from gates.services import strictness
from meshline import extensions

pytestmark = pytest.mark.postgres

HISTORY_EVENTS = 100_000
HISTORY_EVALUATIONS = 100_000
HISTORY_TICKETS = 10_000
# largeorg spreads the history over the 90 days before its "now"; the new events come this
# much later, so windows such as a gate's last 24 hours (strictness) hold none of it. The
# busy day of verdicts inside that window comes after the first comparison (``_busy_day``).
AFTER_HISTORY = timedelta(days=2)
PAGE_GATES_EVALUATED = 3  # jsonld, seo-tags, schema-version; the sitemap gate starts a timer

ROWS_READ = """
SELECT relname, seq_tup_read + coalesce(idx_tup_fetch, 0)
FROM pg_stat_xact_user_tables WHERE schemaname = 'public'
"""
INDEX_ENTRIES_READ = """
SELECT t.relname, sum(pg_stat_get_xact_tuples_returned(i.indexrelid))::bigint
FROM pg_index i
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = t.relnamespace
WHERE n.nspname = 'public'
GROUP BY t.relname
"""

Reads = dict[str, tuple[int, int]]  # table -> (rows read, index entries read)


def _counters() -> Reads:
    """Rows and index entries read per table, so far in this transaction."""
    # The driver's own cursor: the query log's execute wrapper must not see these queries.
    with connection.connection.cursor() as cursor:
        cursor.execute(ROWS_READ)
        rows = dict(cursor.fetchall())
        cursor.execute(INDEX_ENTRIES_READ)
        entries = dict(cursor.fetchall())
    return {table: (rows.get(table, 0), entries.get(table, 0)) for table in rows | entries}


def _difference(after: Reads, before: Reads) -> Reads:
    zero = (0, 0)
    return {
        table: (counts[0] - before.get(table, zero)[0], counts[1] - before.get(table, zero)[1])
        for table, counts in after.items()
        if counts != before.get(table, zero)
    }


class QueryLog:
    """What each query read, so a failure names the query that read the history."""

    def __init__(self):
        self.queries: list[tuple[str, Reads]] = []

    def __call__(self, execute, sql, params, many, context):
        before = _counters()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append((sql, _difference(_counters(), before)))

    def reading(self, table: str) -> list[str]:
        return [f"{read[table]} {sql[:400]}" for sql, read in self.queries if table in read]


def _organization(slug: str, *, events: int, evaluations: int, tickets: int):
    """An organization configured like the demo, with the given history."""
    organization = largeorg.generate(
        slug,
        events=events,
        deliverables=max(1, events // 50),
        tickets=tickets,
        evaluations=evaluations,
        clients=5,
        log=lambda message: None,
    )["organization"]
    with scope(organization=organization):
        users = {m.user.email: m.user for m in organization.memberships.select_related("user")}
        for configure in extensions.demo_configure:
            configure(organization, users)
    return organization


def _page(organization, ref: str, at) -> str:
    """Store a demo-like page.published for a new deliverable; returns the event's id."""
    url = f"https://client0.example/{ref.lower()}"
    html = (
        f"<!doctype html><html><head><title>{ref} launch page</title>"
        f'<meta name="description" content="{ref}: everything about the launch, in detail.">'
        f'<link rel="canonical" href="{url}"></head><body><h1>{ref}</h1></body></html>'
    )
    with scope(organization=organization):
        client = Client.objects.filter(organization=organization).order_by("client_id").first()
        [result] = ingest_events(
            organization,
            [
                {
                    "event_type": "page.published",
                    "deliverable_id": ref,
                    "client_id": client.client_id,
                    "idempotency_key": f"history-{ref}",
                    "actor": {"role": "cms", "id": "wp-publisher"},
                    "occurred_at": at.isoformat(),
                    "payload": {"url": url, "schema_version": 2, "html": html},
                }
            ],
        )
    assert result.status == "accepted", result.errors
    return result.event_id


def _process(organization, event_id, capture, log: QueryLog) -> Reads:
    """Process one event, then the evaluations it queued; what that read, per table."""
    before = _counters()
    # The wrapper outermost: the callbacks (the evaluations) run when ``capture`` exits.
    with connection.execute_wrapper(log), scope(organization=organization), capture(execute=True):
        result = process_batch(organization, [event_id])
    reads = _difference(_counters(), before)
    assert result.processed == 1, result
    with scope(organization=organization):
        evaluated = GateEvaluation.objects.filter(organization=organization, event_id=event_id)
        assert evaluated.count() == PAGE_GATES_EVALUATED
    return reads


@contextmanager
def _rolled_back():
    """Leave the tables as they were, so the next measurement starts from the same rows."""
    savepoint = transaction.savepoint()
    try:
        yield
    finally:
        transaction.savepoint_rollback(savepoint)


def _history_tables(quiet, busy) -> set[str]:
    """Tables holding the history: more rows of the busy organization than of the quiet one.

    Only these are compared. Configuration tables hold as many rows of each organization;
    PostgreSQL may still read a few more of one of them for the busy organization (a hash
    join over its five clients where the quiet one gets an index lookup: the planner's
    statistics differ), which says nothing about the history.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT table_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name = 'organization_id'"
        )
        tenant_tables = [name for (name,) in cursor.fetchall()]
        history = set()
        for table in tenant_tables:
            cursor.execute(
                f"SELECT count(*) FILTER (WHERE organization_id = %s), "
                f'count(*) FILTER (WHERE organization_id = %s) FROM "{table}"',
                [quiet.pk, busy.pk],
            )
            quiet_rows, busy_rows = cursor.fetchone()
            if busy_rows > quiet_rows:
                history.add(table)
    return history


def _compare(quiet, busy, at, capture) -> tuple[dict, dict[str, QueryLog]]:
    """Process the same new page in each organization; the history tables busy read more of."""
    history = _history_tables(quiet, busy)
    logs = {"quiet": QueryLog(), "busy": QueryLog()}
    reads = {}
    for organization in (quiet, busy):
        with _rolled_back():
            event_id = _page(organization, "NEW-1", at)
            reads[organization.slug] = _process(
                organization, event_id, capture, logs[organization.slug]
            )
    more = {}
    for table, busy_reads in reads["busy"].items():
        if table not in history:
            continue
        quiet_reads = reads["quiet"].get(table, (0, 0))
        if busy_reads[0] > quiet_reads[0] or busy_reads[1] > quiet_reads[1]:
            more[table] = {"quiet": quiet_reads, "busy": busy_reads}
    return more, logs


def _explain(more: dict, logs: dict[str, QueryLog]) -> str:
    lines = ["tables read more with history ((rows, index entries) per query):"]
    for table, reads in more.items():
        lines.append(f"{table}: {reads}")
        for slug in ("quiet", "busy"):
            lines += [f"  {slug}: {query}" for query in logs[slug].reading(table)]
    return "\n".join(lines)


def _read_the_clients_events(batch):
    """A processing step that scans history: its clients' events, without a bound."""
    clients = {event.client_id for event in batch.events}
    Event.objects.filter(organization=batch.organization, client__in=clients).count()


def test_processing_an_event_reads_no_more_rows_after_100k_earlier_events(
    db, django_capture_on_commit_callbacks
):
    quiet = _organization("quiet", events=0, evaluations=0, tickets=0)
    busy = _organization(
        "busy", events=HISTORY_EVENTS, evaluations=HISTORY_EVALUATIONS, tickets=HISTORY_TICKETS
    )
    with scope(organization=busy):
        assert Event.objects.filter(organization=busy).count() == HISTORY_EVENTS
        assert GateEvaluation.objects.filter(organization=busy).count() == HISTORY_EVALUATIONS

    later = timezone.now() + AFTER_HISTORY
    with time_machine.travel(later, tick=True):
        # A process's first event fills its caches (the event-type registry, ...) and the
        # first page of a client creates rows later ones reuse: warm both organizations up.
        for organization in (quiet, busy):
            warm_up = _page(organization, "WARM-1", later)
            _process(organization, warm_up, django_capture_on_commit_callbacks, QueryLog())
        # (warm_up is now busy's page: its gates are the ones every new page runs.)

        more, logs = _compare(quiet, busy, later, django_capture_on_commit_callbacks)
        assert more == {}, _explain(more, logs)

        # The comparison can fail: a step reading the client's history is caught.
        with extensions.processing_steps.override("test.history", _read_the_clients_events):
            more, _logs = _compare(quiet, busy, later, django_capture_on_commit_callbacks)
        assert more["deliveries_event"]["busy"][0] >= HISTORY_EVENTS // 5

        # A busy day: the page gates judged RECENT_EVALUATIONS events over the last 23 hours.
        # Over-strictness reads their per-minute counts, not the evaluations.
        _busy_day(busy, warm_up, later)
        more, logs = _compare(quiet, busy, later, django_capture_on_commit_callbacks)
        counted = more.pop("gates_gateverdictcount", {"busy": (0, 0)})["busy"]
        assert more == {}, _explain(more, logs)
        # At most a day of minutes per gate judged, whatever the day's volume.
        assert counted[0] <= PAGE_GATES_EVALUATED * (24 * 60 + 1), counted


RECENT_EVALUATIONS = 30_000


def _busy_day(organization, judged_event_id, now) -> None:
    """RECENT_EVALUATIONS passing verdicts of the gates that judged ``judged_event_id``,
    spread over the 23 hours before ``now``, with their counts, as processing writes them."""
    with scope(organization=organization):
        gate_ids = sorted(
            GateEvaluation.objects.filter(
                organization=organization, event_id=judged_event_id
            ).values_list("gate_id", flat=True)
        )
        events = (
            Event.objects.filter(organization=organization, deliverable__isnull=False)
            .exclude(pk=judged_event_id)
            .exclude(
                Exists(GateEvaluation.objects.filter(event=OuterRef("pk"), gate_id__in=gate_ids))
            )
            .values_list("pk", "deliverable_id")[: RECENT_EVALUATIONS // len(gate_ids) + 1]
        )
        verdicts = [
            GateEvaluation(
                organization=organization,
                gate_id=gate_id,
                event_id=event_id,
                deliverable_id=deliverable_id,
                outcome=Outcome.PASS,
                mode=GateMode.ENFORCE,
                evaluated_at=now - timedelta(minutes=1 + (n * 23 * 60) // RECENT_EVALUATIONS),
            )
            for n, ((event_id, deliverable_id), gate_id) in enumerate(
                (pair, gate_id) for pair in events for gate_id in gate_ids
            )
        ][:RECENT_EVALUATIONS]
        assert len(verdicts) == RECENT_EVALUATIONS
        GateEvaluation.objects.bulk_create(verdicts, batch_size=5_000)
        strictness.count_verdicts(verdicts)
        strictness.compact(organization, now=now)
