"""Time-ordered UUIDs (RFC 9562 version 7) for public row ids.

Events get UUIDv7 primary keys: unguessable enough to be public, and ordered by creation
time, so the primary-key index stays append-mostly and cursor pagination by id is by time.
"""

import os
import time
import uuid

from django.http import Http404


def uuid7() -> uuid.UUID:
    unix_ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (unix_ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= ((rand >> 62) & 0xFFF) << 64  # rand_a, 12 bits
    value |= 0b10 << 62  # variant
    value |= rand & ((1 << 62) - 1)  # rand_b, 62 bits
    return uuid.UUID(int=value)


def uuid_or_404(value) -> uuid.UUID:
    """Public ids in URLs are UUIDs; anything else is simply not found (never a 500)."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise Http404("No such object") from None
