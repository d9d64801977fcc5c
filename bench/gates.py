#!/usr/bin/env python
"""Gate benchmark: event -> verdict -> ticket through gunicorn and a real Celery worker.

Run from the repository root (see bench/README.md)::

    .venv/bin/python bench/gates.py            # about 4 minutes
    .venv/bin/python bench/gates.py --quick    # about 1 minute

It resets a dedicated database (meshline_bench_gates), configures an organization like
the demo (roles, rotas, owner map: page.published goes to the "SEO Delivery Owner") with
one enforced gate per built-in check, starts gunicorn and ``celery -A meshline worker``
(prefork, as production runs it) on 127.0.0.1, and measures:

1. latency: ``page.published`` events for pages missing their JSON-LD (plus screenshots,
   so every page gate has real work), posted one by one to the API at a steady rate (open
   loop); for each, the time from when it was due to the schema_check verdict being made
   (``evaluated_at``) and to its ticket being committed (polled every 10 ms);
2. throughput per check: for each check, events that trigger it (half passing, half
   failing) are ingested and processed with that gate switched off, then the gate is
   switched on and one ``gates.evaluate_gate`` task per event is sent to the worker at
   once; evaluations per second = events / (last verdict stored - tasks sent). sitemap_sync
   has no per-event task: its timers are expired by one ``gates.expire_timers`` task.
   Beside it, the check function alone, in this process, on the same inputs.

Floor (issue 4, item 7): p95 from event to ticket under 2 s.
"""

