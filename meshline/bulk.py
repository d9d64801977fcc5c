"""Writing many new rows at once: COPY on PostgreSQL, ``bulk_create`` elsewhere.

``bulk_create`` compiles every value through the field's ``get_db_prep_save`` and sends the
rows as ``UNNEST`` arrays that psycopg quotes in Python (client-side binding): for the
escalation sweep's 10,000 trail entries and 15,000 notifications that was about a third of
the pass under cProfile (bench/escalation.py --profile). COPY streams the same rows with psycopg's own adapters. The rows are
ordinary unsaved model instances, so callers keep them (listeners, queued ids) exactly as
after ``bulk_create``: auto-increment keys are drawn from the table's sequence first.

Like ``bulk_create``, no ``save()`` runs and no signal is sent. A unique violation raises
``IntegrityError`` inside the caller's transaction, as ``bulk_create`` would.
"""

import json
import time

from django.db import connection, models
from django.db.models.fields import NOT_PROVIDED, AutoFieldMixin


def insert(objs: list) -> list:
    """Insert ``objs`` (unsaved instances of one model) and return them, keys set."""
    if not objs:
        return objs
    model = type(objs[0])
    fields = model._meta.concrete_fields
    if connection.vendor != "postgresql" or not _copyable(fields, objs):
        return model._default_manager.bulk_create(objs)
    auto = [f for f in fields if isinstance(f, AutoFieldMixin)]
    if auto:
        _draw_keys(model, auto[0], objs)
    stamped = [
        f for f in fields if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
    ]
    for obj in objs:
        for field in stamped:
            field.pre_save(obj, add=True)
    converters = [_converter(field) for field in fields]
    table = connection.ops.quote_name(model._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    sql = f"COPY {table} ({columns}) FROM STDIN"
    attnames = [field.attname for field in fields]
    started = time.monotonic()
    with (
        connection.cursor() as cursor,
        connection.wrap_database_errors,
        cursor.copy(sql) as copy,
    ):
        for obj in objs:
            values = obj.__dict__
            copy.write_row(
                [
                    convert(values[name]) if convert else values[name]
                    for name, convert in zip(attnames, converters, strict=True)
                ]
            )
    note_copy_time(sql, started)
    for obj in objs:
        obj._state.adding = False
        obj._state.db = connection.alias
    return objs


def _copyable(fields, objs: list) -> bool:
    """COPY writes plain values: not a generated column, nor a value left to the
    database's default (``db_default``) or given as an expression."""
    if any(field.generated for field in fields):
        return False
    defaulted = [f.attname for f in fields if f.db_default is not NOT_PROVIDED]
    return not any(
        hasattr(obj.__dict__[name], "resolve_expression") for obj in objs for name in defaulted
    )


def note_copy_time(sql: str, started: float) -> None:
    """Django's debug cursor logs a COPY when it opens, before a row is written: give that
    entry the whole COPY's time (a second entry would count it twice)."""
    if connection.queries_logged and connection.queries_log:
        entry = connection.queries_log[-1]
        if entry["sql"] == sql:
            entry["time"] = f"{time.monotonic() - started:.3f}"


def _draw_keys(model, field, objs: list) -> None:
    """Give every instance without a key the next value of the column's sequence."""
    missing = [obj for obj in objs if getattr(obj, field.attname) is None]
    if not missing:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [model._meta.db_table, field.column, len(missing)],
        )
        for obj, (key,) in zip(missing, cursor.fetchall(), strict=True):
            setattr(obj, field.attname, key)


def _converter(field):
    """How a Python value becomes what COPY writes for ``field``; None when psycopg's own
    adapter does (str, int, Decimal, UUID, date and datetime, None)."""
    if isinstance(field, models.JSONField):
        encoder = field.encoder
        return lambda value: None if value is None else json.dumps(value, cls=encoder)
    if field.get_internal_type() in {
        "CharField",
        "TextField",
        "SlugField",
        "EmailField",
        "URLField",
        "UUIDField",
        "BigAutoField",
        "AutoField",
        "BigIntegerField",
        "IntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
        "SmallIntegerField",
        "BooleanField",
        "DateTimeField",
        "DateField",
        "DecimalField",
        "FloatField",
        "ForeignKey",
        "OneToOneField",
    }:
        return None
    return lambda value, field=field: field.get_db_prep_save(value, connection)
