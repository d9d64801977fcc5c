"""Make the event trail append-only in the database itself (PostgreSQL).

No code path updates or deletes an Event; this trigger makes sure no SQL does either,
whatever its origin (a bug, an admin's shell, a raw query). TRUNCATE, which only an
operator or the test runner issues, is left alone.
"""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION meshline_event_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'deliveries_event is append-only: % refused', TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER deliveries_event_append_only
    BEFORE UPDATE OR DELETE ON deliveries_event
    FOR EACH ROW EXECUTE FUNCTION meshline_event_append_only();
"""
BACKWARD = """
DROP TRIGGER IF EXISTS deliveries_event_append_only ON deliveries_event;
DROP FUNCTION IF EXISTS meshline_event_append_only();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [("deliveries", "0001_initial")]
    operations = [migrations.RunPython(forward, backward)]
