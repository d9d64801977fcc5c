"""Connector fixtures: endpoints of organization A, signed posts to /hooks, vendor payloads."""

import json
from pathlib import Path

import pytest
from django.utils import timezone
from django_scopes import scope

from connectors import services, verify
from connectors.models import ConnectorKind
from tests.gates.conftest import make_gate, owner_map  # noqa: F401 (fixtures used here)
from tests.test_outbound import receiver  # noqa: F401 (a 127.0.0.1 receiver)

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text())


class StubEndpoint:
    """What a mapping reads of an endpoint, without the database: kind, options, id, client."""

    def __init__(self, kind: str, options=None, client_id="acme"):
        self.kind = kind
        self.mapping = options or {}
        self.public_id = "ep-1"
        self.client = type("Client", (), {"client_id": client_id})()


@pytest.fixture
def wp_endpoint(org_a, client_acme):
    """Organization A's WordPress endpoint for Acme, and its secret (as shown once)."""
    with scope(organization=org_a):
        return services.create_endpoint(
            org_a, name="Acme WordPress", kind=ConnectorKind.WORDPRESS, client=client_acme
        )


@pytest.fixture
def generic_endpoint(org_a, client_acme):
    mapping = {
        "event_type": "type",
        "deliverable_id": "data.asset.ref",
        "occurred_at": "data.approved_at",
        "idempotency_key": "data.id",
        "payload.asset_id": "data.asset.ref",
        "payload.approved_by": "data.approved_by",
    }
    with scope(organization=org_a):
        return services.create_endpoint(
            org_a,
            name="Acme DAM",
            kind=ConnectorKind.STANDARD,
            client=client_acme,
            mapping_config=mapping,
        )


@pytest.fixture
def post_hook(client, django_capture_on_commit_callbacks):
    """post_hook(endpoint, payload, secret=..., msg_id=..., at=..., **extra headers): a
    signed POST to /hooks/<endpoint>, running what its commit triggers (the mapping task,
    processing, gates, outbound sends) in this process."""

    def post(endpoint, payload, *, secret=None, msg_id="delivery-1", at=None, body=None, **extra):
        body = body if body is not None else json.dumps(payload).encode()
        # HubSpot signs the full URL it posts to.
        url = f"http://testserver/hooks/{endpoint.public_id}" if endpoint.kind == "hubspot" else ""
        headers = verify.sign(
            endpoint.kind, secret or endpoint.secret, msg_id, body, at or timezone.now(), url
        )
        meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
        meta.update(extra)
        meta.setdefault("content_type", "application/json")
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(f"/hooks/{endpoint.public_id}", data=body, **meta)

    return post