import argparse
import base64
import io
import json
import statistics
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from support import (  # noqa: E402
    CeleryWorker,
    Connection,
    Gunicorn,
    flush_redis,
    reset_database,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/meshline_bench_gates"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
FIXTURES = ROOT / "tests" / "gates" / "fixtures"
FLOOR_P95_SECONDS = 2.0
CLIENT = "acme"
PAGE_CHECKS = [
    "schema_check",
    "seo_tags_present",
    "schema_version",
    "content_quality_score",
    "screenshot_regression",
]


def gate_specs() -> dict:
    """gate_smoke's gates, one per check: {check name: (event types, parameters)}."""
    from devtools.smoke import GATE_SPECS

    return {str(check): spec for check, spec in GATE_SPECS.items()}


# --- payloads ---------------------------------------------------------------------------------


def screenshot(changed: bool) -> str:
    """A 1280 x 2000 page screenshot (header, hero, text lines), base64 PNG (~40 KB)."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (1280, 2000), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, 1280, 90], fill="#1f3a5f")
    draw.rectangle([80, 140, 1200, 620], fill="#dfe8f2" if not changed else "#b23a48")
    for row in range(40):
        y = 700 + row * 30
        draw.rectangle([80, y, 80 + (row * 97) % 1000 + 120, y + 12], fill="#555555")
    if changed:
        draw.rectangle([700, 900, 1200, 1500], fill="#000000")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode()


def page_payload(url: str, html: str, shots: dict, changed: bool, version: int = 2) -> dict:
    return {
        "url": url,
        "html": html,
        "schema_version": version,
        "screenshot": shots["changed" if changed else "same"],
        "baseline_screenshot": shots["same"],
    }


def envelope(event_type: str, ref: str, key: str, payload: dict, at: datetime) -> dict:
    return {
        "event_type": event_type,
        "deliverable_id": ref,
        "client_id": CLIENT,
        "idempotency_key": key,
        "actor": {"role": "cms", "id": "bench"},
        "occurred_at": at.isoformat(),
        "payload": payload,
    }


def workload(check: str, n: int, run: str, shots: dict) -> tuple[list[dict], list[dict]]:
    """(setup events, events that trigger ``check``), half passing and half failing.

    sitemap_sync's pages all fail: none is listed in a sitemap within its 24 hours.
    """
    good = (FIXTURES / "product_landing.html").read_text()
    bad = {
        "schema_check": (FIXTURES / "missing_jsonld.html").read_text(),
        "seo_tags_present": (FIXTURES / "missing_og_image.html").read_text(),
        "content_quality_score": (FIXTURES / "thin_duplicated.html").read_text(),
    }
    now = datetime.now(UTC)
    setup, events = [], []
    for i in range(n):
        failing = i % 2 == 1 or check == "sitemap_sync"
        ref = f"{check.upper().replace('_', '-')}-{run}-{i:04d}"
        url = f"https://acme.example/{run}/{check}/{i}"
        if check == "scope_limits":
            setup.append(
                envelope(
                    "scope.accepted",
                    ref,
                    f"{ref}-scope",
                    {"limits": {"asset_size_mb": 2, "revisions": 1}},
                    now - timedelta(hours=2),
                )
            )
            size = 9_000_000 if failing else 500_000
            events.append(
                envelope(
                    "asset.uploaded",
                    ref,
                    f"{ref}-asset",
                    {"asset_id": "hero", "size_bytes": size},
                    now - timedelta(hours=1),
                )
            )
            continue
        html = bad.get(check, good) if failing else good
        version = 1 if failing and check == "schema_version" else 2
        changed = failing and check == "screenshot_regression"
        at = now - timedelta(hours=25) if check == "sitemap_sync" else now - timedelta(minutes=5)
        payload = page_payload(url, html, shots, changed, version)
        events.append(envelope("page.published", ref, f"{ref}-pub", payload, at))
    return setup, events


# --- Django side (this process) ------------------------------------------------------------------


def setup_django(database_url: str, broker_url: str) -> None:
    import os

    os.environ["DATABASE_URL"] = database_url
    os.environ["DJANGO_SETTINGS_MODULE"] = "meshline.settings"
    os.environ["CELERY_BROKER_URL"] = broker_url
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
    os.environ["MESHLINE_LOG_LEVEL"] = "WARNING"
    import django

    django.setup()


def build_organization() -> dict:
    """The demo's owners configuration, one client, one enforced gate per check, a key."""
    from django.core.management import call_command
    from django_scopes import scope

    from devtools.demo import owners as owners_demo
    from devtools.factories import ClientFactory, GateFactory
    from meshline.models import ApiKey, Role
    from meshline.services import create_organization, create_user

    call_command("migrate", interactive=False, verbosity=0)
    organization, _ = create_organization("bench-gates", "Bench Gates Agency")
    users = {
        email: create_user(email, organization, Role.ACCOUNT_MANAGER, "bench-password")
        for email in ("am@northwind.example", "admin@northwind.example")
    }
    with scope(organization=organization):
        owners_demo.configure(organization, users)
        ClientFactory(organization=organization, client_id=CLIENT, name="Acme")
        gates = {}
        for check, (event_types, parameters) in gate_specs().items():
            gates[check] = GateFactory(
                organization=organization,
                check_name=check,
                event_types=event_types,
                parameters=parameters,
                # The bench fails half its pages on purpose: keep the gates enforcing.
                min_evaluations=10**9,
            )
        _, api_key = ApiKey.generate(organization, "bench")
    return {"organization": organization, "gates": gates, "api_key": api_key}


def set_modes(world: dict, enforced: set[str]) -> None:
    from django_scopes import scope

    from gates.models import Gate, GateMode

    with scope(organization=world["organization"]):
        for check, gate in world["gates"].items():
            mode = GateMode.ENFORCE if check in enforced else GateMode.OFF
            Gate.objects.filter(pk=gate.pk).update(mode=mode)


def sql(query: str, params=()) -> list[tuple]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchall()


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            sys.exit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)


def processed_count(keys: list[str]) -> int:
    return sql(
        "SELECT count(*) FROM deliveries_event e JOIN deliveries_eventprocessing p "
        "ON p.event_id = e.id WHERE p.status = 'processed' AND e.idempotency_key = ANY(%s)",
        [keys],
    )[0][0]


# --- phase 1: latency ---------------------------------------------------------------------------


