#!/usr/bin/env python
"""Flows on the processing path and the breach sweep (issue 14, item 9).

Run from the repository root (see bench/README.md)::

    .venv/bin/python bench/flows.py                     # 100,000 running runs, a few minutes
    .venv/bin/python bench/flows.py --deliverables 1000 # a quicker look (10,000 runs)

It resets a dedicated database (meshline_bench_flows) and works in this process, through the
same task the workers run (``deliveries.process_events``, gates and every processing step
included), its tasks published to a Redis database no worker reads:

1. **Advancement cost.** Two organizations configured alike (a catch-all owner rule), one
   with 10 flows triggered by ``intake.received`` (milestones ``asset.approved`` and
   ``page.published``, outcome ``sitemap.submitted``), one with none. The same stream (an
   intake, an approval and a publish per deliverable) is processed for each, alternating,
   ``--rounds`` times; reported: events/s of each (median), the ratio, and queries per batch.
2. **Breach sweep.** The 10-flow organization gets ``--deliverables`` more intakes, so
   10 x that many runs are running; the sweep runs once with none due (the cost of looking),
   then with ``--due`` of them past due (each breaches and opens its one ticket).
"""

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from support import flush_redis, reset_database  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/meshline_bench_flows"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/10"
BATCH = 200


def setup(database_url: str, broker_url: str):
    """Django on the bench database. Ingest publishes its processing tasks to a broker no
    worker reads (flushed before and after), so processing runs only where it is timed."""
    os.environ["DATABASE_URL"] = database_url
    os.environ["CELERY_BROKER_URL"] = broker_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshline.settings")
    flush_redis(broker_url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)


def organization(slug: str, flows: int):
    from django_scopes import scope

    from deliveries.models import Client, Tier
    from flows.models import Flow
    from meshline.services import create_organization
    from owners.models import OwnerRole, OwnerRule

    org, _ = create_organization(slug, slug.title())
    with scope(organization=org):
        Client.objects.create(organization=org, client_id="acme", name="Acme", tier=Tier.PREMIUM)
        role = OwnerRole.objects.create(organization=org, slug="ops", name="Ops")
        OwnerRule.objects.create(organization=org, owner_role=role, position=1000)
        for n in range(flows):
            Flow.objects.create(
                organization=org,
                slug=f"flow-{n}",
                name=f"Flow {n}",
                trigger_event_type="intake.received",
                milestones=[
                    {"event_type": "asset.approved", "due_minutes": 60 + n, "due_kind": "wall"},
                    {"event_type": "page.published", "due_minutes": 120, "due_kind": "wall"},
                ],
                outcome_event_type="sitemap.submitted",
                due_minutes=600,
                due_kind="wall",
                owner_role=role,
            )
    return org


def stream(prefix: str, count: int, *, steps=("intake", "approved", "published")) -> list[dict]:
    """An intake, an approval and a publish per deliverable, in time order."""
    from django.utils import timezone

    start = timezone.now() - timedelta(minutes=5)
    kinds = {
        "intake": ("intake.received", {"deliverable_type": "landing_page", "title": "Page"}),
        "approved": ("asset.approved", {"asset_id": "hero", "approved_by": "client"}),
        "published": ("page.published", {"url": "https://acme.example/lp/x"}),
    }
    bodies = []
    for offset, step in enumerate(steps):
        event_type, payload = kinds[step]
        for n in range(count):
            ref = f"{prefix}-{n}"
            body = dict(payload)
            if step == "published":
                body["url"] = f"https://acme.example/lp/{ref}"
            bodies.append(
                {
                    "event_type": event_type,
                    "deliverable_id": ref,
                    "client_id": "acme",
                    "idempotency_key": f"{ref}-{step}",
                    "actor": {"role": "bench", "id": "bench"},
                    "occurred_at": (start + timedelta(seconds=offset)).isoformat(),
                    "payload": body,
                }
            )
    return bodies


