#!/usr/bin/env python
"""Reporting at size (issue 13, item 8): a day's search export in, the nightly attribution
over 90 days, and the export out.

Run from the repository root (see bench/README.md)::

    .venv/bin/python bench/reporting.py                        # 20,000 deliverables x 90 days
    .venv/bin/python bench/reporting.py --deliverables 2000 --days 10   # a quicker look

In this process, against its own database (meshline_bench_reporting), its task publishes
going to a Redis database no worker reads:

1. **Search export in.** One site's day of ``--rows`` rows (Search Console's shape: page,
   impressions, clicks, position; the site's deliverables match, the rest are pages
   Meshline has no deliverable for) through ``intake.import_search_day``, the code behind
   ``POST /api/v1/search-performance/import``; then the same rows by raw COPY into a
   temporary table of the same columns, in the same run: rows/s of each and the share.
2. **Nightly attribution.** ``devtools.largeorg`` writes ``--deliverables`` deliverables
   (and events to hang touches on); ``--days`` days of search rows (one per deliverable and
   day) and CRM touches (three per deliverable, 5 % of deliverables with none: attribution
   mismatches, each a ticket through the owner map) go in by COPY; then
   ``attribution.compute_day`` runs for each day, as the nightly job does: seconds per day
   (median) and in all.
3. **Export out.** ``exports.run_export`` for the last day, CSV and Parquet: rows/s, then
   the same export again under tracemalloc for the peak of Python memory it allocates.
"""

import argparse
import os
import random
import statistics
import sys
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from support import flush_redis, reset_database  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/meshline_bench_reporting"
DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/10"
LAST_DAY = date(2026, 11, 29)


def setup(database_url: str, broker_url: str, media: str) -> None:
    os.environ["DATABASE_URL"] = database_url
    os.environ["CELERY_BROKER_URL"] = broker_url
    os.environ["MESHLINE_MEDIA_ROOT"] = media
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshline.settings")
    flush_redis(broker_url)
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.MEDIA_ROOT = media
    call_command("migrate", interactive=False, verbosity=0)


def copy(table: str, columns: list[str], rows) -> int:
    from django.db import connection

    count = 0
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    with connection.cursor() as cursor, cursor.cursor.copy(statement) as out:
        for row in rows:
            out.write_row(row)
            count += 1
    return count


