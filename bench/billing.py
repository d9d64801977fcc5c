#!/usr/bin/env python
"""Billing benchmark: what overrun detection costs on the processing path, and invoicing.

Run from the repository root (see bench/README.md)::

    .venv/bin/python bench/billing.py                         # about 3 minutes
    .venv/bin/python bench/billing.py --events 2000 --clients 200 --items 100

It resets a dedicated PostgreSQL database (meshline_bench_billing), migrates it and builds
one organization with two clients of 100 deliverables each: ``scoped`` has a client-wide
agreement in force (low limits for revisions, assets, approved assets, pages and hours,
with a rate for each, so the work soon goes beyond it), ``unscoped`` has none (and
unscoped work is not flagged, so it costs only the look-up). Then, in this process:

1. detection: ``--events`` billable events per client (change.requested, asset.uploaded,
   asset.approved, page.published without HTML, time.logged: every clause) are ingested
   through ``ingest_events`` and processed through ``process_batch`` in batches of 200,
   the client without an agreement first, then the scoped one, in two halves (the second
   half's usage counts run over the first half's events too). Reported: events/s and
   queries per event for each, and the ratio: what detection adds per event.
2. invoicing: ``--clients`` clients with one agreement each and ``--items`` approved items
   each (written with bulk_create; their detection is part 1's subject), then one
   ``draft_invoice`` + ``finalize`` per client, timed. Reported: total, invoices/s, median
   and p95 per invoice, and the check that each invoice holds its client's items.

Processing is in this process, not a worker: this measures the work, not the queue.
Celery publishes to the in-process ``memory://`` broker; nothing leaves the machine.
"""

import argparse
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from support import reset_database  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/meshline_bench_billing"
START = datetime(2026, 9, 1, 9, 0, tzinfo=UTC)
LIMITS = {"revisions": 2, "assets": 5, "approved_assets": 5, "pages": 2, "hours": 10}
RATES = {
    "revisions": {"rate": "120.00", "unit": "revision"},
    "assets": {"rate": "60.00", "unit": "asset"},
    "approved_assets": {"rate": "30.00", "unit": "approved asset"},
    "pages": {"rate": "400.00", "unit": "page"},
    "hours": {"rate": "95.00", "unit": "hour"},
}
MIX = ["change.requested", "asset.uploaded", "asset.approved", "page.published", "time.logged"]
BATCH = 200


