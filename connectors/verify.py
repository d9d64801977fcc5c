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

Jira (admin-registered webhooks with a secret): ``X-Hub-Signature: sha256=<hex HMAC-SHA256(
secret, body)>`` (WebSub's format; the key is the secret string as UTF-8) and
``X-Atlassian-Webhook-Identifier``, unique per delivery and unchanged across Jira's
retries. Jira signs no timestamp, so no age is checked: a replayed request carries a
delivery id already in the inbox and is answered as a duplicate, never mapped twice.

Cloudinary (its documented notification signatures): ``X-Cld-Timestamp`` (Unix seconds) and
``X-Cld-Signature``, the hex SHA-1 (or SHA-256, if the account chose it) of ``body +
timestamp + api_secret``: a keyed hash with the account's own API secret, which the admin
enters (``VENDOR_SECRET_KINDS``). Cloudinary's SDKs accept a signature for two hours, and so
does this (``CLOUDINARY_TOLERANCE``); Cloudinary sends no delivery id, so the notification
type, asset, version and moderation status stand in for it.

Webflow (webhooks created through its API by an OAuth app; dashboard-made ones are not
signed and cannot be verified): ``x-webflow-timestamp`` (milliseconds) and
``x-webflow-signature``, the hex HMAC-SHA256, keyed with the app's client secret, of
``"<timestamp>:<body>"``. No delivery id: the trigger type with the item or submission ids
and their publish time stand in for it.

HubSpot (an app's webhook subscriptions, signature v3): ``x-hubspot-request-timestamp``
(milliseconds, refused when more than five minutes from our clock) and
``x-hubspot-signature-v3``, the base64 HMAC-SHA256, keyed with the app's client secret (entered
by the admin), of ``method + URI + body + timestamp``, where the URI is the full URL HubSpot
posted to, with the characters HubSpot lists (``%3A``, ``%2F``, ...) decoded. The body is a
JSON array of up to 100 events; HubSpot sends no delivery id and retries a batch with a new
``attemptNumber``, so the sorted event ids stand in for it.

Contentful (its documented webhook request verification): ``x-contentful-signature`` is the
hex HMAC-SHA256, keyed with the 64-character signing secret, of ``"<method>\n<path>\n
<name:value;...>\n<body>"`` over the headers listed in ``x-contentful-signed-headers``
(which must include ``x-contentful-timestamp``, milliseconds). Contentful sends no
delivery id: the entry's id and revision (with the topic) stand in for it.
"""

import base64
import binascii
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta

from standardwebhooks import Webhook

from connectors.models import ConnectorKind, RejectReason
from meshline import outbound

TOLERANCE = timedelta(minutes=5)
CLOUDINARY_TOLERANCE = timedelta(hours=2)
# What ``sign`` (tests, the demo) has Contentful sign; Contentful itself names its list.
SIGNED_BY_CONTENTFUL = "x-contentful-signed-headers,x-contentful-timestamp,x-contentful-topic"

HEADERS = {
    ConnectorKind.STANDARD: ("webhook-id", "webhook-timestamp", "webhook-signature"),
    ConnectorKind.CONTENTFUL: (
        "x-contentful-topic",
        "x-contentful-timestamp",
        "x-contentful-signature",
    ),
    ConnectorKind.WORDPRESS: (
        "x-wp-webhook-id",
        "x-wp-webhook-timestamp",
        "x-wp-webhook-signature",
    ),
    ConnectorKind.JIRA: ("x-atlassian-webhook-identifier", "x-hub-signature"),
    ConnectorKind.CLOUDINARY: ("x-cld-timestamp", "x-cld-signature"),
    ConnectorKind.WEBFLOW: ("x-webflow-timestamp", "x-webflow-signature"),
    ConnectorKind.HUBSPOT: ("x-hubspot-request-timestamp", "x-hubspot-signature-v3"),
}
# HubSpot's v3 signature is over the URI with these escapes decoded (its documentation's table).
HUBSPOT_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
# Search Console posts nothing itself: the agency's scheduled job forwards the API's rows,
# signed as any Standard Webhooks sender.
HEADERS[ConnectorKind.SEARCH_CONSOLE] = HEADERS[ConnectorKind.STANDARD]


class Refused(Exception):
    """A request that does not verify: ``reason`` (a RejectReason) and a message for the
    sender. Never says which secret was tried or what the right signature is."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def _timestamp(
    value: str, now: datetime, per_second: int = 1, tolerance: timedelta = TOLERANCE
) -> datetime:
    try:
        at = datetime.fromtimestamp(int(value) / per_second, tz=UTC)
    except (ValueError, OverflowError, OSError):
        raise Refused(
            RejectReason.MISSING_HEADERS, "The timestamp header is not Unix seconds."
        ) from None
    if abs(now - at) > tolerance:
        raise Refused(
            RejectReason.STALE,
            f"The timestamp is more than {int(tolerance.total_seconds())} seconds from our "
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


def _contentful_id(headers, text: str) -> str:
    """The stand-in delivery id: topic, entry id and revision, from the verified body."""
    try:
        sys = json.loads(text).get("sys") or {}
    except (ValueError, AttributeError):
        raise Refused(RejectReason.INVALID_JSON, "The body is not a JSON object.") from None
    revision = sys.get("revision", sys.get("version")) if isinstance(sys, dict) else None
    if revision is None or not sys.get("id"):
        raise Refused(RejectReason.INVALID_JSON, "The body has no sys.id and sys.revision.")
    return f"{headers.get('x-contentful-topic')}:{sys['id']}:{revision}"[:200]


def _contentful_canonical(headers, names: list[str], method: str, path: str, text: str) -> str:
    signed = ";".join(f"{name}:{headers.get(name)}" for name in names if headers.get(name))
    return f"{method}\n{path}\n{signed}\n{text}"


def _verify_contentful(secrets, headers, text: str, now, method: str, path: str) -> str:
    names = [
        name.strip().lower()
        for name in headers.get("x-contentful-signed-headers", "").split(",")
        if name.strip()
    ]
    if "x-contentful-timestamp" not in names:
        raise Refused(
            RejectReason.MISSING_HEADERS,
            "x-contentful-signed-headers must list x-contentful-timestamp.",
        )
    _timestamp(headers.get("x-contentful-timestamp", ""), now, per_second=1000)
    canonical = _contentful_canonical(headers, names, method, path, text).encode()
    given = headers.get("x-contentful-signature", "").strip().lower()
    if not any(
        hmac.compare_digest(given, hmac.new(s.encode(), canonical, hashlib.sha256).hexdigest())
        for s in secrets
    ):
        raise Refused(
            RejectReason.BAD_SIGNATURE,
            "x-contentful-signature does not match the request signed with the endpoint's secret.",
        )
    return _contentful_id(headers, text)


def _required(kind: str, headers) -> list[str]:
    """The values of ``kind``'s headers (HEADERS), or Refused naming the missing ones."""
    values = [headers.get(name, "") for name in HEADERS[kind]]
    missing = [name for name, value in zip(HEADERS[kind], values, strict=True) if not value]
    if missing:
        raise Refused(RejectReason.MISSING_HEADERS, f"Missing headers: {', '.join(missing)}.")
    return values


def _verify_jira(secrets, headers, body: bytes) -> str:
    delivery_id, signature = _required(ConnectorKind.JIRA, headers)
    if len(delivery_id) > 200:
        raise Refused(
            RejectReason.MISSING_HEADERS,
            "x-atlassian-webhook-identifier is longer than 200 characters.",
        )
    scheme, _, given = signature.strip().partition("=")
    if scheme != "sha256" or not any(
        hmac.compare_digest(
            given.lower(), hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        )
        for secret in secrets
    ):
        raise Refused(
            RejectReason.BAD_SIGNATURE,
            "x-hub-signature does not match the body signed with the endpoint's secret.",
        )
    return delivery_id


def _cloudinary_digests(secret: str, body: bytes, timestamp: str) -> list[str]:
    message = body + timestamp.encode() + secret.encode()
    return [hashlib.sha1(message).hexdigest(), hashlib.sha256(message).hexdigest()]


def _cloudinary_id(text: str) -> str:
    try:
        note = json.loads(text)
    except ValueError:
        raise Refused(RejectReason.INVALID_JSON, "The body is not JSON.") from None
    if not isinstance(note, dict) or not note.get("notification_type"):
        raise Refused(RejectReason.INVALID_JSON, "The body has no notification_type.")
    asset = note.get("asset_id") or note.get("public_id") or ""
    parts = (
        note["notification_type"],
        asset,
        note.get("version", ""),
        note.get("moderation_status", ""),
    )
    return ":".join(str(part) for part in parts)[:200]


def _verify_cloudinary(secrets, headers, body: bytes, now) -> str:
    timestamp, signature = _required(ConnectorKind.CLOUDINARY, headers)
    _timestamp(timestamp, now, tolerance=CLOUDINARY_TOLERANCE)
    given = signature.strip().lower()
    if not any(
        hmac.compare_digest(given, digest)
        for secret in secrets
        for digest in _cloudinary_digests(secret, body, timestamp)
    ):
        raise Refused(
            RejectReason.BAD_SIGNATURE,
            "x-cld-signature does not match the body signed with the account's API secret.",
        )
    try:
        return _cloudinary_id(body.decode())
    except UnicodeDecodeError:
        raise Refused(RejectReason.INVALID_JSON, "The body is not UTF-8.") from None


def _webflow_digest(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()


def _webflow_id(text: str) -> str:
    try:
        note = json.loads(text)
    except ValueError:
        raise Refused(RejectReason.INVALID_JSON, "The body is not JSON.") from None
    payload = note.get("payload") if isinstance(note, dict) else None
    if not isinstance(payload, dict) or not note.get("triggerType"):
        raise Refused(RejectReason.INVALID_JSON, "The body has no triggerType and payload.")
    items = payload.get("items") if isinstance(payload.get("items"), list) else [payload]
    ids = ",".join(
        f"{item.get('id', '')}@{item.get('lastPublished', '')}"
        for item in items
        if isinstance(item, dict)
    )
    digest = hashlib.sha256(ids.encode()).hexdigest()[:32]  # many items: keep it short
    return f"{note['triggerType']}:{digest}"


def _verify_webflow(secrets, headers, body: bytes, now) -> str:
    timestamp, signature = _required(ConnectorKind.WEBFLOW, headers)
    _timestamp(timestamp, now, per_second=1000)
    given = signature.strip().lower()
    if not any(hmac.compare_digest(given, _webflow_digest(s, timestamp, body)) for s in secrets):
        raise Refused(
            RejectReason.BAD_SIGNATURE,
            "x-webflow-signature does not match the body signed with the app's client secret.",
        )
    try:
        return _webflow_id(body.decode())
    except UnicodeDecodeError:
        raise Refused(RejectReason.INVALID_JSON, "The body is not UTF-8.") from None


def _hubspot_uri(uri: str) -> str:
    return re.sub(
        "|".join(HUBSPOT_DECODED), lambda m: HUBSPOT_DECODED[m[0].upper()], uri, flags=re.I
    )


def _hubspot_digest(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    message = method.encode() + _hubspot_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def _hubspot_id(body: bytes) -> str:
    try:
        events = json.loads(body)
    except ValueError:
        raise Refused(RejectReason.INVALID_JSON, "The body is not JSON.") from None
    if (
        not isinstance(events, list)
        or not events
        or not all(isinstance(e, dict) and e.get("eventId") is not None for e in events)
    ):
        raise Refused(
            RejectReason.INVALID_JSON,
            "The body is not a JSON array of HubSpot events, each with an eventId.",
        )
    ids = ",".join(sorted(str(e["eventId"]) for e in events))
    return (
        f"hubspot:{events[0].get('portalId', '')}:{hashlib.sha256(ids.encode()).hexdigest()[:32]}"
    )


def _verify_hubspot(secrets, headers, body: bytes, now, method: str, uri: str) -> str:
    timestamp, signature = _required(ConnectorKind.HUBSPOT, headers)
    _timestamp(timestamp, now, per_second=1000)
    given = signature.strip()
    if not any(
        hmac.compare_digest(given, _hubspot_digest(s, method, uri, body, timestamp))
        for s in secrets
    ):
        raise Refused(
            RejectReason.BAD_SIGNATURE,
            "x-hubspot-signature-v3 does not match the request signed with the app's client "
            "secret (method, the full URL HubSpot posted to, body, timestamp).",
        )
    return _hubspot_id(body)


def verify(
    kind: str,
    secrets: list[str],
    headers,
    body: bytes,
    now: datetime,
    *,
    method: str = "POST",
    path: str = "",
    uri: str = "",
) -> str:
    """Check one request of ``kind`` against any of ``secrets``; the sender's delivery id.

    ``headers`` is case-insensitive (Django's ``request.headers``); ``path`` the request's
    path (Contentful signs it), ``uri`` its full URL (HubSpot signs that). Raises Refused.
    """
    if kind == ConnectorKind.HUBSPOT:
        return _verify_hubspot(secrets, headers, body, now, method, uri)
    if kind == ConnectorKind.JIRA:
        return _verify_jira(secrets, headers, body)
    if kind == ConnectorKind.CLOUDINARY:
        return _verify_cloudinary(secrets, headers, body, now)
    if kind == ConnectorKind.WEBFLOW:
        return _verify_webflow(secrets, headers, body, now)
    id_header, _time_header, signature_header = HEADERS[kind]
    msg_id, timestamp, signature = _required(kind, headers)
    if len(msg_id) > 200:
        raise Refused(RejectReason.MISSING_HEADERS, f"{id_header} is longer than 200 characters.")
    try:
        text = body.decode()
    except UnicodeDecodeError:
        raise Refused(RejectReason.INVALID_JSON, "The body is not UTF-8.") from None
    if kind == ConnectorKind.CONTENTFUL:
        return _verify_contentful(secrets, headers, text, now, method, path)
    at = _timestamp(timestamp, now)
    matches = _wordpress_matches if kind == ConnectorKind.WORDPRESS else _standard_matches
    if not matches(signature, secrets, msg_id, at, text):
        raise Refused(
            RejectReason.BAD_SIGNATURE,
            f"{signature_header} does not match the body signed with the endpoint's secret.",
        )
    return msg_id


def sign(
    kind: str, secret: str, msg_id: str, body: bytes, at: datetime, path: str = ""
) -> dict[str, str]:
    """The headers a sender of ``kind`` puts on ``body`` (tests, the demo, the docs); for
    Contentful ``msg_id`` is the topic and ``path`` the path it posts to, for HubSpot
    ``path`` is the full URL."""
    timestamp = str(int(at.timestamp()))
    if kind == ConnectorKind.HUBSPOT:
        millis = str(int(at.timestamp() * 1000))
        return {
            "x-hubspot-request-timestamp": millis,
            "x-hubspot-signature-v3": _hubspot_digest(secret, "POST", path, body, millis),
        }
    if kind == ConnectorKind.CONTENTFUL:
        headers = {
            "x-contentful-topic": msg_id,
            "x-contentful-timestamp": str(int(at.timestamp() * 1000)),
            "x-contentful-signed-headers": SIGNED_BY_CONTENTFUL,
        }
        canonical = _contentful_canonical(
            headers,
            SIGNED_BY_CONTENTFUL.split(","),
            "POST",
            path,
            body.decode(),
        )
        headers["x-contentful-signature"] = hmac.new(
            secret.encode(), canonical.encode(), hashlib.sha256
        ).hexdigest()
        return headers
    if kind == ConnectorKind.WEBFLOW:
        millis = str(int(at.timestamp() * 1000))
        return {
            "x-webflow-timestamp": millis,
            "x-webflow-signature": _webflow_digest(secret, millis, body),
        }
    if kind == ConnectorKind.CLOUDINARY:
        return {
            "X-Cld-Timestamp": timestamp,
            "X-Cld-Signature": _cloudinary_digests(secret, body, timestamp)[0],
        }
    if kind == ConnectorKind.JIRA:
        digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return {"X-Atlassian-Webhook-Identifier": msg_id, "X-Hub-Signature": f"sha256={digest}"}
    if kind == ConnectorKind.WORDPRESS:
        message = f"{msg_id}.{timestamp}.{body.decode()}".encode()
        digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        return {
            "X-WP-Webhook-Id": msg_id,
            "X-WP-Webhook-Timestamp": timestamp,
            "X-WP-Webhook-Signature": f"sha256={digest}",
        }
    return outbound.signature_headers(secret, msg_id, body, at=at)
