#!/usr/bin/env python
"""Ingest benchmark: gunicorn + PostgreSQL on this machine, against psycopg COPY.

Run from the repository root (see bench/README.md)::

    .venv/bin/python bench/ingest.py            # full run, a few minutes
    .venv/bin/python bench/ingest.py --quick    # smoke run, well under a minute

It resets a dedicated database (meshline_bench), migrates it, creates an organization, two
clients and an API key, starts gunicorn on a free 127.0.0.1 port and measures:

1. single-event POSTs, 16 concurrent keep-alive clients (closed loop): events/s, latency;
2. single-event POSTs paced at 100 requests/s (open loop; latency counted from each
   request's scheduled send time, so a stall is not hidden by the client waiting);
3. batches of 500 events, a few concurrent clients: events/s and per-request latency;
4. the same shape of rows COPYed straight into deliveries_event and
   deliveries_eventprocessing with psycopg: rows/s.

and prints the table with the issue's floors: batched ingest >= 10 % of COPY, single-event
p99 < 50 ms at 100 requests/s. Only 127.0.0.1 is contacted. Gunicorn is stopped and the
Redis database used as broker is flushed at the end; the bench database is kept for
inspection (it is reset by the next run).
"""

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from support import Connection, Gunicorn, flush_redis, reset_database  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/meshline_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
EVENTS_PATH = "/api/v1/events"
CLIENTS = ("acme", "globex")
P99_FLOOR_MS = 50.0
RATIO_FLOOR = 0.10


# --- payloads ---------------------------------------------------------------------------------

WORDS = [
    "spring",
    "launch",
    "conversion",
    "landing",
    "page",
    "campaign",
    "audience",
    "brand",
    "creative",
    "hero",
    "banner",
    "offer",
    "pricing",
    "trial",
    "onboarding",
    "analytics",
    "search",
    "ranking",
    "content",
    "editorial",
    "review",
    "approval",
    "publish",
    "sitemap",
    "canonical",
    "metadata",
    "schema",
    "product",
    "feature",
    "customer",
    "story",
]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def page_html(rng: random.Random, url: str, title: str, size: int = 2048) -> str:
    """A realistic landing page of about ``size`` bytes: head tags, JSON-LD, copy."""
    ld = json.dumps(
        {
            "@context": "https://schema.org",
            "@type": "WebPage",
            "name": title,
            "url": url,
            "publisher": {"@type": "Organization", "name": "Acme"},
        }
    )
    head = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title>"
        f'<meta name="description" content="{_sentence(rng, 18)}">'
        f'<link rel="canonical" href="{url}">'
        f'<meta property="og:title" content="{title}">'
        f'<meta property="og:url" content="{url}">'
        f'<script type="application/ld+json">{ld}</script></head>'
        f'<body><header><nav><a href="/">Home</a> <a href="/pricing">Pricing</a></nav></header>'
        f"<main><h1>{title}</h1>"
    )
    tail = "</main><footer>&copy; 2026 Acme Inc.</footer></body></html>"
    body = []
    length = len(head) + len(tail)
    while length < size:
        paragraph = f"<p>{_sentence(rng, 14)}</p>"
        body.append(paragraph)
        length += len(paragraph)
    return head + "".join(body) + tail


@dataclass
class Deliverables:
    pages: list[tuple[str, str]]  # (deliverable_id, client_id)
    assets: list[tuple[str, str]]


def make_deliverables(count: int = 200) -> Deliverables:
    half = count // 2
    return Deliverables(
        pages=[(f"LP-{i:04d}", CLIENTS[i % 2]) for i in range(half)],
        assets=[(f"AS-{i:04d}", CLIENTS[i % 2]) for i in range(half)],
    )


# (event type, weight): a delivery stream is mostly page and asset traffic.
MIX = [
    ("page.published", 35),
    ("asset.uploaded", 25),
    ("asset.approved", 10),
    ("intake.received", 8),
    ("search_export.processed", 10),
    ("change.requested", 7),
    ("sitemap.submitted", 5),
]


