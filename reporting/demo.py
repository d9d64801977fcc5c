"""Demo data for reporting: 90 days of search rows, CRM touches and revenue for the demo
clients' published pages, some pages with no touches at all (attribution mismatches),
then the nightly attribution for those days and one day's exports.

Anchored to the organization's creation and keyed by fixed idempotency keys, so running
the seed again replaces the search days and adds no touch or revenue twice.
"""

import random
from datetime import datetime, time, timedelta

from deliveries.models import Deliverable, EventProcessing, EventSource, ProcessingStatus
from deliveries.services import ingest_events, process_event
from reporting.models import DailyExport, ExportFormat
from reporting.normalize import normalize_url, site_of
from reporting.services import attribution, audits, exports, intake

DAYS = 90


def after_events(organization) -> None:
    rng = random.Random(1313)
    last = attribution.local_day(organization, organization.created_at)
    first = last - timedelta(days=DAYS - 1)
    pages = list(
        Deliverable.objects.filter(organization=organization)
        .exclude(url="")
        .select_related("client")
        .order_by("deliverable_id")
    )
    by_site: dict[str, list] = {}
    for page in pages:
        by_site.setdefault(site_of(normalize_url(page.url)), []).append(page)
    strength = {page.pk: rng.randint(50, 3000) for page in pages}
    for offset in range(DAYS):
        day = first + timedelta(days=offset)
        for site, site_pages in by_site.items():
            rows = []
            for page in site_pages:
                impressions = max(0, int(strength[page.pk] * rng.uniform(0.6, 1.4)))
                clicks = impressions // rng.randint(15, 60)
                rows.append(
                    {
                        "page": page.url + "/?utm_source=gsc",
                        "impressions": impressions,
                        "clicks": clicks,
                        "position": round(rng.uniform(1, 30), 1),
                    }
                )
            # A page Meshline has no deliverable for: reported as unmatched.
            rows.append({"page": f"https://{site}/blog/old-post", "impressions": 40, "clicks": 1})
            intake.import_search_day(
                organization, site=site, day=day, rows=enumerate(rows, start=2)
            )
    events = []
    for page in pages:
        if rng.random() < 0.3:
            continue  # no touch ever: this page becomes an attribution mismatch
        for n in range(rng.randint(3, 12)):
            day = first + timedelta(days=rng.randint(0, DAYS - 1))
            # Nothing dated after the seed runs: no touch, revenue or fact in the future.
            at = min(
                datetime.combine(day, time(rng.randint(8, 18)), tzinfo=organization.zone),
                organization.created_at,
            )
            kind = rng.choice(
                ["visit", "visit", "visit", "mql", "sql", "opportunity", "closed_won"]
            )
            contact = f"contact-{rng.randint(1, 40)}"
            events.append(
                _event(
                    page,
                    at,
                    f"demo-touch-{page.deliverable_id}-{n}",
                    "crm.touch",
                    {
                        "touch_id": f"T-{page.deliverable_id}-{n}",
                        "touch_type": kind,
                        "contact_id": contact,
                        "landing_url": page.url,
                        "utm": {"source": "google", "medium": "organic"},
                    },
                )
            )
            if kind == "closed_won":
                won = min(at + timedelta(days=rng.randint(1, 10)), organization.created_at)
                events.append(
                    _event(
                        page,
                        won,
                        f"demo-revenue-{page.deliverable_id}-{n}",
                        "revenue.recognized",
                        {
                            "reference": f"INV-{page.deliverable_id}-{n}",
                            "amount": rng.randint(5, 80) * 100,
                            "currency": "EUR",
                            "date": attribution.local_day(organization, won).isoformat(),
                            "contact_id": contact,
                        },
                    )
                )
    # As the CRM connector delivers them (webhook), not as the seed's own API submissions.
    for start in range(0, len(events), 500):
        ingest_events(organization, events[start : start + 500], source=EventSource.WEBHOOK)
    pending = EventProcessing.objects.filter(
        organization=organization, status=ProcessingStatus.PENDING
    ).values_list("event_id", flat=True)
    for event_id in list(pending):
        process_event(event_id)
    for offset in range(DAYS):
        attribution.compute_day(organization, first + timedelta(days=offset))
    # Last month's sample audit, one report already reviewed (drawn once: a re-seed finds it).
    month = audits.month_start(audits.month_start(last) - timedelta(days=1))
    audit = audits.draw(organization, month, now=organization.created_at)
    reviewed = audit.items.filter(position=1).first() if audit else None
    if reviewed is not None and reviewed.reviewed_at is None:
        from django.contrib.auth import get_user_model

        finance = get_user_model().objects.get(username="finance@northwind.example")
        audits.record_review(
            reviewed,
            finance,
            finding="confirmed",
            notes="Touches and revenue rows match the CRM export.",
            now=organization.created_at,
        )
    if DailyExport.objects.filter(organization=organization, date=last).exists():
        return  # seeded already: a second seed adds nothing, not even an export.generated
    for fmt in ExportFormat.values:
        exports.run_export(organization, last, fmt)


def _event(page, at, key, event_type, payload) -> dict:
    return {
        "event_type": event_type,
        "deliverable_id": page.deliverable_id,
        "client_id": page.client.client_id,
        "idempotency_key": key,
        "actor": {"role": "crm", "id": "hubspot"},
        "occurred_at": at.isoformat(),
        "payload": payload,
    }
