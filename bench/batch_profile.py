"""Where a processing batch spends its time: each step of ``process_batch``, timed and profiled.

    .venv/bin/python bench/batch_profile.py                  # 2,000 events, batches of 200
    .venv/bin/python bench/batch_profile.py --events 1000 --top 40
    .venv/bin/python bench/batch_profile.py --statements gates.evaluate   # what it runs

Resets ``meshline_bench_batch_profile`` (PostgreSQL on 127.0.0.1) and configures an
organization as bench/processing.py does (every ``demo_configure`` hook: roles, rotas, the
owner map, the demo's gates, billing, flows, subscriptions). Ingests the ingest bench's
mix in this process (35 % ``page.published`` with a ~2 KB page that runs every page gate;
the processing tasks are published to a Redis database nobody consumes), processes 400
events to warm up, then ``--events`` more through ``processing.process_batch`` in batches
of ``MESHLINE_PROCESSING_BATCH_SIZE``, twice: timed (with each processing step's own
time and statements per batch; ``--statements STEP`` also counts the shapes of the
statements that step ran, numbers and strings masked), then under cProfile. bench/processing.py measures the same work in a real worker
beside ingestion; this says which step to make cheaper.
"""

import cProfile
import os
import pstats
import random
import re
import sys
import time
from collections import Counter, defaultdict, deque
from itertools import islice
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from ingest import make_deliverables, make_event  # noqa: E402
from processing import SETUP  # noqa: E402
from support import flush_redis, fresh_services, profiler_arguments  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/meshline_bench_batch_profile"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"


def main() -> None:
    parser = profiler_arguments(__doc__, DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--statements", metavar="STEP", help="count a step's statement shapes")
    args = parser.parse_args()
    fresh_services(args)
    os.environ.update(
        DATABASE_URL=args.database_url,
        CELERY_BROKER_URL=args.redis_url,
        MESHLINE_LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="meshline.settings",
        MESHLINE_EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    )
    os.environ.pop("CELERY_TASK_ALWAYS_EAGER", None)
    exec(SETUP, {"__name__": "bench_setup"})  # bench/processing.py's setup, in this process

    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django_scopes import scope

    from deliveries.models import EventProcessing
    from deliveries.services import ingest_events, processing
    from meshline import extensions
    from meshline.models import Organization

    organization = Organization.objects.get(slug="bench-processing")
    rng = random.Random(5)
    deliverables = make_deliverables(200)
    size = settings.MESHLINE_PROCESSING_BATCH_SIZE

    def stored(prefix: str, count: int, offset: int) -> list[str]:
        bodies = [make_event(rng, deliverables, f"{prefix}-{i}", offset + i) for i in range(count)]
        ids = []
        with scope(organization=organization):
            for start in range(0, count, 500):
                results = ingest_events(organization, bodies[start : start + 500])
                ids += [r.event_id for r in results if r.event_id]
        return ids

    def process(ids: list[str]) -> None:
        for start in range(0, len(ids), size):
            processing.process_batch(organization, ids[start : start + size])

    process(stored("warm", 400, 0))
    timed, profiled = stored("timed", args.events, 10_000), stored("prof", args.events, 20_000)

    # Each step's own time and statements: the registered steps, wrapped, for the timed run;
    # statements (COPY too) from the debug cursor's log, made long enough to hold them all.
    spent: dict[str, float] = defaultdict(float)
    statements: dict[str, int] = defaultdict(int)
    shapes: Counter = Counter()
    connection.queries_log = deque(maxlen=100 * len(timed))

    def timing(name, step):
        def run(batch):
            began, before = time.perf_counter(), len(connection.queries_log)
            try:
                return step(batch)
            finally:
                spent[name] += time.perf_counter() - began
                ran = list(islice(connection.queries_log, before, None))
                statements[name] += len(ran)
                if name == args.statements:
                    shapes.update(re.sub(r"\d+|'[^']*'", "?", q["sql"])[:150] for q in ran)

        return run

    registered = extensions.processing_steps
    extensions.processing_steps = [timing(e.name, e.value) for e in registered.entries()]
    try:
        began = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            process(timed)
        elapsed = time.perf_counter() - began
    finally:
        extensions.processing_steps = registered
    with scope(organization=organization):
        left = EventProcessing.objects.filter(event_id__in=timed, status="pending").count()
    batches = -(-len(timed) // size)
    total = len(queries.captured_queries)
    print(
        f"{len(timed)} events in batches of {size}: {elapsed:.2f} s, "
        f"{len(timed) / elapsed:,.0f} events/s, {total / len(timed):.2f} "
        f"statements per event ({left} left pending)"
    )
    print("time per step (of the whole), statements per batch:")
    outside = "claim, lock, lifecycles, mark processed, commit"
    spent[outside] = elapsed - sum(spent.values())
    statements[outside] = total - sum(statements.values())
    for name, seconds in sorted(spent.items(), key=lambda item: -item[1]):
        print(
            f"  {seconds:7.2f} s  {seconds / elapsed:5.1%}  {statements[name] / batches:6.1f}  "
            f"{name}"
        )
    if args.statements:
        print(f"what {args.statements} ran, per batch:")
        for shape, count in shapes.most_common(30):
            print(f"  {count / batches:6.1f}  {shape}")

    profiler = cProfile.Profile()
    profiler.enable()
    process(profiled)
    profiler.disable()
    stats = pstats.Stats(profiler)
    if args.top:
        stats.sort_stats("cumulative").print_stats(args.top)
    else:
        stats.sort_stats("tottime").print_stats(25)
    flush_redis(args.redis_url)


if __name__ == "__main__":
    main()
