"""Cloudinary: its notification signature (with the account's own API secret), the upload
and moderation mappings, and an endpoint whose secret the admin enters."""

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest
from django_scopes import scope, scopes_disabled

from connectors import mapping, verify
from connectors.models import ConnectorKind, InboundEndpoint, RejectReason
from deliveries.models import Event
from tests.conftest import PASSWORD
from tests.connectors.conftest import StubEndpoint, fixture

NOW = datetime(2026, 3, 1, 12, 0, 10, tzinfo=UTC)
UPLOAD = fixture("cloudinary_upload.json")
APPROVED = fixture("cloudinary_moderation_approved.json")
BODY = json.dumps(UPLOAD).encode()
API_SECRET = "a676b67565c6767a6767d6767f676fe1"


def headers_for(body=BODY, at=NOW, secret=API_SECRET):
    signed = verify.sign(ConnectorKind.CLOUDINARY, secret, "", body, at)
    return {k.lower(): v for k, v in signed.items()}


def check(headers, body=BODY, now=NOW, secrets=(API_SECRET,)):
    return verify.verify(ConnectorKind.CLOUDINARY, list(secrets), headers, body, now)


def test_the_signature_is_sha1_of_body_timestamp_and_secret_and_sha256_verifies_too():
    headers = headers_for()
    timestamp = str(int(NOW.timestamp()))
    message = BODY + timestamp.encode() + API_SECRET.encode()
    assert headers == {
        "x-cld-timestamp": timestamp,
        "x-cld-signature": hashlib.sha1(message).hexdigest(),
    }
    delivery = "upload:3515c6000a548515f1134043f9785c2f:1772366400:"
    assert check(headers) == delivery
    sha256 = {**headers, "x-cld-signature": hashlib.sha256(message).hexdigest()}
    assert check(sha256) == delivery


def test_during_a_rotation_the_previous_api_secret_verifies_too():
    old = "f" * 32
    signed_with_old = headers_for(secret=old)
    assert check(signed_with_old, secrets=(API_SECRET, old))
    with pytest.raises(verify.Refused):
        check(signed_with_old)


@pytest.mark.parametrize(
    "case,reason",
    [
        ("tampered", RejectReason.BAD_SIGNATURE),
        ("other_secret", RejectReason.BAD_SIGNATURE),
        ("stale", RejectReason.STALE),
        ("no_signature", RejectReason.MISSING_HEADERS),
        ("no_type", RejectReason.INVALID_JSON),
    ],
)
def test_each_refusal_names_its_reason(case, reason):
    body, headers, now = BODY, headers_for(), NOW
    if case == "tampered":
        body = BODY.replace(b"8412334", b"1")
    elif case == "other_secret":
        headers = headers_for(secret="f" * 32)
    elif case == "stale":  # Cloudinary's SDKs accept two hours; so do we, not more
        now = NOW + timedelta(hours=2, seconds=1)
    elif case == "no_signature":
        headers.pop("x-cld-signature")
    elif case == "no_type":
        body = json.dumps({"public_id": "x"}).encode()
        headers = headers_for(body=body)
    with pytest.raises(verify.Refused) as refused:
        check(headers, body, now)
    assert refused.value.reason == reason
    assert check(headers_for(), BODY, NOW + timedelta(hours=1))  # an hour late still verifies


