#!/usr/bin/env python
"""Sustained processing: a burst of mixed events ingested while a real worker processes it.

Run from the repository root (see bench/README.md)::

    .venv/bin/python bench/processing.py                      # 20,000 events, a few minutes
    .venv/bin/python bench/processing.py --events 4000        # a quicker look
    # before/after in one table: run an older checkout (with its own venv) first
    .venv/bin/python bench/processing.py --root /work/wt/before --json /tmp/before.json
    .venv/bin/python bench/processing.py --compare /tmp/before.json

It resets a dedicated database (meshline_bench_processing), configures an organization the
way the demo is configured (roles, rotas, owner map, gates, billing, flows, connectors:
every ``demo_configure`` hook), starts gunicorn and one ``celery worker`` (prefork, the
product's default concurrency) from ``--root``, and sends ``--events`` events of the ingest
benchmark's mix (35 % ``page.published`` with a ~2 KB page that runs every page gate) in
batches of 500 from 2 concurrent senders (``--single``: one event a request, from 16). The
worker processes while the burst arrives.

Reported: ingest rate; processed events/s and evaluations/s (from the first request to the
last ``processed_at`` / ``evaluated_at``); time to drain (first request to the last
verdict); lag per event (``processed_at`` - ``received_at``, and to its last verdict),
p50/p95/max; CPU per event (user + system, from /proc) of the worker and its pool, of
gunicorn and its workers, and of PostgreSQL (every backend, those that exited included:
the server's other databases count too, so run it alone); and, in this process, queries per event for 400 more events processed in-process by
the same task (``deliveries.process_events``, gate evaluations included).

Floor (issue 15, item 7): processing keeps up with the burst, drain within 2x the ingest
time, and at least 1,000 events/s of this mix; with ``--single``, 500 events/s ingested at
16 concurrent while the worker runs.
"""

import argparse
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from ingest import Deliverables, encode, make_deliverables, make_event  # noqa: E402
from support import Connection, Process, flush_redis, free_port, reset_database  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/meshline_bench_processing"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/12"
FLOOR_EVENTS_PER_SECOND = 1000
FLOOR_DRAIN_RATIO = 2.0
FLOOR_SINGLE_INGEST_RATE = 500

SETUP = """
import json, sys
import django
django.setup()
from django.core.management import call_command
from django_scopes import scope
call_command("migrate", interactive=False, verbosity=0)
from deliveries.models import Client, Tier
from meshline import extensions
from meshline.models import ApiKey, Role
from meshline.services import create_organization, create_user
organization, _ = create_organization("bench-processing", "Bench Processing")
users = {
    email: create_user(email, organization, role, "bench-processing-pw")
    for email, role in [
        ("admin@northwind.example", Role.ADMIN),
        ("am@northwind.example", Role.ACCOUNT_MANAGER),
        ("finance@northwind.example", Role.FINANCE),
        ("viewer@northwind.example", Role.VIEWER),
    ]
}
with scope(organization=organization):
    for ref in ("acme", "globex"):
        Client.objects.create(organization=organization, client_id=ref, name=ref.title(), tier=Tier.PREMIUM)
    for configure in extensions.demo_configure:
        configure(organization, users)
    _key, plaintext = ApiKey.generate(organization, "bench")
print(json.dumps({"organization_id": organization.pk, "api_key": plaintext}))
"""

SAMPLE = """
import json, sys
import django
django.setup()
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope
from deliveries.models import EventProcessing
from deliveries.services import ingest_events
from deliveries.tasks import process_events
from meshline.models import Organization
organization = Organization.objects.get(slug="bench-processing")
bodies = json.load(sys.stdin)
with scope(organization=organization):
    results = ingest_events(organization, bodies)
    ids = [r.event_id for r in results if r.event_id]
    EventProcessing.objects.filter(event_id__in=ids).update(status="pending")
    with CaptureQueriesContext(connection) as queries:
        for start in range(0, len(ids), 200):
            process_events.apply(kwargs={"organization_id": organization.pk, "event_ids": ids[start:start + 200]})
print(json.dumps({"events": len(ids), "queries": len(queries.captured_queries)}))
"""


class Service(Process):
    def __init__(self, name: str, cmd: list[str], env: dict, root: Path, ready_text: str = ""):
        self.name = name
        self.root = root
        self.ready_text = ready_text
        super().__init__(cmd, env)

    def start(self) -> None:
        # support.Process starts in this repository; the service runs from --root.
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=self.root,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.ready():
                return
            time.sleep(0.2)
        self.stop()
        sys.exit(f"{self.name} did not become ready:\n{self.output()}")

    def ready(self) -> bool:
        if self.ready_text:
            return self.ready_text in self.output()
        import http.client

        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False