def process(org, bodies: list[dict]) -> tuple[float, int, int]:
    """Ingest (not timed), then process in batches as a worker does: (seconds, events,
    queries per batch, median)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django_scopes import scope

    from deliveries.models import EventProcessing
    from deliveries.services import ingest_events
    from deliveries.tasks import process_events

    with scope(organization=org):
        ids = []
        for start in range(0, len(bodies), 500):
            results = ingest_events(org, bodies[start : start + 500])
            ids += [r.event_id for r in results if r.event_id]
        EventProcessing.objects.filter(event_id__in=ids).update(status="pending")
    per_batch = []
    began = time.perf_counter()
    for start in range(0, len(ids), BATCH):
        with CaptureQueriesContext(connection) as queries:
            process_events.apply(
                kwargs={"organization_id": org.pk, "event_ids": ids[start : start + BATCH]}
            )
        per_batch.append(len(queries.captured_queries))
    return time.perf_counter() - began, len(ids), int(statistics.median(per_batch))


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for table in ("flows_flowrun", "deliveries_event", "deliveries_deliverable"):
            cursor.execute(f"ANALYZE {table}")


def sweep(org, due: int) -> dict:
    from django.utils import timezone
    from django_scopes import scope

    from flows.models import FlowRun, RunState
    from flows.services import runs

    with scope(organization=org):
        running = FlowRun.objects.filter(organization=org, state=RunState.RUNNING)
        total = running.count()
        began = time.perf_counter()
        none = runs.breach_due_runs(org, now=timezone.now())
        idle = time.perf_counter() - began
        picked = list(running.order_by("pk").values_list("pk", flat=True)[:due])
        FlowRun.objects.filter(pk__in=picked).update(due_at=timezone.now() - timedelta(minutes=1))
        began = time.perf_counter()
        breached = runs.breach_due_runs(org, now=timezone.now())
        busy = time.perf_counter() - began
    return {
        "running": total,
        "idle_found": none,
        "idle_s": idle,
        "breached": breached,
        "busy_s": busy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL)
    parser.add_argument("--stream", type=int, default=400, help="deliverables per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deliverables", type=int, default=10_000, help="for the sweep")
    parser.add_argument("--due", type=int, default=1000)
    parser.add_argument("--force", action="store_true", help="reset even if it looks in use")
    args = parser.parse_args()

    reset_database(args.database_url, args.force)
    setup(args.database_url, args.broker_url)
    plain = organization("bench-no-flows", 0)
    flowing = organization("bench-ten-flows", 10)

    rates = {"none": [], "ten": []}
    queries = {}
    for round_ in range(args.rounds):
        for label, org in (("none", plain), ("ten", flowing)):
            seconds, events, per_batch = process(org, stream(f"r{round_}", args.stream))
            rates[label].append(events / seconds)
            queries[label] = per_batch
    none, ten = statistics.median(rates["none"]), statistics.median(rates["ten"])
    print(f"advancement ({args.rounds} rounds of {3 * args.stream} events, batches of {BATCH}):")
    print(f"  no flows   {none:8.1f} events/s  {queries['none']:4d} queries per batch")
    print(f"  10 flows   {ten:8.1f} events/s  {queries['ten']:4d} queries per batch")
    print(f"  ratio      {ten / none:8.2f} (10 flows / none)")

    began, seconds, events = time.perf_counter(), 0.0, 0
    # In chunks with ANALYZE between them, as autovacuum would keep the statistics: a
    # table that grew 100-fold since its last ANALYZE makes the planner scan flow runs per
    # deliverable (seconds per batch) instead of reading the index.
    for start in range(0, args.deliverables, 1000):
        count = min(1000, args.deliverables - start)
        chunk = stream(f"sweep{start}", count, steps=("intake",))
        took, done, _ = process(flowing, chunk)
        seconds, events = seconds + took, events + done
        analyze()
    print(
        f"setup: {events} intakes started {10 * events} runs in {seconds:.1f} s of "
        f"processing ({time.perf_counter() - began:.1f} s with ingest and ANALYZE)"
    )
    result = sweep(flowing, args.due)
    flush_redis(args.broker_url)
    print(f"breach sweep over {result['running']:,} running runs:")
    print(f"  none due   {result['idle_s'] * 1000:8.1f} ms ({result['idle_found']} breached)")
    print(
        f"  {result['breached']:,} due  {result['busy_s']:8.2f} s "
        f"({result['breached'] / result['busy_s']:.0f} breaches/s, each opening its ticket)"
    )


if __name__ == "__main__":
    main()
