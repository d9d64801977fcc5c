"""Migration operations that change indexes of big tables without blocking their writes.

On PostgreSQL they build and drop indexes CONCURRENTLY (the table stays writable; the
statement waits for the transactions already running), so a migration using them must set
``atomic = False``. Each one can run again after a failure half-way: a valid index already
there is kept, an invalid one (left by an interrupted CONCURRENTLY build) is dropped and
built again. Elsewhere (SQLite in tests) they are the plain Django operations.
"""

from django.db import NotSupportedError
from django.db.migrations.operations import AddConstraint, AddIndex, AlterField, RemoveIndex
from django.db.models import UniqueConstraint


def _on_postgres(schema_editor) -> bool:
    if schema_editor.connection.vendor != "postgresql":
        return False
    if schema_editor.connection.in_atomic_block:
        raise NotSupportedError("CONCURRENTLY needs a migration with atomic = False.")
    return True


def _needs_build(schema_editor, name: str) -> bool:
    """False if a valid index ``name`` exists; drops an invalid leftover of a failed build."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT x.indisvalid FROM pg_class c JOIN pg_index x ON x.indexrelid = c.oid "
            "WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace",
            [name],
        )
        row = cursor.fetchone()
    if row is None:
        return True
    if row[0]:
        return False
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}")
    return True


def _build(operation, app_label, schema_editor, state, index) -> None:
    """CREATE INDEX CONCURRENTLY ``index`` on the operation's model in ``state``, unless a
    valid one is there already."""
    model = state.apps.get_model(app_label, operation.model_name)
    if operation.allow_migrate_model(schema_editor.connection.alias, model) and _needs_build(
        schema_editor, index.name
    ):
        schema_editor.add_index(model, index, concurrently=True)


def _drop(operation, app_label, schema_editor, state, index) -> None:
    """DROP INDEX CONCURRENTLY ``index`` if it is there."""
    model = state.apps.get_model(app_label, operation.model_name)
    if operation.allow_migrate_model(schema_editor.connection.alias, model):
        schema_editor.execute(
            f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(index.name)}"
        )


class AddIndexConcurrently(AddIndex):
    """AddIndex built with CREATE INDEX CONCURRENTLY: reads and writes go on meanwhile."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not _on_postgres(schema_editor):
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        _build(self, app_label, schema_editor, to_state, self.index)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if not _on_postgres(schema_editor):
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        _drop(self, app_label, schema_editor, from_state, self.index)


class RemoveIndexConcurrently(RemoveIndex):
    """RemoveIndex dropped with DROP INDEX CONCURRENTLY: reads and writes go on meanwhile."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not _on_postgres(schema_editor):
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        _drop(self, app_label, schema_editor, from_state, self._index(from_state, app_label))

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if not _on_postgres(schema_editor):
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        _build(self, app_label, schema_editor, to_state, self._index(to_state, app_label))

    def _index(self, state, app_label):
        return state.models[app_label, self.model_name_lower].get_index_by_name(self.name)


class AddUniqueConstraintConcurrently(AddConstraint):
    """A plain (columns only) unique constraint, without holding a lock while it is built:
    CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... USING INDEX, which only takes
    the table's lock for a moment. The result is what AddConstraint makes."""

    def __init__(self, model_name, constraint):
        if not isinstance(constraint, UniqueConstraint) or (
            constraint.condition
            or constraint.expressions
            or constraint.include
            or constraint.deferrable
            or constraint.opclasses
        ):
            raise ValueError(f"{constraint.name}: only a unique constraint on columns")
        super().__init__(model_name, constraint)

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not _on_postgres(schema_editor):
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        name = self.constraint.name
        if name in schema_editor._constraint_names(model, unique=True):
            return  # added by an earlier, interrupted run
        table = schema_editor.quote_name(model._meta.db_table)
        columns = ", ".join(
            schema_editor.quote_name(model._meta.get_field(field).column)
            for field in self.constraint.fields
        )
        quoted = schema_editor.quote_name(name)
        if _needs_build(schema_editor, name):
            schema_editor.execute(
                f"CREATE UNIQUE INDEX CONCURRENTLY {quoted} ON {table} ({columns})"
            )
        schema_editor.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {quoted} UNIQUE USING INDEX {quoted}"
        )


class DropFieldIndexConcurrently(AlterField):
    """AlterField that only turns ``db_index`` off: DROP INDEX CONCURRENTLY on the column's
    plain index(es), with no lock on the table's writers."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not _on_postgres(schema_editor):
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        column = model._meta.get_field(self.name).column
        for name in schema_editor._constraint_names(
            model, [column], index=True, unique=False, primary_key=False
        ):
            schema_editor.execute(
                f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}"
            )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if not _on_postgres(schema_editor):
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        field = model._meta.get_field(self.name)
        name = schema_editor._create_index_name(model._meta.db_table, [field.column])
        if _needs_build(schema_editor, name):
            schema_editor.execute(
                schema_editor._create_index_sql(model, fields=[field], name=name, concurrently=True)
            )


class DropFieldUnique(AlterField):
    """AlterField that only drops a single-column unique constraint (a OneToOneField made a
    ForeignKey, a ``unique=True`` removed): ALTER TABLE ... DROP CONSTRAINT, a moment's
    lock. Django's own AlterField would also drop and re-add the foreign key, validating
    every row while writes wait."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        old = model._meta.get_field(self.name)
        table = schema_editor.quote_name(model._meta.db_table)
        for name in schema_editor._constraint_names(
            model, [old.column], unique=True, primary_key=False
        ):
            schema_editor.execute(
                f"ALTER TABLE {table} DROP CONSTRAINT {schema_editor.quote_name(name)}"
            )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.execute(
                schema_editor._create_unique_sql(model, [model._meta.get_field(self.name)])
            )