def make_event(rng: random.Random, deliverables: Deliverables, key: str, seq: int) -> dict:
    event_type = rng.choices([t for t, _ in MIX], weights=[w for _, w in MIX])[0]
    occurred = datetime(2026, 11, 21, 10, 0, tzinfo=UTC) + timedelta(seconds=seq)
    if event_type.startswith("asset."):
        deliverable_id, client_id = rng.choice(deliverables.assets)
    else:
        deliverable_id, client_id = rng.choice(deliverables.pages)
    url = f"https://{client_id}.example/lp/{deliverable_id.lower()}"
    if event_type == "page.published":
        title = f"{_sentence(rng, 5)[:-1]} ({seq})"
        payload = {"url": url, "title": title, "html": page_html(rng, url, title)}
        actor = {"role": "cms", "id": "wp-publisher"}
    elif event_type == "asset.uploaded":
        payload = {
            "asset_id": f"dam-{seq}",
            "filename": f"{deliverable_id.lower()}-hero-{seq}.jpg",
            "size_bytes": rng.randint(40_000, 9_000_000),
            "mime_type": "image/jpeg",
            "revision": rng.randint(0, 4),
        }
        actor = {"role": "dam", "id": "bynder"}
    elif event_type == "asset.approved":
        payload = {"asset_id": f"dam-{seq}", "approved_by": "creative.director@acme.example"}
        actor = {"role": "dam", "id": "bynder"}
    elif event_type == "intake.received":
        payload = {
            "requested_by": "marketing@acme.example",
            "due_date": "2026-12-01",
            "title": _sentence(rng, 6),
        }
        actor = {"role": "pm", "id": "asana"}
    elif event_type == "search_export.processed":
        payload = {
            "date": occurred.date().isoformat(),
            "impressions": rng.randint(0, 50_000),
            "clicks": rng.randint(0, 2_000),
        }
        actor = {"role": "seo", "id": "gsc-export"}
    elif event_type == "change.requested":
        payload = {"summary": _sentence(rng, 40), "requested_by": "client@acme.example"}
        actor = {"role": "pm", "id": "asana"}
    else:  # sitemap.submitted
        payload = {
            "sitemap_url": f"https://{client_id}.example/sitemap.xml",
            "urls": [f"https://{client_id}.example/lp/lp-{i:04d}" for i in range(20)],
        }
        actor = {"role": "seo", "id": "sitemap-bot"}
    return {
        "event_type": event_type,
        "deliverable_id": deliverable_id,
        "client_id": client_id,
        "correlation_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "idempotency_key": key,
        "actor": actor,
        "occurred_at": occurred.isoformat().replace("+00:00", "Z"),
        "payload": payload,
    }


