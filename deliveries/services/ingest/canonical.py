"""Canonical JSON: what an event's content digest is taken of, and its size measured by."""

import hashlib
import json
from datetime import UTC, datetime

from django.conf import settings

from deliveries.services.ingest.results import _error

_canonical_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
_compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_IDEMPOTENCY_MEMBER = len('"idempotency_key":,')  # name, colon and the comma before it


def _canonical(data: dict) -> bytes:
    """The event's canonical JSON (UTF-8): what its content digest is taken of."""
    canonical = {
        key: (value.isoformat() if isinstance(value, datetime) else value)
        for key, value in data.items()
        if key not in {"idempotency_key", "schema_version"}
    }
    if isinstance(data.get("occurred_at"), datetime):
        canonical["occurred_at"] = data["occurred_at"].astimezone(UTC).isoformat()
    return _canonical_json(canonical).encode()


def _digest(data: dict) -> str:
    return hashlib.sha256(_canonical(data)).hexdigest()


def _size(value) -> int:
    """Bytes of the value's compact JSON (UTF-8): the measure of the event size limit."""
    encoded = _compact_json(value)
    return len(encoded) if encoded.isascii() else len(encoded.encode())


def _oversize(raw) -> bool:
    try:
        return _size(raw) > settings.MESHLINE_MAX_EVENT_BYTES
    except (UnicodeEncodeError, RecursionError):
        # An invalid event with unpaired surrogates, or nested too deep: report its errors.
        return False


def _size_from_canonical(raw: dict, canonical: bytes, data: dict) -> int:
    """``_size(raw)`` for a valid event, without encoding it a second time.

    The canonical form holds the same members with the same values, in another order
    (which does not change the length), except that it leaves out ``idempotency_key`` and
    spells ``occurred_at`` in UTC: swap those back in.
    """
    size = len(canonical) + _size(raw["occurred_at"])
    size -= _size(data["occurred_at"].astimezone(UTC).isoformat())
    if "idempotency_key" in raw:
        size += _IDEMPOTENCY_MEMBER + _size(raw["idempotency_key"])
    return size


def _too_large() -> list[dict]:
    return [
        _error(
            "too_large",
            f"An event may be at most {settings.MESHLINE_MAX_EVENT_BYTES} bytes.",
        )
    ]
