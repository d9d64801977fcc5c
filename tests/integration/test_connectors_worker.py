"""A vendor webhook through the deployed shape: /hooks, PostgreSQL, Redis, a real worker.

The request only stores the raw delivery; the worker maps it to page.published, processes
it, evaluates the gate and opens the ticket.
"""

import json

import pytest
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from connectors import services, verify
from connectors.models import ConnectorKind, InboundDelivery, InboxState
from gates.models import CheckName
from owners.models import Ticket
from tests.connectors.conftest import fixture
from tests.gates.conftest import make_gate, owner_map  # noqa: F401 (fixtures)
from tests.integration.conftest import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.postgres, pytest.mark.redis]


@pytest.mark.usefixtures("owner_map")
def test_wordpress_webhook_becomes_a_gated_event_and_a_ticket_in_the_worker(
    worker, org_a, client_acme, client, request
):
    request.getfixturevalue("make_gate")(CheckName.SCHEMA_CHECK)
    with scope(organization=org_a):
        endpoint, secret = services.create_endpoint(
            org_a, name="Acme WordPress", kind=ConnectorKind.WORDPRESS, client=client_acme
        )
    body = json.dumps(fixture("wordpress_post_published.json")).encode()
    headers = verify.sign(endpoint.kind, secret, "wp-worker-1", body, timezone.now())
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}

    response = client.post(
        f"/hooks/{endpoint.public_id}", data=body, content_type="application/json", **meta
    )

    assert response.status_code == 202

    def ticket():
        with scopes_disabled():
            return Ticket.objects.filter(deliverable__deliverable_id="LP-77").first()

    opened = wait_until(ticket, 30, message="a gate ticket for LP-77 opened by the worker")
    assert opened.organization_id == org_a.pk
    with scopes_disabled():
        delivery = InboundDelivery.objects.get(vendor_delivery_id="wp-worker-1")
    assert delivery.state == InboxState.MAPPED
    log = worker.log_since_mark()
    # The gate's verdict (and its ticket) came from the worker's processing batch.
    # The inbound mapping stores one event: its wake-up task processes it.
    for task in ("connectors.map_inbound", "deliveries.process_pending_events"):
        assert task in log, log[-2000:]
