"""Demo data: a WordPress endpoint for Acme, one published post through it, a subscription.

The subscription is paused (the demo makes no network calls): its deliveries queue, as
they would while an admin holds a receiver that is being fixed. Seeding again changes
nothing here.
"""

import json

from django.utils import timezone

from connectors import services, verify
from connectors.models import ConnectorKind, InboundEndpoint, Subscription
from deliveries.models import Client

POST = {
    "post_id": 4711,
    "post": {
        "ID": 4711,
        "post_author": "3",
        "post_date_gmt": "2026-11-02 09:00:00",
        "post_modified_gmt": "2026-11-02 09:00:00",
        "post_content": "<html><head><title>Spring launch</title></head><body><h1>Spring</h1></body></html>",
        "post_title": "Spring launch",
        "post_status": "publish",
        "post_name": "spring-launch",
        "post_type": "page",
    },
    "post_meta": {"meshline_deliverable_id": ["LP-WP-1"]},
    "post_permalink": "https://acme.example/lp/spring-launch",
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
    body = json.dumps(POST).encode()
    headers = verify.sign(endpoint.kind, endpoint.secret, "wp-demo-1", body, now)
    services.receive(
        endpoint.public_id,
        {k.lower(): v for k, v in headers.items()},
        body,
        content_type="application/json",
        now=now,
    )
