"""Database helpers: errors worth a second attempt, and planning for whole reads."""

from contextlib import contextmanager

from django.db import OperationalError, connection, transaction

# deadlock_detected, serialization_failure: PostgreSQL aborted this transaction so that
# another could go on; the same work, run again, succeeds.
RETRYABLE_SQLSTATES = {"40P01", "40001"}


def is_retryable(exc: BaseException) -> bool:
    """True for an OperationalError PostgreSQL raised to break a deadlock (or a
    serialization failure): the transaction was rolled back whole and can run again."""
    if not isinstance(exc, OperationalError):
        return False
    return getattr(exc.__cause__, "sqlstate", None) in RETRYABLE_SQLSTATES


@contextmanager
def reading_to_the_end():
    """Plan the queries inside for all their rows, not the first ones.

    ``QuerySet.iterator()`` reads through a server-side cursor on PostgreSQL, and the
    planner optimizes a cursor for its first 10 % of rows (``cursor_tuple_fraction``):
    with a day's attribution facts not yet analyzed, that chose a nested loop that read the
    whole day's facts once per deliverable, 2.8 s of a 5,000-row export instead of 60 ms
    (bench/reporting.py). An export reads every row, so it says so. The setting lasts for
    the block: put back when it ends, or undone with the block's savepoint when it raises.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL cursor_tuple_fraction = 1.0")
        yield
        cursor.execute("SET LOCAL cursor_tuple_fraction = DEFAULT")
