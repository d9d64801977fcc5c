"""Contentful: its request verification (signature vectors) and Entry.publish mapping."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from connectors import mapping, services, verify
from connectors.models import ConnectorKind, InboundDelivery, InboundEndpoint, RejectReason
from deliveries.models import Event
from tests.connectors.conftest import fixture

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PUBLISH = "ContentManagement.Entry.publish"
PATH = "/hooks/x"
BODY = json.dumps(fixture("contentful_entry_publish.json")).encode()


def signed(secret, *, body=BODY, at=NOW, topic=PUBLISH, path=PATH):
    return verify.sign(ConnectorKind.CONTENTFUL, secret, topic, body, at, path=path)


def check(secrets, headers, body=BODY, path=PATH):
    return verify.verify(ConnectorKind.CONTENTFUL, secrets, headers, body, NOW, path=path)


def test_the_secret_is_what_contentful_accepts():
    secret = InboundEndpoint.new_secret(ConnectorKind.CONTENTFUL)
    assert len(secret) == 64 and set(secret) <= set("0123456789abcdef")


def test_valid_request_gives_topic_entry_and_revision_as_the_delivery_id():
    secret = InboundEndpoint.new_secret(ConnectorKind.CONTENTFUL)
    assert check([secret], signed(secret)) == f"{PUBLISH}:5KsDBWseXY6QegucYAoacS:3"


def test_signature_is_hex_hmac_of_the_canonical_request():
    import hashlib
    import hmac

    secret = "s" * 64
    headers = signed(secret)
    canonical = (
        f"POST\n{PATH}\nx-contentful-signed-headers:{verify.SIGNED_BY_CONTENTFUL};"
        f"x-contentful-timestamp:{int(NOW.timestamp() * 1000)};x-contentful-topic:{PUBLISH}\n"
    ).encode() + BODY
    expected = hmac.new(secret.encode(), canonical, hashlib.sha256).hexdigest()
    assert headers["x-contentful-signature"] == expected


@pytest.mark.parametrize(
    "case,reason",
    [
        ("tampered", RejectReason.BAD_SIGNATURE),
        ("wrong_secret", RejectReason.BAD_SIGNATURE),
        ("other_path", RejectReason.BAD_SIGNATURE),
        ("topic_swapped", RejectReason.BAD_SIGNATURE),
        ("stale", RejectReason.STALE),
        ("missing", RejectReason.MISSING_HEADERS),
        ("timestamp_unsigned", RejectReason.MISSING_HEADERS),
        ("no_sys", RejectReason.INVALID_JSON),
    ],
)
def test_refused_vectors(case, reason):
    secret = InboundEndpoint.new_secret(ConnectorKind.CONTENTFUL)
    body, headers, path = BODY, signed(secret), PATH
    if case == "tampered":
        body = BODY.replace(b"LP-90", b"LP-91")
    elif case == "wrong_secret":
        headers = signed(InboundEndpoint.new_secret(ConnectorKind.CONTENTFUL))
    elif case == "other_path":
        path = "/hooks/y"
    elif case == "topic_swapped":
        headers["x-contentful-topic"] = "ContentManagement.Entry.unpublish"
    elif case == "stale":
        headers = signed(secret, at=NOW - timedelta(minutes=6))
    elif case == "missing":
        del headers["x-contentful-signature"]
    elif case == "timestamp_unsigned":
        headers["x-contentful-signed-headers"] = "x-contentful-topic"
    elif case == "no_sys":
        body = b'{"fields": {}}'
        headers = signed(secret, body=body)
    with pytest.raises(verify.Refused) as refused:
        check([secret], headers, body, path)
    assert refused.value.reason == reason


def test_rotated_secret_verifies_during_the_overlap(org_a, client_acme):
    with scope(organization=org_a):
        endpoint, old = services.create_endpoint(
            org_a, name="CF", kind=ConnectorKind.CONTENTFUL, client=client_acme
        )
        new = endpoint.rotate_secret(NOW)
    assert len(new) == 64 and new != old
    for secret in (old, new):
        assert check(endpoint.secrets_at(NOW), signed(secret))
    with pytest.raises(verify.Refused):
        check(endpoint.secrets_at(NOW + timedelta(days=2)), signed(old))


@pytest.fixture
def contentful_endpoint(org_a, client_acme):
    with scope(organization=org_a):
        endpoint, _ = services.create_endpoint(
            org_a,
            name="Acme Contentful",
            kind=ConnectorKind.CONTENTFUL,
            client=client_acme,
            mapping_config={"url_template": "https://acme.example/lp/{fields.slug.en-US}"},
        )
    return endpoint


def test_entry_publish_maps_to_page_published(contentful_endpoint):
    headers = {"x-contentful-topic": PUBLISH}
    [event] = mapping.map_payload(
        contentful_endpoint, fixture("contentful_entry_publish.json"), "id", headers
    )
    assert event["event_type"] == "page.published"
    assert event["deliverable_id"] == "LP-90"
    assert event["payload"] == {
        "url": "https://acme.example/lp/summit-parka",
        "schema_version": mapping.PAYLOAD_SCHEMA_VERSION,
    }
    assert event["occurred_at"] == "2026-11-21T10:00:00.000Z"
    assert event["idempotency_key"].endswith(":5KsDBWseXY6QegucYAoacS:3")
    unpublish = {"x-contentful-topic": "ContentManagement.Entry.unpublish"}
    assert (
        mapping.map_payload(
            contentful_endpoint, fixture("contentful_entry_publish.json"), "i", unpublish
        )
        == []
    )


def test_a_template_path_missing_from_the_entry_says_so(contentful_endpoint):
    contentful_endpoint.mapping = {"url_template": "https://acme.example/{fields.path.en-US}"}
    with pytest.raises(mapping.MappingError, match=r"fields\.path\.en-US"):
        mapping.map_payload(contentful_endpoint, fixture("contentful_entry_publish.json"), "i")
    contentful_endpoint.mapping = {}
    with pytest.raises(mapping.MappingError, match="url_template"):
        mapping.map_payload(contentful_endpoint, fixture("contentful_entry_publish.json"), "i")


def test_a_contentful_webhook_through_hooks_becomes_one_event(
    org_a, contentful_endpoint, client, django_capture_on_commit_callbacks
):
    path = f"/hooks/{contentful_endpoint.public_id}"
    headers = signed(contentful_endpoint.secret, at=timezone.now(), path=path)
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    for _ in range(2):  # Contentful retries the same revision: stored and mapped once
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                path,
                data=BODY,
                content_type="application/vnd.contentful.management.v1+json",
                **meta,
            )
        assert response.status_code in (200, 202)
    with scopes_disabled():
        [delivery] = InboundDelivery.objects.all()
    assert delivery.headers["x-contentful-topic"] == PUBLISH
    with scope(organization=org_a):
        [event] = Event.objects.filter(organization=org_a).select_related("deliverable")
    assert event.deliverable.deliverable_id == "LP-90"