def latency_phase(world: dict, port: int, args, rate: float, shots: dict, run: str) -> dict:
    """Post failing pages at ``rate`` per second; time each one's verdict and ticket."""
    organization = world["organization"]
    gate_id = world["gates"]["schema_check"].pk
    html = (FIXTURES / "missing_jsonld.html").read_text()
    base = datetime.now(UTC) - timedelta(minutes=1)
    bodies = []
    for i in range(args.events):
        ref = f"LAT-{run}-{i:04d}"
        payload = page_payload(f"https://acme.example/{run}/lat/{i}", html, shots, changed=False)
        event = envelope("page.published", ref, f"{ref}-pub", payload, base)
        bodies.append((ref, json.dumps(event).encode()))
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    failures: list[str] = []
    done = threading.Event()

    def poll() -> None:
        import psycopg

        conninfo = args.database_url.replace("postgres://", "postgresql://", 1)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while not done.is_set():
                rows = conn.execute(
                    "SELECT d.deliverable_id FROM owners_ticket t "
                    "JOIN deliveries_deliverable d ON d.id = t.deliverable_id "
                    "WHERE t.organization_id = %s AND t.source_key LIKE %s "
                    "AND d.deliverable_id LIKE %s",
                    [organization.pk, f"gate:{gate_id}:%", f"LAT-{run}-%"],
                ).fetchall()
                now = time.time()
                for (ref,) in rows:
                    seen.setdefault(ref, now)
                if len(seen) == len(bodies):
                    return
                time.sleep(0.01)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    # Open loop: page i is due at t0 + i/rate and its latency counts from then, so a slow
    # API cannot hide queueing by sending later. Two senders, so one slow request does not
    # hold the next one back.
    interval = 1 / rate
    t0 = time.time() + 0.2
    actual: list[float] = []  # when each request really went out

    def sender(offset: int) -> None:
        connection = Connection(port, world["api_key"])
        for i in range(offset, len(bodies), 2):
            ref, body = bodies[i]
            due = t0 + i * interval
            delay = due - time.time()
            if delay > 0:
                time.sleep(delay)
            sent[ref] = due
            actual.append(time.time())
            status, data = connection.post(body)
            if status != 202:
                failures.append(f"{ref}: {status} {data[:200]!r}")
        connection.close()

    senders = [threading.Thread(target=sender, args=(k,)) for k in range(2)]
    for thread in senders:
        thread.start()
    for thread in senders:
        thread.join()
    achieved = (len(actual) - 1) / max(1e-9, max(actual) - min(actual))
    poller.join(timeout=60)
    done.set()
    if failures:
        sys.exit("requests failed:\n" + "\n".join(failures[:5]))
    missing = sorted(set(sent) - set(seen))
    if missing:
        sys.exit(f"{len(missing)} tickets never appeared (first: {missing[0]})")
    verdicts = dict(
        sql(
            "SELECT d.deliverable_id, extract(epoch FROM g.evaluated_at) "
            "FROM gates_gateevaluation g JOIN deliveries_deliverable d ON d.id = g.deliverable_id "
            "WHERE g.gate_id = %s AND d.deliverable_id LIKE %s AND g.outcome = 'fail'",
            [gate_id, f"LAT-{run}-%"],
        )
    )
    tickets = sql(
        "SELECT count(*), count(assignee_id) FROM owners_ticket "
        "WHERE source_key LIKE %s AND title LIKE %s",
        [f"gate:{gate_id}:%", f"%LAT-{run}-%"],
    )[0]
    # Let the pages' other evaluations finish before anything else is measured.
    wait_until(
        lambda: (
            sql(
                "SELECT count(*) FROM gates_gateevaluation g "
                "JOIN deliveries_deliverable d ON d.id = g.deliverable_id "
                "WHERE d.deliverable_id LIKE %s",
                [f"LAT-{run}-%"],
            )[0][0]
            >= len(bodies) * len(PAGE_CHECKS)
        ),
        120,
        "the latency phase's evaluations",
    )
    return {
        "events": len(bodies),
        "rate": rate,
        "achieved_rate": achieved,
        "verdict": [float(verdicts[ref]) - sent[ref] for ref in sent],
        "ticket": [seen[ref] - sent[ref] for ref in sent],
        "tickets": tickets[0],
        "assigned": tickets[1],
    }


# --- phase 2: throughput per check ----------------------------------------------------------------


def submit(port: int, api_key: str, events: list[dict], max_bytes: int = 1_500_000) -> None:
    """Post ``events`` in batches that stay under the API's body size limit."""
    connection = Connection(port, api_key)
    batches: list[list[dict]] = [[]]
    size = 0
    for event in events:
        encoded = len(json.dumps(event))
        if batches[-1] and (size + encoded > max_bytes or len(batches[-1]) == 100):
            batches.append([])
            size = 0
        batches[-1].append(event)
        size += encoded
    for batch in filter(None, batches):
        status, data = connection.post(json.dumps({"events": batch}).encode())
        results = json.loads(data).get("results", []) if status == 200 else []
        if status != 200 or any(r.get("status") == "rejected" for r in results):
            sys.exit(f"batch refused: {status} {data[:300]!r}")
    connection.close()


