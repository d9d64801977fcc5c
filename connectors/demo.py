"""Demo data: a WordPress endpoint for Acme, one published post through it, a subscription.

The subscription is paused (the demo makes no network calls): its deliveries queue, as
they would while an admin holds a receiver that is being fixed. Seeding again changes
nothing here.
"""

import json
from datetime import UTC, datetime

from django.utils import timezone

from connectors import services, verify
from connectors.models import ConnectorKind, InboundEndpoint, Subscription
from deliveries.models import Client
from devtools.demo import JSONLD, PAGE_HTML


def _post(modified: datetime) -> dict:
    """A WP Webhooks post_update body for a page that passes the demo's gates."""
    url = "https://acme.example/lp/spring-launch"
    html = PAGE_HTML.format(
        title="Spring launch",
        client="Northwind",
        url=url,
        jsonld=JSONLD.format(title="Spring launch", url=url),
    )
    stamp = modified.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    return {
        "post_id": 4711,
        "post": {
            "ID": 4711,
            "post_author": "3",
            "post_date_gmt": stamp,
            "post_modified_gmt": stamp,
            "post_content": html,
            "post_title": "Spring launch",
            "post_status": "publish",
            "post_name": "spring-launch",
            "post_type": "page",
        },
        "post_meta": {"meshline_deliverable_id": ["LP-WP-1"]},
        "post_permalink": url,
    }


def configure(organization, users_by_email: dict) -> None:
    client = Client.objects.filter(organization=organization).order_by("pk").first()
    if client is None or InboundEndpoint.objects.filter(organization=organization).exists():
        return
    services.create_endpoint(
        organization, name="Acme WordPress", kind=ConnectorKind.WORDPRESS, client=client
    )
    Subscription.objects.create(
        organization=organization,
        name="Ops tooling (demo)",
        url="https://example.com/meshline-hooks",
        event_types=["ticket.opened", "page.published"],
        paused=True,
    )


def after_events(organization) -> None:
    """Post one signed WordPress publish through /hooks' service, as the plugin would."""
    endpoint = InboundEndpoint.objects.filter(organization=organization).first()
    if endpoint is None:
        return
    now = timezone.now()
    body = json.dumps(_post(now)).encode()
    headers = verify.sign(endpoint.kind, endpoint.secret, "wp-demo-1", body, now)
    services.receive(
        endpoint.public_id,
        {k.lower(): v for k, v in headers.items()},
        body,
        content_type="application/json",
        now=now,
    )