def test_an_upload_becomes_asset_uploaded_and_an_approval_asset_approved():
    [uploaded] = mapping.map_payload(StubEndpoint("cloudinary"), UPLOAD, "upload:x:1:")
    assert uploaded == {
        "deliverable_id": "LP-1",
        "client_id": "acme",
        "actor": {"role": "dam", "id": "cloudinary"},
        "event_type": "asset.uploaded",
        "idempotency_key": "cloudinary:ep-1:upload:x:1:",
        "occurred_at": "2026-03-01T12:00:00Z",
        "payload": {
            "asset_id": "acme/spring/hero-banner",
            "size_bytes": 8412334,
            "filename": "hero-banner-final.jpg",
            "mime_type": "image/jpg",
            "revision": 1772366400,
        },
    }
    [approved] = mapping.map_payload(
        StubEndpoint("cloudinary", {"tag_prefix": "deliverable:"}), APPROVED, "m"
    )
    assert (approved["event_type"], approved["deliverable_id"]) == ("asset.approved", "LP-1")
    assert approved["payload"] == {
        "asset_id": "acme/spring/hero-banner",
        "approved_by": "cloudinary manual",
    }
    assert approved["occurred_at"] == "2026-03-02T09:30:00Z"
    rejected = {**APPROVED, "moderation_status": "rejected"}
    assert mapping.map_payload(StubEndpoint("cloudinary"), rejected, "m") == []
    assert (
        mapping.map_payload(
            StubEndpoint("cloudinary"), {**UPLOAD, "notification_type": "delete"}, "d"
        )
        == []
    )


def test_what_cannot_be_mapped_says_why():
    with pytest.raises(mapping.MappingError, match="No tag starts with 'lp:'"):
        mapping.map_payload(StubEndpoint("cloudinary", {"tag_prefix": "lp:"}), UPLOAD, "x")
    with pytest.raises(mapping.MappingError, match="No deliverable reference"):
        mapping.map_payload(StubEndpoint("cloudinary"), {**UPLOAD, "context": {}}, "x")
    with pytest.raises(mapping.MappingError, match="bytes"):
        mapping.map_payload(StubEndpoint("cloudinary"), {**UPLOAD, "bytes": "8 MB"}, "x")


def test_an_admin_enters_the_accounts_secret_and_notifications_become_events(
    client, org_a, owner, client_acme, post_hook
):
    client.login(username="owner@a.example", password=PASSWORD)
    form = {"name": "Acme DAM", "kind": "cloudinary", "client": client_acme.pk}
    missing = client.post("/o/org-a/connections/endpoints/new/", form)
    assert missing.status_code == 200
    assert "signs with its own secret: enter it" in missing.content.decode()
    not_ours = client.post(
        "/o/org-a/connections/endpoints/new/", {**form, "kind": "jira", "vendor_secret": "x"}
    )
    assert "Meshline issues this kind&#x27;s secret" in not_ours.content.decode()
    created = client.post(
        "/o/org-a/connections/endpoints/new/", {**form, "vendor_secret": API_SECRET}
    )
    assert API_SECRET not in created.content.decode()  # never echoed back
    with scopes_disabled():
        endpoint = InboundEndpoint.objects.get(kind=ConnectorKind.CLOUDINARY)
    assert endpoint.secret == API_SECRET

    assert post_hook(endpoint, UPLOAD).status_code == 202
    assert post_hook(endpoint, APPROVED).status_code == 202
    assert post_hook(endpoint, UPLOAD).json()["status"] == "duplicate"
    with scope(organization=org_a):
        kinds = sorted(
            Event.objects.filter(
                organization=org_a, deliverable__deliverable_id="LP-1"
            ).values_list("event_type", flat=True)
        )
    assert kinds == ["asset.approved", "asset.uploaded"]

    # Rotating asks for Cloudinary's new secret; the old one verifies during the overlap.
    detail = f"/o/org-a/connections/endpoints/{endpoint.public_id}/"
    assert 'name="vendor_secret"' in client.get(detail).content.decode()
    refused = client.post(f"{detail}rotate/", {})
    assert refused.status_code == 302
    too_long = client.post(f"{detail}rotate/", {"vendor_secret": "x" * 101})
    assert too_long.status_code == 302
    endpoint.refresh_from_db()
    assert endpoint.secret == API_SECRET  # neither changed it
    long_one = client.post(
        "/o/org-a/connections/endpoints/new/", {**form, "vendor_secret": "y" * 101}
    )
    assert long_one.status_code == 200  # the form again, with the error; no 500
    assert "at most 100 characters" in long_one.content.decode()
    client.post(f"{detail}rotate/", {"vendor_secret": "b" * 32})
    endpoint.refresh_from_db()
    assert (endpoint.secret, endpoint.previous_secret) == ("b" * 32, API_SECRET)
