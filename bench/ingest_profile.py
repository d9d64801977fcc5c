"""Where one single-event POST spends its time: cProfile of requests in this process.

    .venv/bin/python bench/ingest_profile.py                 # 500 timed, 500 profiled
    .venv/bin/python bench/ingest_profile.py --requests 200 --top 40

Resets ``meshline_bench_ingest_profile`` (PostgreSQL on 127.0.0.1), creates the ingest
bench's organization and key (``ingest.setup_tenant``), warms up with 300 requests, then
sends ``--requests`` of the ingest bench's mixed single events through Django's test
client (no HTTP server, no worker: the processing task is published to Redis and left
there) twice: timed, then under cProfile. Prints ms per request, the statements of one
request, and the functions that matter per request (cumulative ms). bench/ingest.py
measures the same path over HTTP with concurrency; this says what to make cheaper.
"""

import cProfile
import json
import os
import pstats
import random
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from ingest import make_deliverables, make_event, setup_tenant  # noqa: E402
from support import flush_redis, fresh_services, profiler_arguments  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/meshline_bench_ingest_profile"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
# What a single event's request goes through, by function name, in the order it runs.
STAGES = [
    ("meshline/api.py", "initial", "DRF initial (authentication, throttles)"),
    ("meshline/auth.py", "find_api_key", "  the API key's look-up"),
    ("deliveries/services/ingest/__init__.py", "ingest_events", "ingest_events"),
    ("deliveries/services/ingest/envelope.py", "validate_envelope", "  envelope validation"),
    ("deliveries/services/ingest/storage.py", "lookup", "  look-up (clients, keys, deliverables)"),
    ("deliveries/services/ingest/storage.py", "insert", "  INSERT of the event and its row"),
    ("deliveries/services/processing.py", "dispatch_events", "  dispatch after commit"),
    ("meshline/celery.py", "publish", "    publishing a task"),
]


def main() -> None:
    parser = profiler_arguments(__doc__, DEFAULT_DATABASE_URL, DEFAULT_REDIS_URL)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    fresh_services(args)
    os.environ["CELERY_BROKER_URL"] = args.redis_url
    os.environ["MESHLINE_API_RATE"] = "100000000/day"
    os.environ["MESHLINE_LOG_LEVEL"] = "WARNING"
    tenant = setup_tenant(args.database_url)

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Api-Key {tenant['api_key']}")
    rng = random.Random(3)
    deliverables = make_deliverables()
    bodies = iter(
        json.dumps(make_event(rng, deliverables, f"profile-{i}", i))
        for i in range(301 + 2 * args.requests)
    )

    def post() -> None:
        response = client.post("/api/v1/events", next(bodies), content_type="application/json")
        if response.status_code not in (200, 202):
            sys.exit(f"refused: {response.status_code} {response.content[:300]!r}")

    for _ in range(300):
        post()
    started = time.perf_counter()
    for _ in range(args.requests):
        post()
    elapsed = time.perf_counter() - started
    print(
        f"{args.requests} requests in {elapsed:.2f} s: {elapsed / args.requests * 1000:.2f} ms each"
    )
    with CaptureQueriesContext(connection) as captured:
        post()
    print("statements of one request:")
    for query in captured.captured_queries:
        print(f"  {query['time']} s  {query['sql'][:100]}")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(args.requests):
        post()
    profiler.disable()
    stats = pstats.Stats(profiler)
    total = sum(row[2] for row in stats.stats.values()) / args.requests * 1000
    print(
        f"under cProfile ({total:.2f} ms of own time per request in all), cumulative per request:"
    )
    for path, name, label in STAGES:
        spent = sum(
            row[3]
            for (filename, _line, function), row in stats.stats.items()
            if function == name and filename.endswith(path)
        )
        print(f"  {spent / args.requests * 1000:6.2f} ms  {label}")
    if args.top:
        stats.sort_stats("cumulative").print_stats(args.top)
    flush_redis(args.redis_url)


if __name__ == "__main__":
    main()