def env_for(args) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": args.database_url,
        "CELERY_BROKER_URL": args.redis_url,
        "MESHLINE_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "meshline.settings",
        "MESHLINE_API_RATE": "100000000/day",
        "MESHLINE_EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
        "PYTHONPATH": str(args.root),
    }
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    return env


def python_of(root: Path) -> str:
    return str(root / ".venv" / "bin" / "python")


def run_python(args, code: str, stdin: str = "", eager: bool = False) -> dict:
    env = env_for(args)
    if eager:  # in-process: tasks run where they are sent, as in the tests
        env["CELERY_TASK_ALWAYS_EAGER"] = "1"
        env["CELERY_BROKER_URL"] = ""
    done = subprocess.run(
        [python_of(args.root), "-c", code],
        cwd=args.root,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"setup failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def sql(args, query: str, params=()) -> list[tuple]:
    import psycopg

    with psycopg.connect(args.database_url.replace("postgres://", "postgresql://")) as conn:
        return conn.execute(query, params).fetchall()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its descendants (the pool), from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    stats: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        # utime, stime, cutime, cstime: reaped children count in their parent.
        stats[int(entry)] = sum(int(v) for v in fields[11:15]) / ticks
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += stats.get(current, 0.0)
        todo += children.get(current, [])
    return total


def postmaster_pid(args) -> int:
    """The PostgreSQL server's main process: the parent of a backend."""
    import psycopg

    with psycopg.connect(args.database_url.replace("postgres://", "postgresql://")) as conn:
        [(backend,)] = conn.execute("SELECT pg_backend_pid()").fetchall()
        stat = Path(f"/proc/{backend}/stat").read_text()  # while the backend lives
    return int(stat.rsplit(")", 1)[1].split()[1])


def burst(args, port: int, api_key: str, deliverables: Deliverables) -> tuple[float, float, int]:
    """Send the burst in batches of 500 from 2 senders, or (``--single``) one event per
    request from ``--concurrency`` senders; returns (start, end, accepted)."""
    rng = random.Random(2026)
    run = f"p{int(time.time())}"
    if args.single:
        bodies = [
            encode(make_event(rng, deliverables, f"{run}-{i}", i)) for i in range(args.events)
        ]
        senders = args.concurrency
    else:
        bodies = [
            encode(
                {
                    "events": [
                        make_event(rng, deliverables, f"{run}-{i + j}", i + j) for j in range(500)
                    ]
                }
            )
            for i in range(0, args.events, 500)
        ]
        senders = 2
    accepted, failures = [], []
    lock = threading.Lock()
    queue = list(reversed(bodies))

    def sender():
        connection = Connection(port, api_key, path="/api/v1/events")
        while True:
            with lock:
                if not queue or failures:
                    break
                body = queue.pop()
            status, data = connection.post(body)
            with lock:
                if status == 202 and args.single:
                    accepted.append(1)
                elif status != 200 or args.single:
                    failures.append(f"request answered {status}: {data[:300]!r}")
                else:
                    accepted.append(json.loads(data)["accepted"])
        connection.close()

    started = time.time()
    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:  # a refused batch makes every number below meaningless
        sys.exit(failures[0])
    return started, time.time(), sum(accepted)


def measure(args) -> dict:
    reset_database(args.database_url, args.force)
    flush_redis(args.redis_url)
    world = run_python(args, SETUP)
    rng = random.Random(1)
    deliverables = make_deliverables(200)
    env = env_for(args)
    port = free_port()
    gunicorn = Service(
        "gunicorn",
        [
            str(args.root / ".venv/bin/gunicorn"),
            "meshline.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "4",
            "--log-level",
            "warning",
        ],
        env,
        args.root,
    )
    gunicorn.port = port
    worker_cmd = [
        str(args.root / ".venv/bin/celery"),
        "-A",
        "meshline",
        "worker",
        "--loglevel=INFO",
        "--without-gossip",
        "--without-mingle",
    ]
    if args.queues:
        worker_cmd += ["-Q", args.queues]
    worker = Service("celery-worker", worker_cmd, env, args.root, ready_text=" ready.")
    gunicorn.start()
    try:
        # Warm-up: every deliverable's first event, processed before the clock starts.
        warm = [make_event(rng, deliverables, f"warm-{i}", i) for i in range(400)]
        Connection(port, world["api_key"], path="/api/v1/events").post(
            encode({"events": warm[:200]})
        )
        Connection(port, world["api_key"], path="/api/v1/events").post(
            encode({"events": warm[200:]})
        )
        worker.start()
        wait_drained(args, deadline=600)
        # The whole server: every backend, and those that exited (reaped by the postmaster).
        postmaster = postmaster_pid(args)
        cpu_before = cpu_seconds(worker.proc.pid)
        server_before = cpu_seconds(gunicorn.proc.pid), cpu_seconds(postmaster)
        try:
            started, sent, accepted = burst(args, port, world["api_key"], deliverables)
        except SystemExit:
            print(gunicorn.output()[-6000:], file=sys.stderr)  # the server's side of it
            raise
        drained = wait_drained(args, deadline=args.timeout)
        cpu = cpu_seconds(worker.proc.pid) - cpu_before
        gunicorn_cpu = cpu_seconds(gunicorn.proc.pid) - server_before[0]
        postgres_cpu = cpu_seconds(postmaster) - server_before[1]
    finally:
        worker.stop()
        gunicorn.stop()
    rows = sql(
        args,
        """SELECT extract(epoch FROM p.processed_at)::float8, extract(epoch FROM e.received_at)::float8,
                  (SELECT extract(epoch FROM max(g.evaluated_at))::float8 FROM gates_gateevaluation g
                    WHERE g.event_id = e.id)
             FROM deliveries_event e JOIN deliveries_eventprocessing p ON p.event_id = e.id
            WHERE e.received_at >= to_timestamp(%s) AND e.source <> 'meshline'""",
        (started,),
    )
    evaluations = sql(
        args,
        "SELECT count(*), extract(epoch FROM max(evaluated_at))::float8 FROM gates_gateevaluation "
        "WHERE evaluated_at >= to_timestamp(%s)",
        (started,),
    )[0]
    twice = sql(
        args,
        "SELECT count(*) FROM deliveries_eventprocessing WHERE attempts > 1 "
        "AND status = 'processed'",
    )[0][0]
    erred = sql(args, "SELECT count(*) FROM deliveries_eventprocessing WHERE last_error <> ''")[0][
        0
    ]
    processed_last = max(r[0] for r in rows if r[0])
    verdict_last = max([processed_last] + [r[2] for r in rows if r[2]])
    lag = [r[0] - r[1] for r in rows if r[0]]
    verdict_lag = [(r[2] or r[0]) - r[1] for r in rows if r[0]]
    sample = sample_queries(args, rng, deliverables)
    return {
        "root": str(args.root),
        "events": accepted,
        "mode": f"single x{args.concurrency}" if args.single else "batch 500 x2",
        "ingest_seconds": sent - started,
        "ingest_rate": accepted / (sent - started),
        "processed_rate": len(rows) / (processed_last - started),
        "evaluations": evaluations[0],
        "evaluation_rate": evaluations[0] / (verdict_last - started),
        "drain_seconds": verdict_last - started,
        "drain_ratio": (verdict_last - started) / (sent - started),
        "lag_p50": statistics.median(lag),
        "lag_p95": percentile(lag, 95),
        "lag_max": max(lag),
        "verdict_lag_p95": percentile(verdict_lag, 95),
        "verdict_lag_max": max(verdict_lag),
        "processed_more_than_once": twice,
        "left_failing": erred,
        "worker_cpu_ms_per_event": cpu * 1000 / accepted,
        "gunicorn_cpu_ms_per_event": gunicorn_cpu * 1000 / accepted,
        "postgres_cpu_ms_per_event": postgres_cpu * 1000 / accepted,
        "queries_per_event": sample["queries"] / sample["events"],
        "drained": drained,
    }


def sample_queries(args, rng, deliverables) -> dict:
    bodies = [make_event(rng, deliverables, f"sample-{i}", 900_000 + i) for i in range(400)]
    return run_python(args, SAMPLE, stdin=json.dumps(bodies), eager=True)


def wait_drained(args, deadline: float) -> bool:
    """Until nothing is pending, no gate evaluation was stored for 3 s and Redis is empty."""
    import redis

    broker = redis.Redis.from_url(args.redis_url)
    give_up = time.monotonic() + deadline
    quiet_since, last = None, None
    stalled_since, last_pending = None, None
    while time.monotonic() < give_up:
        # Events that failed wait for the sweeper (no beat here): counted apart, reported.
        pending = sql(
            args,
            "SELECT count(*) FROM deliveries_eventprocessing "
            "WHERE status = 'pending' AND last_error = ''",
        )[0][0]
        if pending and pending == last_pending:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 60:
                errors = sql(
                    args,
                    "SELECT left(last_error, 200), count(*) FROM deliveries_eventprocessing "
                    "WHERE status = 'pending' GROUP BY 1",
                )
                sys.exit(f"{pending} events stay pending (no beat runs the sweeper): {errors}")
        else:
            stalled_since = None
        last_pending = pending
        evaluated = sql(args, "SELECT count(*) FROM gates_gateevaluation")[0][0]
        queued = sum(broker.llen(key) for key in broker.scan_iter() if broker.type(key) == b"list")
        if pending == 0 and queued == 0 and evaluated == last:
            quiet_since = quiet_since or time.monotonic()
            if time.monotonic() - quiet_since >= 3:
                return True
        else:
            quiet_since = None
        last = evaluated
        time.sleep(0.5)
    return False


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


ROWS = [
    ("events in the burst", "events", "{:,.0f}"),
    ("sent as", "mode", "{}"),
    ("ingest, events/s", "ingest_rate", "{:,.0f}"),
    ("ingest time, s", "ingest_seconds", "{:.1f}"),
    ("processed, events/s", "processed_rate", "{:,.0f}"),
    ("gate evaluations", "evaluations", "{:,.0f}"),
    ("evaluations/s", "evaluation_rate", "{:,.0f}"),
    ("time to drain, s", "drain_seconds", "{:.1f}"),
    ("drain / ingest time", "drain_ratio", "{:.2f}"),
    ("lag to processed p50, s", "lag_p50", "{:.1f}"),
    ("lag to processed p95, s", "lag_p95", "{:.1f}"),
    ("lag to processed max, s", "lag_max", "{:.1f}"),
    ("lag to last verdict p95, s", "verdict_lag_p95", "{:.1f}"),
    ("lag to last verdict max, s", "verdict_lag_max", "{:.1f}"),
    ("events processed more than once", "processed_more_than_once", "{:,.0f}"),
    ("events left failing (sweeper retries)", "left_failing", "{:,.0f}"),
    ("queries per event (in-process)", "queries_per_event", "{:.1f}"),
    ("worker CPU per event, ms", "worker_cpu_ms_per_event", "{:.1f}"),
    ("gunicorn CPU per event, ms", "gunicorn_cpu_ms_per_event", "{:.1f}"),
    ("PostgreSQL CPU per event, ms", "postgres_cpu_ms_per_event", "{:.1f}"),
]


def report(results: list[dict]) -> bool:
    names = [Path(r["root"]).name or r["root"] for r in results]
    print(f"\n{'':34}" + "".join(f"{n:>16}" for n in names))
    for label, key, fmt in ROWS:
        cells = (fmt.format(r[key]) if key in r else "-" for r in results)  # older --json
        print(f"{label:34}" + "".join(f"{cell:>16}" for cell in cells))
    latest = results[-1]
    keeps_up = latest["drain_ratio"] <= FLOOR_DRAIN_RATIO
    fast = latest["processed_rate"] >= FLOOR_EVENTS_PER_SECOND
    print(f"\ndrain within {FLOOR_DRAIN_RATIO}x ingest time: {'MET' if keeps_up else 'NOT MET'}")
    print(
        f">= {FLOOR_EVENTS_PER_SECOND} events/s processed: {'MET' if fast else 'NOT MET'}"
        f" ({latest['processed_rate']:,.0f})"
    )
    ingests = True
    if latest.get("mode", "").startswith("single"):
        ingests = latest["ingest_rate"] >= FLOOR_SINGLE_INGEST_RATE
        print(
            f">= {FLOOR_SINGLE_INGEST_RATE} single events/s ingested with the worker running: "
            f"{'MET' if ingests else 'NOT MET'} ({latest['ingest_rate']:,.0f})"
        )
    return (
        keeps_up
        and fast
        and ingests
        and latest["processed_more_than_once"] == 0
        and latest.get("left_failing", 0) == 0
    )


def main() -> int:
    # ``timeout`` or Ctrl-C: stop gunicorn and the worker (their own sessions) on the way out,
    # or a stale worker keeps consuming the next run's queue.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(f"stopped by signal {signum}"))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument(
        "--single", action="store_true", help="one event per request (floor: 500/s at 16)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="senders with --single")
    parser.add_argument("--root", type=Path, default=HERE.parent, help="checkout to run")
    parser.add_argument("--queues", default="", help="worker -Q (default: the root's own)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait to drain")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--compare", type=Path, help="an earlier --json to print beside")
    args = parser.parse_args()
    args.root = args.root.resolve()
    result = measure(args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    results = [json.loads(args.compare.read_text())] if args.compare else []
    ok = report([*results, result])
    return 0 if ok and result["drained"] else 1


if __name__ == "__main__":
    sys.exit(main())