def search_ingest(org, rows: int) -> dict:
    """One site's day through the import, then the same rows by raw COPY."""
    from django.db import connection, transaction
    from django_scopes import scope

    from deliveries.models import Deliverable
    from reporting.services import intake

    with scope(organization=org):
        urls = list(
            Deliverable.objects.filter(
                organization=org, url__startswith="https://client0."
            ).values_list("url", flat=True)
        )
    rng = random.Random(13)
    pages = urls + [f"https://client0.example/blog/{n}" for n in range(rows - len(urls))]

    def export():
        for n, url in enumerate(pages[:rows], start=2):
            impressions = rng.randint(0, 5000)
            yield (
                n,
                {
                    "page": url,
                    "impressions": str(impressions),
                    "clicks": str(impressions // rng.randint(10, 80)),
                    "position": f"{rng.uniform(1, 40):.1f}",
                },
            )

    with scope(organization=org):
        began = time.perf_counter()
        result = intake.import_search_day(
            org, site="client0.example", day=LAST_DAY + timedelta(days=1), rows=export()
        )
        imported = time.perf_counter() - began
    rng = random.Random(13)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute(
                "CREATE TEMPORARY TABLE bench_raw (url text, impressions bigint, clicks bigint, "
                "position double precision) ON COMMIT DROP"
            )
        began = time.perf_counter()
        copy(
            "bench_raw",
            ["url", "impressions", "clicks", "position"],
            (
                (row["page"], int(row["impressions"]), int(row["clicks"]), float(row["position"]))
                for _n, row in export()
            ),
        )
        raw = time.perf_counter() - began
    return {
        "rows": result.rows,
        "matched": result.matched,
        "import_s": imported,
        "raw_s": raw,
    }


def history(org, days: int) -> dict:
    """Search rows per deliverable and day, and touches, written by COPY."""
    from django_scopes import scope

    from deliveries.models import Deliverable, Event
    from reporting.models import CrmTouch, SearchPerformance

    rng = random.Random(29)
    with scope(organization=org):
        deliverables = list(
            Deliverable.objects.filter(organization=org).values_list("pk", "url").order_by("pk")
        )
        events = {}
        for deliverable_id, event_id in Event.objects.filter(
            organization=org, deliverable__isnull=False
        ).values_list("deliverable_id", "id"):
            events.setdefault(deliverable_id, event_id)  # one event each to hang a touch on
    first = LAST_DAY - timedelta(days=days - 1)
    as_of = datetime.now(tz=UTC)
    began = time.perf_counter()
    searched = copy(
        SearchPerformance._meta.db_table,
        [
            "organization_id",
            "site",
            "date",
            "url",
            "deliverable_id",
            "impressions",
            "clicks",
            "ctr",
            "position",
            "as_of",
        ],
        (
            (
                org.pk,
                url.split("/")[2],
                first + timedelta(days=d),
                url,
                pk,
                (impressions := rng.randint(10, 3000)),
                (clicks := impressions // rng.randint(10, 80)),
                clicks / impressions,
                round(rng.uniform(1, 40), 1),
                as_of,
            )
            for d in range(days)
            for pk, url in deliverables
        ),
    )
    touched = copy(
        CrmTouch._meta.db_table,
        [
            "organization_id",
            "touch_id",
            "event_id",
            "deliverable_id",
            "touch_type",
            "contact_id",
            "landing_url",
            "utm",
            "occurred_at",
        ],
        (
            (
                org.pk,
                f"T-{pk}",
                events[pk],
                pk,
                rng.choice(["visit", "mql", "sql"]),
                f"contact-{rng.randint(1, 5000)}",
                url,
                "{}",
                datetime.combine(first, datetime.min.time(), tzinfo=UTC)
                + timedelta(days=rng.randint(0, days - 1), hours=12),
            )
            for n, (pk, url) in enumerate(deliverables)
            if n % 20 and pk in events  # every 20th deliverable never touched
        ),
    )
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {"search_rows": searched, "touches": touched, "seconds": time.perf_counter() - began}


def attribute(org, days: int) -> dict:
    from django_scopes import scope

    from reporting.services import attribution

    per_day, facts, opened = [], 0, 0
    first = LAST_DAY - timedelta(days=days - 1)
    with scope(organization=org):
        for d in range(days):
            began = time.perf_counter()
            result = attribution.compute_day(org, first + timedelta(days=d))
            per_day.append(time.perf_counter() - began)
            facts += result.facts
            opened += result.mismatches_opened
    return {"per_day": per_day, "facts": facts, "opened": opened}


def export(org) -> dict:
    from django_scopes import scope

    from reporting.services import exports

    found = {}
    with scope(organization=org):
        for fmt in ("csv", "parquet"):
            # Timed without tracemalloc, which slows allocation-heavy Python several
            # times; then re-run (it replaces the day's file) with it for the peak.
            began = time.perf_counter()
            done = exports.run_export(org, LAST_DAY, fmt)
            seconds = time.perf_counter() - began
            tracemalloc.start()
            exports.run_export(org, LAST_DAY, fmt)
            _current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            found[fmt] = (done.rows, seconds, peak, done.size_bytes)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL)
    parser.add_argument("--deliverables", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--rows", type=int, default=100_000, help="search export rows")
    parser.add_argument("--media", default="/tmp/meshline-bench-reporting-media")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()

    reset_database(args.database_url, args.force)
    setup(args.database_url, args.broker_url, args.media)
    from devtools import largeorg

    began = time.perf_counter()
    built = largeorg.generate(
        "bench-reporting",
        events=args.deliverables * 2,
        deliverables=args.deliverables,
        tickets=0,
        evaluations=0,
        log=lambda *_: None,
    )
    org = built["organization"]
    print(f"setup: {args.deliverables:,} deliverables in {time.perf_counter() - began:.1f} s")

    ingest = search_ingest(org, args.rows)
    rate, raw = ingest["rows"] / ingest["import_s"], ingest["rows"] / ingest["raw_s"]
    print(f"search export in ({ingest['rows']:,} rows, {ingest['matched']:,} matched):")
    print(f"  import    {rate:10,.0f} rows/s  ({ingest['import_s']:.2f} s)")
    print(f"  raw COPY  {raw:10,.0f} rows/s  ({ingest['raw_s']:.2f} s)")
    print(f"  share     {rate / raw:10.1%} of raw COPY")

    written = history(org, args.days)
    print(
        f"history: {written['search_rows']:,} search rows and {written['touches']:,} touches "
        f"by COPY in {written['seconds']:.1f} s"
    )
    result = attribute(org, args.days)
    total = sum(result["per_day"])
    print(f"nightly attribution, {args.deliverables:,} deliverables x {args.days} days:")
    print(
        f"  {total:.1f} s in all, median {statistics.median(result['per_day']):.2f} s a day, "
        f"first day {result['per_day'][0]:.2f} s; {result['facts']:,} facts; "
        f"{result['opened']:,} mismatch tickets opened over the days"
    )
    for fmt, (rows, seconds, peak, size) in export(org).items():
        print(
            f"export {fmt:8s} {rows:,} rows in {seconds:.2f} s ({rows / seconds:,.0f} rows/s), "
            f"{size / 1e6:.1f} MB, Python peak {peak / 1e6:.1f} MB"
        )
    flush_redis(args.broker_url)


if __name__ == "__main__":
    main()
