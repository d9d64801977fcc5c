"""The instants Meshline accepts from callers: events' times and date-time filters.

PostgreSQL refuses a time zone offset of 16 hours or more, and Python cannot convert
year 1 or year 9999 across an offset (OverflowError): both were 500s. A bounded range
also keeps every stored time displayable in any organization's time zone.
"""

from datetime import UTC, datetime, timedelta

EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)  # exclusive
MAX_OFFSET = timedelta(hours=16)  # exclusive: ±15:59:59 is PostgreSQL's limit

RANGE_MESSAGE = "Must be from 1900-01-01T00:00:00Z up to (not including) 2200-01-01T00:00:00Z."
OFFSET_MESSAGE = "The time zone offset must be within ±15:59."


def instant_problem(value: datetime) -> tuple[str, str] | None:
    """(code, message) when an aware datetime is outside what Meshline stores, else None."""
    offset = value.utcoffset()
    if offset is not None and abs(offset) >= MAX_OFFSET:
        return "invalid_timezone", OFFSET_MESSAGE
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError:
        return "out_of_range", RANGE_MESSAGE
    if not EARLIEST <= in_utc < LATEST:
        return "out_of_range", RANGE_MESSAGE
    return None