def setup_django(url: str) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "meshline.settings"
    os.environ["MESHLINE_DEBUG"] = "0"
    os.environ["MESHLINE_LOG_LEVEL"] = "WARNING"
    os.environ["MESHLINE_EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    os.environ["CELERY_BROKER_URL"] = ""  # the in-process memory:// broker
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "0"
    import django

    django.setup()
    from django.conf import settings

    assert settings.CELERY_BROKER_URL == "memory://", settings.CELERY_BROKER_URL


def organization_with_clients():
    from billing.models import BillingSettings
    from billing.services.agreements import AgreementTerms, record_agreement
    from deliveries.models import Client, Tier
    from meshline.services import create_organization

    organization, _ = create_organization("bench-billing", "Bench Billing")
    BillingSettings.objects.create(
        organization=organization,
        currency="EUR",
        tax_rate=Decimal("0.19"),
        second_approval_above=Decimal("1000000.00"),
        flag_unscoped_work=False,
    )
    clients = {
        name: Client.objects.create(
            organization=organization, client_id=name, name=name.title(), tier=Tier.STANDARD
        )
        for name in ("unscoped", "scoped")
    }
    record_agreement(
        organization,
        clients["scoped"],
        None,
        AgreementTerms(
            limits=LIMITS,
            rates=RATES,
            currency="EUR",
            valid_from=START - timedelta(days=1),
            accepted_by="cmo@scoped.example",
            accepted_at=START - timedelta(days=1),
        ),
    )
    return organization, clients


def event(client: str, n: int) -> dict:
    event_type = MIX[n % len(MIX)]
    payload = {
        "change.requested": {"summary": f"Change {n}", "requested_by": "client@example.com"},
        "asset.uploaded": {"asset_id": f"a-{n}", "filename": f"hero-{n}.jpg", "size_bytes": 1000},
        "asset.approved": {"asset_id": f"a-{n}", "approved_by": "cd@example.com"},
        "page.published": {"url": f"https://{client}.example/lp/{n % 100}"},
        "time.logged": {"hours": 1.5, "person": "dev@agency.example"},
    }[event_type]
    return {
        "event_type": event_type,
        "deliverable_id": f"{client.upper()}-{n % 100:03d}",
        "client_id": client,
        "idempotency_key": f"{client}-{n}",
        "actor": {"role": "pm", "id": "asana"},
        "occurred_at": (START + timedelta(seconds=n)).isoformat(),
        "payload": payload,
    }


def detection(organization, count: int) -> dict:
    """Ingest and process ``count`` events per client; events/s and queries per event."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django_scopes import scope

    from billing.models import BillableItem
    from deliveries.services import ingest_events
    from deliveries.services.processing import process_batch

    def run(client: str, numbers: range) -> tuple[float, float]:
        bodies = [event(client, n) for n in numbers]
        ids = []
        for start in range(0, len(bodies), 500):
            results = ingest_events(organization, bodies[start : start + 500])
            assert all(r.status == "accepted" for r in results), results[0].errors
            ids += [r.event_id for r in results]
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as queries:
            for start in range(0, len(ids), BATCH):
                done = process_batch(organization, ids[start : start + BATCH])
                assert done.failed == 0, done
        elapsed = time.perf_counter() - started
        return len(ids) / elapsed, len(queries) / len(ids)

    half = count // 2
    with scope(organization=organization):
        unscoped = run("unscoped", range(count))
        first = run("scoped", range(half))
        second = run("scoped", range(half, count))
        items = BillableItem.objects.filter(organization=organization).count()
    return {
        "unscoped": unscoped,
        "scoped_first": first,
        "scoped_second": second,
        "items": items,
    }


def invoicing(organization, clients: int, items: int) -> dict:
    """``clients`` clients with ``items`` approved items each, then one invoice each."""
    from django_scopes import scope

    from billing.models import BillableItem, Invoice, ItemStatus
    from billing.services import invoices
    from billing.services.agreements import AgreementTerms, record_agreement
    from deliveries.models import Client, Deliverable, Tier
    from owners.services.tickets import Actor

    finance = Actor("user", "finance@bench.example")
    period = (START, START + timedelta(days=30))
    with scope(organization=organization):
        made = Client.objects.bulk_create(
            Client(
                organization=organization,
                client_id=f"inv-{n:04d}",
                name=f"Invoiced {n}",
                tier=Tier.STANDARD,
            )
            for n in range(clients)
        )
        deliverables = Deliverable.objects.bulk_create(
            Deliverable(organization=organization, client=c, deliverable_id=f"{c.client_id}-LP")
            for c in made
        )
        agreements = [
            record_agreement(
                organization,
                client,
                None,
                AgreementTerms(
                    limits={"revisions": 1},
                    rates={"revisions": RATES["revisions"]},
                    currency="EUR",
                    valid_from=START - timedelta(days=1),
                    accepted_by="buyer@example.com",
                    accepted_at=START - timedelta(days=1),
                ),
            )
            for client in made
        ]
        rows = []
        for client, deliverable, agreement in zip(made, deliverables, agreements, strict=True):
            for n in range(items):
                at = START + timedelta(hours=n)
                rows.append(
                    BillableItem(
                        organization=organization,
                        agreement=agreement,
                        client=client,
                        deliverable=deliverable,
                        clause="revisions",
                        description=f"Revision {n + 2} beyond the 1 included",
                        quantity=Decimal("1.00"),
                        proposed_quantity=Decimal("1.00"),
                        unit="revision",
                        rate=Decimal("120.00"),
                        amount=Decimal("120.00"),
                        currency="EUR",
                        occurred_at=at,
                        proposed_at=at,
                        idempotency_key=f"bench:{client.client_id}:{n}",
                        status=ItemStatus.APPROVED,
                        approver=finance.id,
                        approved_at=at,
                    )
                )
        BillableItem.objects.bulk_create(rows, batch_size=5000)

        per_invoice = []
        started = time.perf_counter()
        for client in made:
            began = time.perf_counter()
            draft = invoices.draft_invoice(organization, client, *period, finance)
            invoices.finalize(draft, finance)
            per_invoice.append(time.perf_counter() - began)
        total = time.perf_counter() - started
        final = Invoice.objects.filter(organization=organization, client__in=made)
        totals = set(final.values_list("subtotal", flat=True))
        expected = Decimal("120.00") * items
        assert final.count() == clients and totals == {expected}, (final.count(), totals)
        assert not BillableItem.objects.filter(
            organization=organization, client__in=made, status=ItemStatus.APPROVED
        ).exists()
    per_invoice.sort()
    return {
        "invoices": clients,
        "items_each": items,
        "seconds": total,
        "per_second": clients / total,
        "median_ms": statistics.median(per_invoice) * 1000,
        "p95_ms": per_invoice[int(0.95 * (len(per_invoice) - 1))] * 1000,
    }


def pdf_rendering(organization, sample: int) -> dict:
    """Render ``sample`` of the issued invoices as PDF (what a download costs), and the
    agreement of the first: median and p95 milliseconds, and the size."""
    from django_scopes import scope

    from billing.models import Invoice
    from billing.services import pdf

    with scope(organization=organization):
        issued = list(
            Invoice.objects.filter(organization=organization, status="final")
            .select_related("client", "organization")
            .order_by("number")[:sample]
        )
        lines = issued[0].lines.count() if issued else 0
        took, sizes = [], []
        for invoice in issued:
            began = time.perf_counter()
            sizes.append(len(pdf.invoice_pdf(invoice)))
            took.append(time.perf_counter() - began)
    took.sort()
    return {
        "invoices": len(issued),
        "lines": lines,
        "median_ms": statistics.median(took) * 1000,
        "p95_ms": took[int(0.95 * (len(took) - 1))] * 1000,
        "kb": statistics.median(sizes) / 1024,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=4000, help="events per client")
    parser.add_argument("--clients", type=int, default=1000, help="clients to invoice")
    parser.add_argument("--items", type=int, default=100, help="approved items per client")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--force", action="store_true", help="reset a database without 'bench'")
    args = parser.parse_args()

    reset_database(args.database_url, args.force)
    setup_django(args.database_url)
    from django.core.management import call_command

    call_command("migrate", interactive=False, verbosity=0)
    from django_scopes import scopes_disabled

    with scopes_disabled():  # one organization, made here: nothing to keep apart
        organization, _clients = organization_with_clients()

    found = detection(organization, args.events)
    print(f"\noverrun detection, {args.events:,} billable events per client (in-process)")
    print(f"{'':44}{'events/s':>10}{'queries/event':>15}")
    rows = [
        ("no agreement in force", found["unscoped"]),
        ("agreement in force, first half", found["scoped_first"]),
        ("agreement in force, second half", found["scoped_second"]),
    ]
    for label, (rate, queries) in rows:
        print(f"{label:44}{rate:>10,.0f}{queries:>15.1f}")
    print(
        f"detection costs {found['unscoped'][0] / found['scoped_first'][0]:.2f}x the events/s "
        f"without (first half), {found['unscoped'][0] / found['scoped_second'][0]:.2f}x "
        f"(second half); billable items proposed: {found['items']:,}"
    )

    made = invoicing(organization, args.clients, args.items)
    print(f"\ninvoicing {made['invoices']:,} clients x {made['items_each']} approved items")
    print(f"  total {made['seconds']:.1f} s, {made['per_second']:.1f} invoices/s")
    print(
        f"  per invoice (draft + finalize): median {made['median_ms']:.0f} ms, "
        f"p95 {made['p95_ms']:.0f} ms"
    )
    rendered = pdf_rendering(organization, min(args.clients, 50))
    print(
        f"\ninvoice PDF ({rendered['invoices']} invoices of {rendered['lines']} lines, "
        f"DejaVu if installed): median {rendered['median_ms']:.0f} ms, "
        f"p95 {rendered['p95_ms']:.0f} ms, {rendered['kb']:.0f} KB"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
