"""Keep deliveries_eventcount in step with the event trail, in the database itself.

A trigger, not application code: events arrive through COPY (the API's fast path), the ORM
(SQLite, the trail), or an operator's SQL, and every one of them must be counted once, in
the transaction that inserts it. The trigger only INSERTs delta rows: it takes no row lock,
so concurrent ingests never wait for each other (an upsert of one row per client and hour
would serialize them until commit) and cannot deadlock. On PostgreSQL a statement-level
trigger reads the inserted rows as a transition table: a COPY of 500 events adds one delta
per (client, hour). SQLite has no transition tables: one delta per event. Deltas are folded
by ``deliveries.services.throughput.compact``.

Hours are UTC whatever the session's TimeZone. Submitted sources are
``deliveries.models.SUBMITTED_SOURCES`` (api, webhook).

Existing events are counted here, as compacted rows. Deploying: creating the trigger locks
deliveries_event against inserts until this migration commits, so ingestion waits (it
does not fail) while existing events are counted: about 1.6 s per million events here.
"""

from django.db import migrations

POSTGRES_FORWARD = """
CREATE OR REPLACE FUNCTION meshline_count_events() RETURNS trigger AS $$
BEGIN
    INSERT INTO deliveries_eventcount (organization_id, client_id, hour, count, compacted)
    SELECT organization_id, client_id,
           date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*), false
      FROM inserted_events
     WHERE source IN ('api', 'webhook') AND client_id IS NOT NULL
     GROUP BY 1, 2, 3;
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
CREATE TRIGGER deliveries_event_count
    AFTER INSERT ON deliveries_event
    REFERENCING NEW TABLE AS inserted_events
    FOR EACH STATEMENT EXECUTE FUNCTION meshline_count_events();
"""
POSTGRES_BACKWARD = """
DROP TRIGGER IF EXISTS deliveries_event_count ON deliveries_event;
DROP FUNCTION IF EXISTS meshline_count_events();
"""
POSTGRES_BACKFILL = """
INSERT INTO deliveries_eventcount (organization_id, client_id, hour, count, compacted)
SELECT organization_id, client_id,
       date_trunc('hour', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*), true
  FROM deliveries_event
 WHERE source IN ('api', 'webhook') AND client_id IS NOT NULL
 GROUP BY 1, 2, 3
"""

# Django stores SQLite datetimes as UTC text, 'YYYY-MM-DD HH:MM:SS[.ffffff]'.
SQLITE_FORWARD = """
CREATE TRIGGER deliveries_event_count
AFTER INSERT ON deliveries_event
FOR EACH ROW WHEN NEW.source IN ('api', 'webhook') AND NEW.client_id IS NOT NULL
BEGIN
    INSERT INTO deliveries_eventcount (organization_id, client_id, hour, count, compacted)
    VALUES (
        NEW.organization_id, NEW.client_id, strftime('%Y-%m-%d %H:00:00', NEW.occurred_at), 1, 0
    );
END;
"""
SQLITE_BACKWARD = "DROP TRIGGER IF EXISTS deliveries_event_count"
SQLITE_BACKFILL = """
INSERT INTO deliveries_eventcount (organization_id, client_id, hour, count, compacted)
SELECT organization_id, client_id, strftime('%Y-%m-%d %H:00:00', occurred_at), count(*), 1
  FROM deliveries_event
 WHERE source IN ('api', 'webhook') AND client_id IS NOT NULL
 GROUP BY 1, 2, 3
"""


def forward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "postgresql":
        statements = [POSTGRES_FORWARD, POSTGRES_BACKFILL]
    elif vendor == "sqlite":
        statements = [SQLITE_FORWARD, SQLITE_BACKFILL]
    else:
        raise RuntimeError(f"Meshline runs on PostgreSQL or SQLite, not {vendor}")
    with schema_editor.connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def backward(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    statement = POSTGRES_BACKWARD if vendor == "postgresql" else SQLITE_BACKWARD
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(statement)
    apps.get_model("deliveries", "EventCount").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [("deliveries", "0003_event_count")]
    operations = [migrations.RunPython(forward, backward)]
