"""The demo organization: realistic clients, deliverables and a few weeks of events.

Event times are anchored to the organization's creation, and idempotency keys are fixed,
so running the seed again changes nothing in the trail (every event comes back as a
duplicate) while users, passwords and clients are brought back to their demo values.
"""

import random
from datetime import timedelta

from django_scopes import scope

from deliveries.models import Client, EventProcessing, ProcessingStatus, Tier
from deliveries.services import ingest_events, process_event
from deliveries.services.ingest import Status
from meshline import extensions
from meshline.models import ApiKey, Role
from meshline.services import create_organization, create_user

DEMO_SLUG = "demo"
DEMO_TIMEZONE = "Europe/Berlin"
DEMO_NAME = "Northwind Digital"
DEMO_PASSWORD = "meshline-demo"
DEMO_USERS = [
    ("admin@northwind.example", Role.ADMIN),
    ("am@northwind.example", Role.ACCOUNT_MANAGER),
    ("finance@northwind.example", Role.FINANCE),
    ("viewer@northwind.example", Role.VIEWER),
]
DEMO_CLIENTS = [
    ("acme", "Acme Outdoor", Tier.ENTERPRISE),
    ("globex", "Globex Health", Tier.PREMIUM),
    ("initech", "Initech Software", Tier.STANDARD),
    ("umbrella", "Umbrella Foods", Tier.STANDARD),
]
TOPICS = [
    "spring-sale",
    "trail-shoes",
    "telehealth",
    "pricing",
    "careers",
    "recipes",
    "summer-camp",
    "security",
    "webinar",
    "case-study",
    "gift-guide",
    "newsletter",
]

PAGE_HTML = """<!doctype html><html><head><title>{title}</title>
<meta name="description" content="{title}: everything you need to know, from the {client} team.">
<link rel="canonical" href="{url}">
<meta property="og:title" content="{title}"><meta property="og:description" content="{title}">
<meta property="og:image" content="{url}/cover.jpg">
{jsonld}</head><body><h1>{title}</h1><p>{title} for {client} customers.</p></body></html>"""
JSONLD = (
    '<script type="application/ld+json">{{"@context": "https://schema.org", '
    '"@type": "WebPage", "name": "{title}", "url": "{url}"}}</script>'
)


def _event(event_type, ref, client, at, key, payload, actor=("cms", "wp-publisher")):
    return {
        "event_type": event_type,
        "deliverable_id": ref,
        "client_id": client,
        "idempotency_key": key,
        "actor": {"role": actor[0], "id": actor[1]},
        "occurred_at": at.isoformat(),
        "payload": payload,
    }