def check_alone(check: str, world: dict, keys: list[str], repeat: int) -> float:
    """Evaluations per second of the check function itself, on the bench's own events."""
    from django_scopes import scope

    from deliveries.models import Event
    from gates import checks, services

    gate = world["gates"][check]
    with scope(organization=world["organization"]):
        inputs = []
        for event in Event.objects.filter(idempotency_key__in=keys).select_related("deliverable"):
            inputs.append(
                checks.CheckInput(
                    event=services.event_view(event),
                    deliverable_type=event.deliverable.type,
                    deliverable_url=event.deliverable.url,
                    history=services.history_for(event, services.history_types(gate)),
                    parameters=gate.parameters,
                )
            )
    started = time.perf_counter()
    for _ in range(repeat):
        for check_input in inputs:
            checks.run(check, check_input)
    return repeat * len(inputs) / (time.perf_counter() - started)


def throughput_phase(world: dict, port: int, args, shots: dict, run: str) -> list[dict]:
    from gates.tasks import evaluate_gate, expire_timers

    organization = world["organization"]
    rows = []
    for check in gate_specs():
        setup, events = workload(check, args.per_check, run, shots)
        keys = [e["idempotency_key"] for e in events]
        # Ingest and process everything first with the gate off. sitemap_sync is on: its
        # pages, published 25 hours ago and listed in no sitemap, start timers already due.
        set_modes(world, {check} if check == "sitemap_sync" else set())
        submit(port, world["api_key"], setup + events)
        every_key = keys + [e["idempotency_key"] for e in setup]
        wait_until(lambda k=every_key: processed_count(k) == len(k), 120, f"{check}: processed")
        set_modes(world, {check})
        gate = world["gates"][check]
        event_ids = [
            str(pk)
            for (pk,) in sql(
                "SELECT id FROM deliveries_event WHERE idempotency_key = ANY(%s)", [keys]
            )
        ]
        before = sql("SELECT count(*) FROM gates_gateevaluation WHERE gate_id = %s", [gate.pk])
        expected = before[0][0] + len(event_ids)
        started = time.time()
        if check == "sitemap_sync":
            expire_timers.apply_async(kwargs={"organization_id": organization.pk})
        else:
            for event_id in event_ids:
                evaluate_gate.apply_async(
                    kwargs={
                        "organization_id": organization.pk,
                        "gate_id": gate.pk,
                        "event_id": event_id,
                    }
                )
        wait_until(
            lambda g=gate.pk, n=expected: (
                sql("SELECT count(*) FROM gates_gateevaluation WHERE gate_id = %s", [g])[0][0] >= n
            ),
            300,
            f"{check}: evaluations",
        )
        finished = time.time()
        last, outcomes, durations = sql(
            "SELECT extract(epoch FROM max(evaluated_at)), "
            "array_agg(outcome), array_agg(duration_ms) FROM gates_gateevaluation "
            "WHERE gate_id = %s AND evaluated_at >= to_timestamp(%s)",
            [gate.pk, started],
        )[0]
        count = len(outcomes)  # the verdicts found, not the ones expected
        rows.append(
            {
                "check": check,
                "evaluations": count,
                "passed": outcomes.count("pass"),
                "failed": outcomes.count("fail"),
                "errors": outcomes.count("error"),
                # Timer verdicts are all dated at the sweep's start: time it by when seen.
                "per_second": count
                / ((finished if check == "sitemap_sync" else float(last)) - started),
                "check_ms_median": statistics.median(durations),
                "alone_per_second": (
                    None
                    if check == "sitemap_sync"
                    else check_alone(check, world, keys, repeat=args.alone_repeat)
                ),
            }
        )
        print(
            f"  {check:<22} {count} evaluations: {rows[-1]['per_second']:.1f}/s",
            flush=True,
        )
    set_modes(world, set(gate_specs()))
    return rows


