"""Database errors worth a second attempt."""

from django.db import OperationalError

# deadlock_detected, serialization_failure: PostgreSQL aborted this transaction so that
# another could go on; the same work, run again, succeeds.
RETRYABLE_SQLSTATES = {"40P01", "40001"}


def is_retryable(exc: BaseException) -> bool:
    """True for an OperationalError PostgreSQL raised to break a deadlock (or a
    serialization failure): the transaction was rolled back whole and can run again."""
    if not isinstance(exc, OperationalError):
        return False
    return getattr(exc.__cause__, "sqlstate", None) in RETRYABLE_SQLSTATES
