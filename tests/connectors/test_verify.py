"""Signature vectors for every kind: valid, tampered body, wrong secret, stale timestamp,
missing headers, rotated secret (both verify during the overlap, the old one not after)."""

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks import Webhook

from connectors import verify
from connectors.models import ConnectorKind, RejectReason
from meshline.outbound import generate_secret

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
BODY = b'{"post": {"ID": 1}}'
KINDS = [ConnectorKind.STANDARD, ConnectorKind.WORDPRESS]


def headers(kind, secret, body=BODY, at=NOW, msg_id="msg-1"):
    return {k.lower(): v for k, v in verify.sign(kind, secret, msg_id, body, at).items()}


@pytest.mark.parametrize("kind", KINDS)
def test_valid_signature_returns_the_delivery_id(kind):
    secret = generate_secret()
    assert verify.verify(kind, [secret], headers(kind, secret), BODY, NOW) == "msg-1"


def test_standard_signature_is_what_the_standardwebhooks_library_accepts():
    # The library reads the wall clock: sign at the real now for this vector.
    secret, now = generate_secret(), datetime.now(UTC)
    signed = headers(ConnectorKind.STANDARD, secret, at=now)
    assert Webhook(secret).verify(BODY, signed) == {"post": {"ID": 1}}
    assert verify.verify(ConnectorKind.STANDARD, [secret], signed, BODY, now) == "msg-1"


def test_wordpress_signature_is_hex_hmac_of_id_timestamp_body():
    import hashlib
    import hmac

    secret = "whsec_plugin-secret"
    signed = headers(ConnectorKind.WORDPRESS, secret)
    expected = hmac.new(
        secret.encode(), f"msg-1.{int(NOW.timestamp())}.".encode() + BODY, hashlib.sha256
    ).hexdigest()
    assert signed["x-wp-webhook-signature"] == f"sha256={expected}"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "case,reason",
    [
        ("tampered", RejectReason.BAD_SIGNATURE),
        ("wrong_secret", RejectReason.BAD_SIGNATURE),
        ("stale", RejectReason.STALE),
        ("future", RejectReason.STALE),
        ("id_swapped", RejectReason.BAD_SIGNATURE),
        ("missing", RejectReason.MISSING_HEADERS),
        ("garbage_signature", RejectReason.BAD_SIGNATURE),
        ("bad_timestamp", RejectReason.MISSING_HEADERS),
    ],
)
def test_refused_vectors(kind, case, reason):
    secret = generate_secret()
    id_header, time_header, signature_header = verify.HEADERS[kind]
    body, signed = BODY, headers(kind, secret)
    if case == "tampered":
        body = b'{"post": {"ID": 2}}'
    elif case == "wrong_secret":
        signed = headers(kind, generate_secret())
    elif case == "stale":
        signed = headers(kind, secret, at=NOW - timedelta(minutes=5, seconds=1))
    elif case == "future":
        signed = headers(kind, secret, at=NOW + timedelta(minutes=6))
    elif case == "id_swapped":
        signed[id_header] = "msg-2"  # a replay under a fresh id to dodge the dedup
    elif case == "missing":
        del signed[signature_header]
    elif case == "garbage_signature":
        signed[signature_header] = "v1,not base64!! sha256=zz ,,"
    elif case == "bad_timestamp":
        signed[time_header] = "yesterday"
    with pytest.raises(verify.Refused) as refused:
        verify.verify(kind, [secret], signed, body, NOW)
    assert refused.value.reason == reason
    if case == "missing":
        assert signature_header in refused.value.message


@pytest.mark.parametrize("kind", KINDS)
def test_a_stale_timestamp_inside_the_tolerance_still_verifies(kind):
    secret = generate_secret()
    signed = headers(kind, secret, at=NOW - timedelta(minutes=4, seconds=59))
    assert verify.verify(kind, [secret], signed, BODY, NOW) == "msg-1"


@pytest.mark.parametrize("kind", KINDS)
def test_rotated_secret_overlap(kind, wp_endpoint, org_a):
    from django_scopes import scope

    endpoint, old = wp_endpoint
    endpoint.kind = kind
    with scope(organization=org_a):
        new = endpoint.rotate_secret(NOW, overlap=timedelta(hours=1))
    assert new != old
    for secret in (old, new):
        assert verify.verify(kind, endpoint.secrets_at(NOW), headers(kind, secret), BODY, NOW)
    later = NOW + timedelta(hours=1, seconds=1)
    assert verify.verify(
        kind, endpoint.secrets_at(later), headers(kind, new, at=later), BODY, later
    )
    with pytest.raises(verify.Refused) as refused:
        verify.verify(kind, endpoint.secrets_at(later), headers(kind, old, at=later), BODY, later)
    assert refused.value.reason == RejectReason.BAD_SIGNATURE