def demo_events(anchor) -> list[dict]:
    """A deterministic few weeks of lifecycle events for the demo clients."""
    rng = random.Random(2041)
    events = []
    number = 2000
    for client_ref, client_name, _tier in DEMO_CLIENTS:
        for topic in rng.sample(TOPICS, 6):
            number += 1
            kind = rng.choice(["landing_page", "landing_page", "seo_page", "asset", "brief"])
            prefix = {"landing_page": "LP", "seo_page": "SEO", "asset": "AS", "brief": "BR"}[kind]
            ref = f"{prefix}-{number}"
            title = f"{client_name} {topic.replace('-', ' ').title()}"
            url = f"https://{client_ref}.example/{topic}"
            at = anchor + timedelta(hours=rng.randint(0, 240))
            steps = [
                "intake.received",
                "scope.accepted",
                "asset.uploaded",
                "asset.approved",
                "page.published",
                "sitemap.submitted",
            ]
            if kind in {"asset", "brief"}:
                steps = steps[: rng.randint(1, 4)]
            else:
                steps = steps[: rng.randint(2, 6)]
            for step in steps:
                at += timedelta(hours=rng.randint(2, 30))
                key = f"demo-{ref}-{step}"
                if step == "intake.received":
                    payload = {
                        "deliverable_type": kind,
                        "title": title,
                        "requested_by": f"marketing@{client_ref}.example",
                    }
                    actor = ("pm_tool", "asana")
                elif step == "scope.accepted":
                    payload = {
                        "limits": {"revisions": 2, "asset_size_mb": 10, "hours": 12},
                        "signed_by": f"cmo@{client_ref}.example",
                    }
                    actor = ("account_manager", "am@northwind.example")
                elif step == "asset.uploaded":
                    payload = {
                        "asset_id": f"{ref}-hero",
                        "filename": f"{topic}-hero.jpg",
                        "size_bytes": rng.randint(200_000, 9_000_000),
                        "mime_type": "image/jpeg",
                        "revision": 1,
                    }
                    actor = ("dam", "bynder")
                elif step == "asset.approved":
                    payload = {
                        "asset_id": f"{ref}-hero",
                        "approved_by": f"brand@{client_ref}.example",
                    }
                    actor = ("client", f"brand@{client_ref}.example")
                elif step == "page.published":
                    jsonld = JSONLD.format(title=title, url=url) if rng.random() > 0.3 else ""
                    payload = {
                        "url": url,
                        "schema_version": 2,
                        "html": PAGE_HTML.format(
                            title=title, url=url, client=client_name, jsonld=jsonld
                        ),
                    }
                    actor = ("cms", "wp-publisher")
                else:
                    payload = {
                        "sitemap_url": f"https://{client_ref}.example/sitemap.xml",
                        "urls": [url],
                    }
                    actor = ("seo_tool", "sitemap-bot")
                events.append(_event(step, ref, client_ref, at, key, payload, actor))
            if kind in {"landing_page", "seo_page"} and len(steps) >= 5:
                for day in range(3):
                    date = (at + timedelta(days=day + 1)).date().isoformat()
                    impressions = rng.randint(100, 5000)
                    events.append(
                        _event(
                            "search_export.processed",
                            ref,
                            client_ref,
                            at + timedelta(days=day + 1),
                            f"demo-{ref}-search-{date}",
                            {
                                "date": date,
                                "impressions": impressions,
                                "clicks": impressions // rng.randint(15, 60),
                            },
                            ("search_console", "gsc-export"),
                        )
                    )
    return events


def seed_demo() -> dict:
    """Create or refresh the demo organization. Returns what to print for the operator."""
    organization, _created = create_organization(DEMO_SLUG, DEMO_NAME)
    if organization.timezone != DEMO_TIMEZONE:  # a Berlin agency, like its business calendar
        organization.timezone = DEMO_TIMEZONE
        organization.save(update_fields=["timezone"])
    users = {
        email: create_user(email, organization, role, DEMO_PASSWORD) for email, role in DEMO_USERS
    }
    anchor = organization.created_at.replace(minute=0, second=0, microsecond=0) - timedelta(days=14)
    with scope(organization=organization):
        for ref, name, tier in DEMO_CLIENTS:
            Client.objects.update_or_create(
                organization=organization, client_id=ref, defaults={"name": name, "tier": tier}
            )
        for configure in extensions.demo_configure:
            configure(organization, users)
        events = demo_events(anchor)
        for more in extensions.demo_events:
            events += more(organization)
        results = []
        for start in range(0, len(events), 500):
            results += ingest_events(organization, events[start : start + 500])
        # Process in-process too, so the demo shows lifecycle states even with no worker.
        pending = EventProcessing.objects.filter(
            organization=organization, status=ProcessingStatus.PENDING
        ).values_list("event_id", flat=True)
        for event_id in list(pending):
            process_event(event_id)
        for after in extensions.demo_after_events:
            after(organization)
        api_key = None
        if not ApiKey.objects.filter(organization=organization, name="demo-cli").exists():
            _key, api_key = ApiKey.generate(organization, "demo-cli")
    return {
        "organization": organization,
        "accepted": sum(r.status == Status.ACCEPTED for r in results),
        "duplicates": sum(r.status == Status.DUPLICATE for r in results),
        "rejected": [r for r in results if r.status == Status.REJECTED],
        "api_key": api_key,
    }