# --- report -------------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def report(latencies: list[dict], rows: list[dict], args) -> bool:
    print()
    print(
        f"event -> verdict -> ticket: failing pages (no JSON-LD) posted one by one, "
        f"{args.concurrency} worker processes"
    )
    print(f"  {'rate':>6} {'':<28} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
    for latency in latencies:
        for name, key in (("schema_check verdict made", "verdict"), ("ticket committed", "ticket")):
            values = latency[key]
            print(
                f"  {latency['rate']:>4g}/s {name:<28} {statistics.median(values) * 1000:>8.0f} "
                f"{percentile(values, 95) * 1000:>8.0f} {max(values) * 1000:>8.0f}"
            )
        print(
            f"  {'':>6} {latency['events']} pages (sent at {latency['achieved_rate']:.2f}/s), "
            f"{latency['tickets']} tickets, {latency['assigned']} assigned to the on-duty "
            "SEO Delivery Owner"
        )
    print()
    print(f"evaluations per second, {args.per_check} events per check (half failing)")
    print(f"  {'check':<22} {'worker /s':>10} {'check ms p50':>13} {'alone /s':>10}  outcomes")
    for row in rows:
        alone = f"{row['alone_per_second']:.0f}" if row["alone_per_second"] else "—"
        print(
            f"  {row['check']:<22} {row['per_second']:>10.1f} {row['check_ms_median']:>13.2f} "
            f"{alone:>10}  {row['passed']} pass, {row['failed']} fail, {row['errors']} error"
        )
    met = True
    print()
    for latency in latencies:
        p95 = percentile(latency["ticket"], 95)
        met = met and p95 < FLOOR_P95_SECONDS
        print(
            f"floor: event -> ticket p95 < {FLOOR_P95_SECONDS:.0f} s at {latency['rate']:g}/s: "
            f"{p95 * 1000:.0f} ms {'MET' if p95 < FLOOR_P95_SECONDS else 'NOT MET'}"
        )
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer events (a smoke run)")
    parser.add_argument("--events", type=int, default=200, help="latency phase pages")
    parser.add_argument(
        "--rates", default="2,8", help="latency phase pages per second, comma-separated"
    )
    parser.add_argument("--per-check", type=int, default=200, help="events per check")
    parser.add_argument("--alone-repeat", type=int, default=3)
    parser.add_argument(
        "--concurrency",
        type=int,
        default=None,
        help="worker processes (default: the product's, MESHLINE_WORKER_CONCURRENCY)",
    )
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--force", action="store_true", help="reset a database without 'bench'")
    args = parser.parse_args()
    if args.quick:
        args.events, args.per_check, args.alone_repeat = 40, 40, 1
    run = uuid.uuid4().hex[:6]
    print(f"meshline gate benchmark (run {run})")
    print(f"  resetting {urlparse(args.database_url).path.lstrip('/')} and migrating ...")
    reset_database(args.database_url, args.force)
    flush_redis(args.redis_url)
    setup_django(args.database_url, args.redis_url)
    from django.conf import settings

    args.concurrency = args.concurrency or settings.CELERY_WORKER_CONCURRENCY
    world = build_organization()
    from django.db import connections

    connections.close_all()
    shots = {"same": screenshot(False), "changed": screenshot(True)}
    server = Gunicorn(args.database_url, args.redis_url, workers=2)
    worker = CeleryWorker(args.database_url, args.redis_url, args.concurrency)
    try:
        print("  starting gunicorn (2 workers) and a Celery worker ...", flush=True)
        server.start()
        worker.start()
        # Warm up: every process imports its checks, compiles schemas and connects.
        warm_setup, warm = workload("schema_check", 8, f"warm{run}", shots)
        submit(server.port, world["api_key"], warm_setup + warm)
        keys = [e["idempotency_key"] for e in warm]
        wait_until(lambda: processed_count(keys) == len(keys), 60, "warm-up")
        time.sleep(2)
        latencies = []
        for i, rate in enumerate(float(r) for r in args.rates.split(",")):
            print(f"  latency: {args.events} pages at {rate:g}/s ...", flush=True)
            latencies.append(latency_phase(world, server.port, args, rate, shots, f"{run}{i}"))
        print("  throughput per check ...", flush=True)
        rows = throughput_phase(world, server.port, args, shots, run)
    finally:
        worker.stop()
        server.stop()
        flush_redis(args.redis_url)
    met = report(latencies, rows, args)
    if args.json:
        Path(args.json).write_text(json.dumps({"latency": latencies, "checks": rows}, indent=2))
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
