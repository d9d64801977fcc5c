"""Signature schemes of inbound webhooks: pure functions, no database.

Standard Webhooks (generic senders): ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature: v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>`` where the key is
the base64 part of the ``whsec_`` secret; the signature is computed with the
``standardwebhooks`` library. Its own ``verify`` folds every failure into one exception and
reads the wall clock, so the headers and the timestamp are checked here (each failure its
own reason, ``now`` injected) and the digests compared in constant time.

WordPress (the "WP Webhooks" plugin plus these headers; docs/architecture.md, "Connectors"):
``X-WP-Webhook-Id``, ``X-WP-Webhook-Timestamp`` (Unix seconds) and ``X-WP-Webhook-Signature:
sha256=<hex HMAC-SHA256(key, "id.timestamp.body")>`` where the key is the whole secret
string as UTF-8 (what PHP's ``hash_hmac('sha256', $message, $secret)`` does). Signing the
id and the time with the body means neither can be changed to slip a replay past the checks.
"""

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

from standardwebhooks import Webhook

from connectors.models import ConnectorKind, RejectReason
from meshline import outbound

TOLERANCE = timedelta(minutes=5)

HEADERS = {
    ConnectorKind.STANDARD: ("webhook-id", "webhook-timestamp", "webhook-signature"),
    ConnectorKind.WORDPRESS: (
        "x-wp-webhook-id",
        "x-wp-webhook-timestamp",
        "x-wp-webhook-signature",
    ),
}


class Refused(Exception):
    """A request that does not verify: ``reason`` (a RejectReason) and a message for the
    sender. Never says which secret was tried or what the right signature is."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def _timestamp(value: str, now: datetime) -> datetime:
    try:
        at = datetime.fromtimestamp(int(value), tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise Refused(
            RejectReason.MISSING_HEADERS, "The timestamp header is not Unix seconds."
        ) from None
    if abs(now - at) > TOLERANCE:
        raise Refused(
            RejectReason.STALE,
            f"The timestamp is more than {int(TOLERANCE.total_seconds())} seconds from our "
            "clock: refused as a possible replay.",
        )
    return at


def _standard_signatures(secret: str, msg_id: str, at: datetime, body: str) -> bytes:
    return base64.b64decode(Webhook(secret).sign(msg_id=msg_id, timestamp=at, data=body)[3:])


def _standard_matches(header: str, secrets: list[str], msg_id: str, at, body: str) -> bool:
    expected = [_standard_signatures(secret, msg_id, at, body) for secret in secrets]
    for item in header.split():
        version, _, signature = item.partition(",")
        if version != "v1":
            continue
        try:
            given = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            continue
        if any(hmac.compare_digest(given, candidate) for candidate in expected):
            return True
    return False


def _wordpress_matches(header: str, secrets: list[str], msg_id: str, at, body: str) -> bool:
    scheme, _, given = header.strip().partition("=")
    if scheme != "sha256":
        return False
    message = f"{msg_id}.{int(at.timestamp())}.{body}".encode()
    return any(
        hmac.compare_digest(
            given.lower(), hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        )
        for secret in secrets
    )


def verify(kind: str, secrets: list[str], headers, body: bytes, now: datetime) -> str:
    """Check one request of ``kind`` against any of ``secrets``; the sender's delivery id.

    ``headers`` is case-insensitive (Django's ``request.headers``). Raises Refused.
    """
    id_header, _time_header, signature_header = HEADERS[kind]
    msg_id, timestamp, signature = (headers.get(h, "") for h in HEADERS[kind])
    missing = [
        h for h, v in zip(HEADERS[kind], (msg_id, timestamp, signature), strict=True) if not v
    ]
    if missing:
        raise Refused(RejectReason.MISSING_HEADERS, f"Missing headers: {', '.join(missing)}.")
    if len(msg_id) > 200:
        raise Refused(RejectReason.MISSING_HEADERS, f"{id_header} is longer than 200 characters.")
    at = _timestamp(timestamp, now)
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise Refused(RejectReason.INVALID_JSON, "The body is not UTF-8.") from None
    matches = _wordpress_matches if kind == ConnectorKind.WORDPRESS else _standard_matches
    if not matches(signature, secrets, msg_id, at, text):
        raise Refused(
            RejectReason.BAD_SIGNATURE,
            f"{signature_header} does not match the body signed with the endpoint's secret.",
        )
    return msg_id


def sign(kind: str, secret: str, msg_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """The headers a sender of ``kind`` puts on ``body`` (tests, the demo, the docs)."""
    timestamp = str(int(at.timestamp()))
    if kind == ConnectorKind.WORDPRESS:
        message = f"{msg_id}.{timestamp}.{body.decode()}".encode()
        digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        return {
            "X-WP-Webhook-Id": msg_id,
            "X-WP-Webhook-Timestamp": timestamp,
            "X-WP-Webhook-Signature": f"sha256={digest}",
        }
    return outbound.signature_headers(secret, msg_id, body, at=at)
