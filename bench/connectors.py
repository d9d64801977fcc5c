#!/usr/bin/env python
"""Connectors benchmark: signed webhooks into the raw inbox, against single-event API posts,
and outbound deliveries to a local receiver.

Run from the repository root (see bench/README.md)::

    .venv/bin/python bench/connectors.py            # full run, about a minute
    .venv/bin/python bench/connectors.py --quick    # smoke run

It resets a dedicated database (meshline_bench_connectors), creates the bench organization
(bench/ingest.py's setup) with a WordPress endpoint, starts gunicorn on a free 127.0.0.1
port and measures, in the same run:

1. ``POST /hooks/<endpoint>``: WordPress-signed post payloads, 16 concurrent keep-alive
   clients (closed loop): deliveries/s and latency. The hot path is verify + one INSERT
   of the raw row + publishing the mapping task; mapping runs in workers (none here).
2. ``POST /api/v1/events`` single events, the same concurrency, for comparison;
3. outbound: deliveries queued for one subscription and sent by ``services.send_due`` in
   this process to a 127.0.0.1 receiver (threaded HTTP server answering 200):
   deliveries/s, each one signed, POSTed and recorded (attempt + delivery + breaker).

Only 127.0.0.1 is contacted. Gunicorn is stopped and the broker's Redis database flushed
at the end; the bench database is kept (reset by the next run).
"""

import argparse
import json
import os
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest import (  # noqa: E402
    Sample,
    _run_threads,
    check_single,
    closed_loop,
    encode,
    make_deliverables,
    make_event,
    report_failures,
    setup_tenant,
    summarize,
)
from support import Connection, Gunicorn, flush_redis, reset_database  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/meshline_bench_connectors"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"


