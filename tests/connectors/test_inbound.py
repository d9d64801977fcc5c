"""POST /hooks/<endpoint>: verified deliveries are stored raw before the 2xx and mapped in
a worker; each refusal is a specific 4xx that stores nothing but a (rate-limited) record."""

import json
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from connectors import services
from connectors.models import InboundDelivery, InboxState, RejectedDelivery, RejectReason
from deliveries.models import Event, EventSource
from tests.connectors.conftest import fixture


def _inbox():
    with scopes_disabled():
        return list(InboundDelivery.objects.all())


def _rejections():
    with scopes_disabled():
        return list(RejectedDelivery.objects.values_list("reason", flat=True))


def test_wordpress_publish_is_stored_raw_and_mapped_to_page_published(
    org_a, wp_endpoint, post_hook
):
    endpoint, _secret = wp_endpoint
    payload = fixture("wordpress_post_published.json")

    response = post_hook(endpoint, payload, msg_id="wp-delivery-1")

    assert response.status_code == 202
    [delivery] = _inbox()
    assert str(delivery.public_id) == response.json()["id"]
    assert json.loads(delivery.body) == payload
    assert delivery.vendor_delivery_id == "wp-delivery-1"
    assert delivery.headers["x-wp-webhook-id"] == "wp-delivery-1"
    assert delivery.state == InboxState.MAPPED
    with scope(organization=org_a):
        [event] = Event.objects.filter(organization=org_a).select_related("deliverable")
    assert str(event.pk) == delivery.event_ids[0]
    assert (event.event_type, event.deliverable.deliverable_id, event.source) == (
        "page.published",
        "LP-77",
        EventSource.WEBHOOK,
    )
    assert event.payload["url"] == "https://acme.example/lp/ridgeline-gtx"
    assert event.occurred_at.isoformat() == "2026-11-21T10:00:00+00:00"


def test_the_raw_row_is_committed_before_mapping_runs(org_a, wp_endpoint, client):
    """Without the after-commit callbacks (a broker down), the delivery is stored and
    waiting; the inbox sweep maps it later."""
    endpoint, _ = wp_endpoint
    body = json.dumps(fixture("wordpress_post_published.json")).encode()
    from connectors import verify

    headers = verify.sign(endpoint.kind, endpoint.secret, "d-1", body, timezone.now())
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    response = client.post(
        f"/hooks/{endpoint.public_id}", data=body, content_type="application/json", **meta
    )
    assert response.status_code == 202
    [delivery] = _inbox()
    assert delivery.state == InboxState.RECEIVED
    with scope(organization=org_a):
        assert services.sweep_inbox(org_a, timezone.now() + timedelta(minutes=2)) == 1
    [delivery] = _inbox()
    assert delivery.state == InboxState.MAPPED


def test_a_repeated_vendor_delivery_id_is_stored_once(org_a, wp_endpoint, post_hook):
    endpoint, _ = wp_endpoint
    payload = fixture("wordpress_post_published.json")
    assert post_hook(endpoint, payload, msg_id="same").status_code == 202
    again = post_hook(endpoint, payload, msg_id="same")
    assert again.status_code == 200
    assert again.json()["status"] == "duplicate"
    assert len(_inbox()) == 1
    with scope(organization=org_a):
        assert Event.objects.filter(organization=org_a).count() == 1


def test_the_same_post_sent_under_a_new_delivery_id_yields_its_event_once(
    org_a, wp_endpoint, post_hook
):
    """The vendor retried with a new id: two raw rows, one event (vendor-derived key)."""
    endpoint, _ = wp_endpoint
    payload = fixture("wordpress_post_published.json")
    post_hook(endpoint, payload, msg_id="first")
    post_hook(endpoint, payload, msg_id="second")
    assert len(_inbox()) == 2
    with scope(organization=org_a):
        assert Event.objects.filter(organization=org_a).count() == 1
    assert {d.state for d in _inbox()} == {InboxState.MAPPED}