def encode(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


# --- setup ------------------------------------------------------------------------------------


def setup_tenant(url: str) -> dict:
    """Migrate the bench database; create the organization, its clients and an API key."""
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "meshline.settings"
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections
    from django_scopes import scope

    from deliveries.models import Client, Tier
    from meshline.models import ApiKey
    from meshline.services import create_organization

    call_command("migrate", interactive=False, verbosity=0)
    organization, _ = create_organization("bench-agency", "Bench Agency")
    with scope(organization=organization):
        clients = {
            ref: Client.objects.create(
                organization=organization, client_id=ref, name=ref.title(), tier=Tier.PREMIUM
            ).pk
            for ref in CLIENTS
        }
        _, plaintext = ApiKey.generate(organization, "bench")
    connections.close_all()
    return {"organization_id": organization.pk, "clients": clients, "api_key": plaintext}


def database_sessions(conninfo: str) -> int:
    """Sessions ever opened on the bench database (pg_stat_database.sessions)."""
    import psycopg

    with psycopg.connect(conninfo, autocommit=True) as conn:
        return conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()[0]


# --- load generation --------------------------------------------------------------------------


@dataclass
class Sample:
    name: str
    requests: int
    events: int
    seconds: float
    latencies: list[float]  # seconds
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
        return ordered[index] * 1000


def _run_threads(target, count: int) -> float:
    """Run ``count`` threads of ``target`` from one start; the seconds until all ended.
    A thread's exception ends the run: a phase half of whose work failed has no rate."""
    start = threading.Barrier(count + 1)
    errors: list[BaseException] = []

    def guarded(barrier):
        try:
            target(barrier)
        except BaseException as exc:
            errors.append(exc)
            raise

    threads = [threading.Thread(target=guarded, args=(start,), daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join(timeout=600)
    if errors:
        raise RuntimeError(f"{len(errors)} of {count} threads failed") from errors[0]
    return time.perf_counter() - began


def closed_loop(
    name: str, port: int, api_key: str, bodies: list[bytes], concurrency: int, check
) -> Sample:
    """Each client sends its next request as soon as the previous answer arrived."""
    latencies: list[float] = [0.0] * len(bodies)
    statuses: dict[int, int] = {}
    failures: list[str] = []
    events = [0]
    lock = threading.Lock()
    queue = iter(range(len(bodies)))

    def client(start: threading.Barrier) -> None:
        conn = Connection(port, api_key)
        start.wait()
        while True:
            with lock:
                index = next(queue, None)
            if index is None:
                break
            began = time.perf_counter()
            try:
                status, data = conn.post(bodies[index])
            except Exception as exc:
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies[index] = time.perf_counter() - began
            accepted, problem = check(status, data)
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                events[0] += accepted
                if problem and len(failures) < 20:
                    failures.append(problem)
        conn.close()

    seconds = _run_threads(client, concurrency)
    return Sample(name, len(bodies), events[0], seconds, latencies, statuses, failures)


def open_loop(
    name: str, port: int, api_key: str, bodies: list[bytes], rate: float, senders: int, check
) -> Sample:
    """Requests scheduled at a fixed rate; latency counts from the scheduled send time."""
    latencies: list[float] = [0.0] * len(bodies)
    statuses: dict[int, int] = {}
    failures: list[str] = []
    events = [0]
    lock = threading.Lock()
    queue = iter(range(len(bodies)))
    t0 = [0.0]

    def sender(start: threading.Barrier) -> None:
        conn = Connection(port, api_key)
        start.wait()
        while True:
            with lock:
                index = next(queue, None)
            if index is None:
                break
            due = t0[0] + index / rate
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            try:
                status, data = conn.post(bodies[index])
            except Exception as exc:
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies[index] = time.perf_counter() - due
            accepted, problem = check(status, data)
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                events[0] += accepted
                if problem and len(failures) < 20:
                    failures.append(problem)
        conn.close()

    t0[0] = time.perf_counter() + 0.3  # after the threads have connected
    seconds = _run_threads(sender, senders) - 0.3
    return Sample(name, len(bodies), events[0], seconds, latencies, statuses, failures)


def check_single(status: int, data: bytes) -> tuple[int, str | None]:
    if status == 202:
        return 1, None
    return 0, f"single event answered {status}: {data[:300]!r}"


def check_batch(size: int):
    def check(status: int, data: bytes) -> tuple[int, str | None]:
        if status != 200:
            return 0, f"batch answered {status}: {data[:300]!r}"
        accepted = json.loads(data)["accepted"]
        return accepted, None if accepted == size else f"batch accepted {accepted}/{size}"

    return check


# --- COPY baseline ----------------------------------------------------------------------------


def copy_rows(tenant: dict, deliverable_pks: dict, events: list[dict]) -> list[tuple]:
    """The rows the API would store for these events, ready for COPY (built before timing)."""
    from meshline.ids import uuid7

    now = datetime.now(UTC)
    rows = []
    for event in events:
        payload = json.dumps(event["payload"], separators=(",", ":"), ensure_ascii=False)
        rows.append(
            (
                uuid7(),
                tenant["organization_id"],
                event["event_type"],
                1,
                tenant["clients"][event["client_id"]],
                deliverable_pks[event["deliverable_id"]],
                event["correlation_id"],
                event["idempotency_key"],
                hashlib.sha256(payload.encode()).hexdigest(),
                event["actor"]["role"],
                event["actor"]["id"],
                datetime.fromisoformat(event["occurred_at"]),
                now,
                payload,
                "api",
            )
        )
    return rows


def copy_phase(
    name: str, conninfo: str, rows: list[tuple], organization_id: int, chunk: int, concurrency: int
) -> Sample:
    """COPY rows into deliveries_event and deliveries_eventprocessing, one transaction per
    ``chunk`` rows, from ``concurrency`` connections."""
    import psycopg

    # The very columns (and order) the API's own COPY writes.
    from deliveries.services.ingest import EVENT_FIELDS, PROCESSING_FIELDS

    events_sql = f"COPY deliveries_event ({', '.join(EVENT_FIELDS)}) FROM STDIN"
    processing_sql = f"COPY deliveries_eventprocessing ({', '.join(PROCESSING_FIELDS)}) FROM STDIN"
    chunks = [rows[i : i + chunk] for i in range(0, len(rows), chunk)]
    pending = {
        "organization_id": organization_id,
        "status": "pending",
        "attempts": 0,
        "processed_at": None,
        "last_error": "",
        "replay_count": 0,
        "replayed_at": None,
    }
    latencies = [0.0] * len(chunks)
    lock = threading.Lock()
    queue = iter(range(len(chunks)))

    def copier(start: threading.Barrier) -> None:
        with psycopg.connect(conninfo) as conn:
            start.wait()
            while True:
                with lock:
                    index = next(queue, None)
                if index is None:
                    break
                began = time.perf_counter()
                with conn.transaction(), conn.cursor() as cur:
                    now = datetime.now(UTC)
                    with cur.copy(events_sql) as copy:
                        for row in chunks[index]:
                            copy.write_row(row)
                    with cur.copy(processing_sql) as copy:
                        for row in chunks[index]:
                            # By name: a column added to EventProcessing is a KeyError
                            # here, not a COPY that fails in a thread.
                            values = {**pending, "event_id": row[0], "enqueued_at": now}
                            copy.write_row([values[name] for name in PROCESSING_FIELDS])
                latencies[index] = time.perf_counter() - began

    seconds = _run_threads(copier, concurrency)
    return Sample(name, len(chunks), len(rows), seconds, latencies)


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Plan:
    single_requests: int
    single_runs: int
    paced_seconds: float
    batches: int
    batch_runs: int
    copy_runs: int


FULL = Plan(
    single_requests=3000, single_runs=3, paced_seconds=15, batches=40, batch_runs=3, copy_runs=3
)
QUICK = Plan(
    single_requests=400, single_runs=1, paced_seconds=4, batches=8, batch_runs=1, copy_runs=1
)


def median(values):
    return statistics.median(values)


def summarize(samples: list[Sample]) -> dict:
    return {
        "runs": len(samples),
        "requests": samples[0].requests,
        "events": samples[0].events,
        "events_per_s": median([s.events_per_s for s in samples]),
        "requests_per_s": median([s.requests / s.seconds for s in samples]),
        "p50_ms": median([s.pct(50) for s in samples]),
        "p95_ms": median([s.pct(95) for s in samples]),
        "p99_ms": median([s.pct(99) for s in samples]),
        "max_ms": median([max(s.latencies) * 1000 for s in samples]),
        "per_run_events_per_s": [round(s.events_per_s, 1) for s in samples],
        "per_run_p99_ms": [round(s.pct(99), 2) for s in samples],
    }


def report_failures(samples: list[Sample]) -> bool:
    ok = True
    for sample in samples:
        if sample.failures:
            ok = False
            print(
                f"  ! {sample.name}: {len(sample.failures)} problem(s), e.g. {sample.failures[0]}"
            )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    parser.add_argument("--worker-class", default="sync", choices=["sync", "gthread"])
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker")
    parser.add_argument("--concurrency", type=int, default=16, help="single-event clients")
    parser.add_argument("--rate", type=float, default=100.0, help="paced requests per second")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--batch-concurrency", type=int, default=4)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--force", action="store_true", help="reset a database without 'bench'")
    args = parser.parse_args()
    plan = QUICK if args.quick else FULL
    run_id = uuid.uuid4().hex[:8]
    rng = random.Random(20261121)
    started = time.perf_counter()

    print(f"meshline ingest benchmark ({'quick' if args.quick else 'full'} run {run_id})")
    print(f"  resetting {urlparse(args.database_url).path.lstrip('/')} and migrating ...")
    reset_database(args.database_url, args.force)
    tenant = setup_tenant(args.database_url)
    flush_redis(args.redis_url)
    deliverables = make_deliverables()

    # Every request body is built and encoded before the clock starts.
    seq = iter(range(10**9))

    def events(prefix: str, n: int) -> list[dict]:
        return [make_event(rng, deliverables, f"{prefix}-{i}", next(seq)) for i in range(n)]

    single_sets = [
        [encode(e) for e in events(f"bench-{run_id}-single{r}", plan.single_requests)]
        for r in range(plan.single_runs)
    ]
    paced_bodies = [
        encode(e) for e in events(f"bench-{run_id}-paced", int(args.rate * plan.paced_seconds))
    ]
    batch_events = [
        events(f"bench-{run_id}-batch{r}", plan.batches * args.batch_size)
        for r in range(plan.batch_runs)
    ]
    batch_sets = [
        [
            encode({"events": evs[i : i + args.batch_size]})
            for i in range(0, len(evs), args.batch_size)
        ]
        for evs in batch_events
    ]
    copy_events = [events(f"copy-{run_id}-{r}", len(batch_events[0])) for r in range(2)]
    average = statistics.mean(len(b) for b in single_sets[0])
    print(
        f"  {sum(map(len, single_sets)) + len(paced_bodies) + sum(map(len, batch_events))} "
        f"API events prepared, {average / 1024:.1f} KiB per single-event body on average"
    )

    server = Gunicorn(
        args.database_url, args.redis_url, args.workers, args.worker_class, args.threads
    )
    print(
        f"  starting gunicorn ({args.workers} {args.worker_class} workers"
        + (f" x {args.threads} threads" if args.worker_class == "gthread" else "")
        + f") on 127.0.0.1:{server.port} ..."
    )
    conninfo = args.database_url.replace("postgres://", "postgresql://", 1)
    sessions_before = database_sessions(conninfo)
    server.start()
    served_since = time.perf_counter()
    results: dict = {}
    ok = True
    try:
        # Warm up: every deliverable gets its first event (so later phases do not pay for
        # creating them), and every worker compiles its schemas and opens its connection.
        seed = [
            {
                **make_event(rng, deliverables, f"bench-{run_id}-seed-{ref}", next(seq)),
                "event_type": "intake.received",
                "deliverable_id": ref,
                "client_id": client,
                "payload": {"title": f"Seed {ref}"},
            }
            for ref, client in deliverables.pages + deliverables.assets
        ]
        closed_loop(
            "seed",
            server.port,
            tenant["api_key"],
            [encode({"events": seed})],
            1,
            check_batch(len(seed)),
        )
        warm = closed_loop(
            "warm-up",
            server.port,
            tenant["api_key"],
            [encode(e) for e in events(f"bench-{run_id}-warm", 20 * args.workers)],
            args.concurrency,
            check_single,
        )
        ok &= report_failures([warm])

        print(f"  single events, {args.concurrency} concurrent ...")
        singles = [
            closed_loop(
                f"single {r}", server.port, tenant["api_key"], b, args.concurrency, check_single
            )
            for r, b in enumerate(single_sets)
        ]
        ok &= report_failures(singles)
        results["single"] = summarize(singles)

        print(f"  single events paced at {args.rate:g}/s for {plan.paced_seconds:g} s ...")
        paced = open_loop(
            "paced",
            server.port,
            tenant["api_key"],
            paced_bodies,
            args.rate,
            args.concurrency,
            check_single,
        )
        ok &= report_failures([paced])
        results["paced"] = summarize([paced])

        print(f"  batches of {args.batch_size}, {args.batch_concurrency} concurrent ...")
        batches = [
            closed_loop(
                f"batch {r}",
                server.port,
                tenant["api_key"],
                b,
                args.batch_concurrency,
                check_batch(args.batch_size),
            )
            for r, b in enumerate(batch_sets)
        ]
        ok &= report_failures(batches)
        results["batch"] = summarize(batches)
    finally:
        server.stop()
        served_for = time.perf_counter() - served_since
        time.sleep(0.5)  # the sessions of the stopped workers end and report their stats
        # Less the session that read the counter before.
        opened = database_sessions(conninfo) - sessions_before - 1
        errors = server.errors().strip()
        if errors:
            print("  gunicorn said:\n    " + "\n    ".join(errors.splitlines()[-15:]))

    print("  COPY baseline ...")
    import psycopg

    with psycopg.connect(conninfo) as conn:
        deliverable_pks = dict(
            conn.execute(
                "SELECT deliverable_id, id FROM deliveries_deliverable WHERE organization_id = %s",
                [tenant["organization_id"]],
            ).fetchall()
        )
    copy_variants = {
        "copy_one_txn": ("COPY, 1 connection, 1 transaction", len(batch_events[0]), 1),
        "copy_batched": (
            f"COPY, {args.batch_concurrency} connections, {args.batch_size}-row transactions",
            args.batch_size,
            args.batch_concurrency,
        ),
    }
    for key, (label, chunk, concurrency) in copy_variants.items():
        samples = []
        for r in range(plan.copy_runs):
            prepared = copy_events[0] if key == "copy_one_txn" else copy_events[1]
            prepared = [
                {**e, "idempotency_key": f"{e['idempotency_key']}-{key}-{r}"} for e in prepared
            ]
            rows = copy_rows(tenant, deliverable_pks, prepared)
            samples.append(
                copy_phase(label, conninfo, rows, tenant["organization_id"], chunk, concurrency)
            )
        results[key] = summarize(samples)
        results[key]["label"] = label

    # Everything the API accepted is really there, each event with its processing row.
    with psycopg.connect(conninfo) as conn:
        stored, pending = conn.execute(
            "SELECT count(*), count(p.event_id) FROM deliveries_event e "
            "LEFT JOIN deliveries_eventprocessing p ON p.event_id = e.id "
            "WHERE e.organization_id = %s AND e.idempotency_key LIKE %s",
            [tenant["organization_id"], f"bench-{run_id}-%"],
        ).fetchone()
        server_version = conn.execute("SHOW server_version").fetchone()[0]
        key_writes = conn.execute(
            "SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'meshline_apikey'"
        ).fetchone()[0]
        sync_commit = conn.execute("SHOW synchronous_commit").fetchone()[0]
    accepted = (
        len(seed)
        + warm.events
        + sum(s.events for s in singles)
        + paced.events
        + sum(s.events for s in batches)
    )
    if stored != accepted or pending != stored:
        ok = False
        print(
            f"  ! accepted {accepted} events but found {stored} stored, {pending} with processing"
        )
    flush_redis(args.redis_url)

    # --- the table ------------------------------------------------------------------------
    best_copy = max(
        results["copy_one_txn"]["events_per_s"], results["copy_batched"]["events_per_s"]
    )
    ratio = results["batch"]["events_per_s"] / best_copy
    paced_p99 = results["paced"]["p99_ms"]
    results["ratio_batch_to_copy"] = ratio
    requests = (1 + warm.requests + sum(s.requests for s in singles) + paced.requests) + sum(
        s.requests for s in batches
    )
    results["server_sessions"] = {"opened": opened, "requests": requests, "seconds": served_for}
    results["api_key_writes"] = key_writes
    results["config"] = {
        "cores": os.cpu_count(),
        "workers": args.workers,
        "worker_class": args.worker_class,
        "threads": args.threads if args.worker_class == "gthread" else 1,
        "postgres": server_version,
        "synchronous_commit": sync_commit,
        "quick": args.quick,
    }
    single, batch = results["single"], results["batch"]
    rows = [
        (
            f"single event, {args.concurrency} concurrent",
            f"{single['requests']} x {single['runs']}",
            single["events_per_s"],
            single,
        ),
        (
            f"single event, paced {args.rate:g}/s, {plan.paced_seconds:g} s",
            f"{results['paced']['requests']} x 1",
            results["paced"]["events_per_s"],
            results["paced"],
        ),
        (
            f"batch of {args.batch_size}, {args.batch_concurrency} concurrent",
            f"{plan.batches} x {batch['runs']}",
            batch["events_per_s"],
            batch,
        ),
    ]
    for key in ("copy_one_txn", "copy_batched"):
        r = results[key]
        rows.append((r["label"], f"{r['events']} x {r['runs']}", r["events_per_s"], r))

    print()
    print(
        f"Meshline ingest: gunicorn {args.workers} {args.worker_class} workers, "
        f"{os.cpu_count()} cores, PostgreSQL {server_version} "
        f"(synchronous_commit={sync_commit}); medians of the runs; latency per request"
    )
    header = f"{'scenario':<44} {'requests x runs':>15} {'events/s':>10} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}"
    print(header)
    print("-" * len(header))
    for label, count, rate, r in rows:
        print(
            f"{label:<44} {count:>15} {rate:>10.0f} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['p99_ms']:>8.1f}"
        )
    print("-" * len(header))
    ratio_ok = ratio >= RATIO_FLOOR
    p99_ok = paced_p99 < P99_FLOOR_MS
    print(
        f"batched API / best COPY: {ratio * 100:.1f} %  (floor >= {RATIO_FLOOR * 100:.0f} %)  "
        f"{'MET' if ratio_ok else 'NOT MET'}"
    )
    print(
        f"single-event p99 at {args.rate:g}/s: {paced_p99:.1f} ms  (floor < {P99_FLOOR_MS:.0f} ms)  "
        f"{'MET' if p99_ok else 'NOT MET'}"
    )
    print(
        f"per run: single events/s {single['per_run_events_per_s']}, p99 ms {single['per_run_p99_ms']}; "
        f"batch events/s {batch['per_run_events_per_s']}"
    )
    print(
        f"server: {opened} database sessions opened for {requests} requests in "
        f"{served_for:.0f} s (persistent connections, renewed after CONN_MAX_AGE); "
        f"{key_writes} last_used_at writes to the API key"
    )
    print(
        f"checked: {stored} API events stored, each with its processing row; "
        f"total {time.perf_counter() - started:.0f} s"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    if not ok:
        print("problems above: the numbers are not trustworthy")
        return 2
    return 0 if (ratio_ok and p99_ok) else 1


if __name__ == "__main__":
    sys.exit(main())