def wordpress_payload(n: int, ref: str) -> dict:
    """A WP Webhooks post_update body (tests/connectors/fixtures), about 1 KiB."""
    stamp = datetime.fromtimestamp(1_763_719_200 + n, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    return {
        "post_id": 10_000 + n,
        "post": {
            "ID": 10_000 + n,
            "post_author": "7",
            "post_date_gmt": stamp,
            "post_modified_gmt": stamp,
            "post_content": f"<html><head><title>Page {n}</title></head><body>"
            + "<p>Lorem ipsum dolor sit amet.</p>" * 20
            + "</body></html>",
            "post_title": f"Page {n}",
            "post_status": "publish",
            "post_name": f"page-{n}",
            "post_type": "page",
        },
        "post_meta": {"meshline_deliverable_id": [ref]},
        "post_permalink": f"https://acme.example/lp/page-{n}",
    }


def setup_connectors(organization_id: int) -> dict:
    """A WordPress endpoint for the first client; its public id and secret."""
    from django.db import connections
    from django_scopes import scope

    from connectors import services
    from connectors.models import ConnectorKind
    from deliveries.models import Client
    from meshline.models import Organization

    organization = Organization.objects.get(pk=organization_id)
    with scope(organization=organization):
        client = Client.objects.filter(organization=organization).order_by("pk").first()
        endpoint, secret = services.create_endpoint(
            organization, name="Bench WordPress", kind=ConnectorKind.WORDPRESS, client=client
        )
    connections.close_all()
    return {"public_id": str(endpoint.public_id), "secret": secret}


def webhook_loop(name, port, path, requests, concurrency) -> Sample:
    """closed_loop for webhooks: each request carries its own signature headers."""
    latencies = [0.0] * len(requests)
    statuses: dict[int, int] = {}
    failures: list[str] = []
    accepted = [0]
    lock = threading.Lock()
    queue = iter(range(len(requests)))

    def client(start: threading.Barrier) -> None:
        conn = Connection(port, "", path=path)
        start.wait()
        while True:
            with lock:
                index = next(queue, None)
            if index is None:
                break
            headers, body = requests[index]
            conn.headers = headers
            began = time.perf_counter()
            try:
                status, data = conn.post(body)
            except Exception as exc:
                with lock:
                    failures.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies[index] = time.perf_counter() - began
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 202:
                    accepted[0] += 1
                elif len(failures) < 20:
                    failures.append(f"webhook answered {status}: {data[:300]!r}")
        conn.close()

    seconds = _run_threads(client, concurrency)
    return Sample(name, len(requests), accepted[0], seconds, latencies, statuses, failures)


def signed_requests(endpoint: dict, deliverables, prefix: str, start: int, count: int) -> list:
    from connectors import verify

    now = datetime.now(UTC)
    requests = []
    for n in range(start, start + count):
        ref, _client = deliverables.pages[n % len(deliverables.pages)]
        body = encode(wordpress_payload(n, ref))
        headers = verify.sign("wordpress", endpoint["secret"], f"{prefix}-{n}", body, now)
        headers["Content-Type"] = "application/json"
        requests.append((headers, body))
    return requests


class Receiver:
    """127.0.0.1 receiver answering 200 to every POST, on threads."""

    def __init__(self):
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def outbound(organization_id: int, count: int) -> dict:
    """Queue ``count`` deliveries for one subscription, then send them all: deliveries/s."""
    from django.conf import settings
    from django_scopes import scope

    from connectors import services
    from connectors.models import OutboundDelivery, OutboundStatus, Subscription
    from deliveries.services import trail
    from meshline.models import Organization

    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    receiver = Receiver()
    organization = Organization.objects.get(pk=organization_id)
    try:
        with scope(organization=organization):
            Subscription.objects.create(
                organization=organization,
                name="bench",
                url=receiver.url,
                event_types=["bench.outbound"],
                paused=True,  # queue only; sent below, timed
            )
            entries = [
                trail.Entry("bench.outbound", f"bench-out-{uuid.uuid4().hex}", {"n": n})
                for n in range(count)
            ]
            trail.record_many(organization, entries)
            Subscription.objects.filter(organization=organization).update(paused=False)
            began = time.perf_counter()
            sent = services.send_due(organization, limit=count)
            seconds = time.perf_counter() - began
            delivered = OutboundDelivery.objects.filter(
                organization=organization, status=OutboundStatus.DELIVERED
            ).count()
    finally:
        receiver.close()
    return {
        "deliveries": count,
        "attempted": sent,
        "delivered": delivered,
        "seconds": round(seconds, 2),
        "deliveries_per_s": round(delivered / seconds, 1),
        "ms_each": round(1000 * seconds / max(sent, 1), 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers (default 4)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=None, help="requests per phase")
    parser.add_argument("--outbound", type=int, default=None, help="outbound deliveries")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--force", action="store_true", help="reset a database without 'bench'")
    args = parser.parse_args()
    requests = args.requests or (300 if args.quick else 2000)
    outbound_count = args.outbound or (100 if args.quick else 500)
    run_id = uuid.uuid4().hex[:8]

    print(f"meshline connectors benchmark ({'quick' if args.quick else 'full'} run {run_id})")
    print(f"  resetting {urlparse(args.database_url).path.lstrip('/')} and migrating ...")
    reset_database(args.database_url, args.force)
    tenant = setup_tenant(args.database_url)
    endpoint = setup_connectors(tenant["organization_id"])
    flush_redis(args.redis_url)
    deliverables = make_deliverables()

    import random

    rng = random.Random(20261130)
    seq = iter(range(10**9))
    events = [
        encode(make_event(rng, deliverables, f"bench-{run_id}-single-{i}", next(seq)))
        for i in range(requests)
    ]
    server = Gunicorn(args.database_url, args.redis_url, args.workers)
    print(f"  starting gunicorn ({args.workers} sync workers) on 127.0.0.1:{server.port} ...")
    server.start()
    path = f"/hooks/{endpoint['public_id']}"
    results: dict = {}
    ok = True
    try:
        warm = signed_requests(endpoint, deliverables, f"warm-{run_id}", 0, 20 * args.workers)
        ok &= report_failures([webhook_loop("warm-up", server.port, path, warm, args.concurrency)])
        # Signed just before their phase: the timestamps must stay within the tolerance.
        hooks = signed_requests(endpoint, deliverables, f"hook-{run_id}", 10**6, requests)
        print(f"  webhooks, {args.concurrency} concurrent ...")
        webhook = webhook_loop("webhooks", server.port, path, hooks, args.concurrency)
        print(f"  single API events, {args.concurrency} concurrent ...")
        api = closed_loop(
            "api", server.port, tenant["api_key"], events, args.concurrency, check_single
        )
        ok &= report_failures([webhook, api])
        results["webhooks"] = summarize([webhook])
        results["api_single"] = summarize([api])
    finally:
        server.stop()
    print(f"  outbound: {outbound_count} deliveries to a 127.0.0.1 receiver ...")
    results["outbound"] = outbound(tenant["organization_id"], outbound_count)
    flush_redis(args.redis_url)

    print()
    print(f"{'phase':<28}{'per s':>10}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    for key, label in (
        ("webhooks", "POST /hooks (WordPress)"),
        ("api_single", "POST /api/v1/events"),
    ):
        r = results[key]
        print(
            f"{label:<28}{r['events_per_s']:>10.1f}{r['p50_ms']:>10.1f}"
            f"{r['p95_ms']:>10.1f}{r['p99_ms']:>10.1f}"
        )
    out = results["outbound"]
    print(
        f"{'outbound sends (1 sender)':<28}{out['deliveries_per_s']:>10.1f}"
        f"{out['ms_each']:>10.1f}  ({out['delivered']}/{out['deliveries']} delivered)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    os.environ.pop("DATABASE_URL", None)
    return 0 if ok and out["delivered"] == outbound_count else 1


if __name__ == "__main__":
    raise SystemExit(main())