@pytest.mark.parametrize(
    "case,status,code",
    [
        ("bad_signature", 401, RejectReason.BAD_SIGNATURE),
        ("stale", 400, RejectReason.STALE),
        ("missing_headers", 400, RejectReason.MISSING_HEADERS),
        ("content_type", 415, RejectReason.CONTENT_TYPE),
        ("oversize", 413, RejectReason.TOO_LARGE),
        ("disabled", 403, RejectReason.DISABLED),
        ("not_json", 400, RejectReason.INVALID_JSON),
        ("json_array", 400, RejectReason.INVALID_JSON),
    ],
)
def test_each_refusal_has_its_own_status_and_stores_only_a_rejection(
    case, status, code, org_a, wp_endpoint, post_hook, settings, row_counts
):
    endpoint, _ = wp_endpoint
    payload = fixture("wordpress_post_published.json")
    kwargs = {}
    if case == "bad_signature":
        kwargs["secret"] = "whsec_" + "A" * 32
    elif case == "stale":
        kwargs["at"] = timezone.now() - timedelta(minutes=10)
    elif case == "missing_headers":
        kwargs["HTTP_X_WP_WEBHOOK_SIGNATURE"] = ""
    elif case == "content_type":
        kwargs["content_type"] = "application/x-www-form-urlencoded"
    elif case == "oversize":
        settings.MESHLINE_HOOK_MAX_BYTES = 1024
    elif case == "disabled":
        with scope(organization=org_a):
            endpoint.enabled = False
            endpoint.save()
    elif case == "not_json":
        kwargs["body"] = b"post_id=1284"
    elif case == "json_array":
        kwargs["body"] = b"[1, 2]"
    before = row_counts()

    response = post_hook(endpoint, payload, **kwargs)

    assert response.status_code == status
    [error] = response.json()["errors"]
    assert error["code"] == code
    assert _inbox() == []
    assert row_counts() == before
    assert _rejections() == [code]


def test_rejections_are_recorded_at_most_n_per_minute(wp_endpoint, post_hook, monkeypatch):
    monkeypatch.setattr(services.inbound, "REJECTS_PER_MINUTE", 3)
    endpoint, _ = wp_endpoint
    now = timezone.now().replace(second=1)
    for _ in range(5):
        response = post_hook(
            endpoint, {}, secret="whsec_" + "B" * 32, at=now, HTTP_HOST="testserver"
        )
        assert response.status_code == 401
    assert len(_rejections()) == 3


@pytest.mark.parametrize("path", [f"/hooks/{uuid.uuid4()}", "/hooks/not-a-uuid"])
def test_unknown_endpoint_is_404_and_stores_nothing(client, path, wp_endpoint):
    response = client.post(path, data=b"{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "unknown_endpoint"
    assert _inbox() == [] and _rejections() == []


def test_get_is_405(client, wp_endpoint):
    endpoint, _ = wp_endpoint
    assert client.get(f"/hooks/{endpoint.public_id}").status_code == 405


def test_signed_with_another_tenants_endpoint_secret_is_refused(
    org_b, wp_endpoint, post_hook, client_b_acme
):
    """Organization B's secret does not open organization A's endpoint."""
    from connectors.models import ConnectorKind

    endpoint, _ = wp_endpoint
    with scope(organization=org_b):
        _other, other_secret = services.create_endpoint(
            org_b, name="B", kind=ConnectorKind.WORDPRESS, client=client_b_acme
        )
    response = post_hook(endpoint, fixture("wordpress_post_published.json"), secret=other_secret)
    assert response.status_code == 401
    assert _inbox() == []


def test_the_previous_secret_works_during_the_rotation_overlap(org_a, wp_endpoint, post_hook):
    endpoint, old = wp_endpoint
    with scope(organization=org_a):
        endpoint.rotate_secret(timezone.now())
    response = post_hook(endpoint, fixture("wordpress_post_published.json"), secret=old)
    assert response.status_code == 202


def test_a_trailing_slash_reaches_the_endpoint(
    wp_endpoint, client, django_capture_on_commit_callbacks
):
    from connectors import verify

    endpoint, _ = wp_endpoint
    body = json.dumps(fixture("wordpress_post_published.json")).encode()
    headers = verify.sign(endpoint.kind, endpoint.secret, "slash", body, timezone.now())
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/hooks/{endpoint.public_id}/", data=body, content_type="application/json", **meta
        )
    assert response.status_code == 202
    assert [d.vendor_delivery_id for d in _inbox()] == ["slash"]


def test_a_body_declared_too_large_is_refused_unread(wp_endpoint, client, settings):
    settings.MESHLINE_HOOK_MAX_BYTES = 2048
    endpoint, _ = wp_endpoint
    response = client.post(
        f"/hooks/{endpoint.public_id}",
        data=b"{" + b" " * 4096 + b"}",
        content_type="application/json",
    )
    assert response.status_code == 413
    with scopes_disabled():
        assert RejectedDelivery.objects.get().size == 4098
