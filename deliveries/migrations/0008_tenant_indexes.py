"""Every index of the trail leads with its organization (tests/test_schema_distribution.py).

deliveries_event, the biggest table, loses three single-column indexes (organization,
deliverable, client) and gains one, (organization, client, -id), for ?client= newest first:
each ingested event writes two index entries fewer. The trail's other lookups were already
served by indexes leading with the organization (event_trail covers the deliverable).
Hourly counts get (organization, client, hour) in place of the client's own index.


Locks: CREATE/DROP INDEX CONCURRENTLY only; reads and writes go on. Each waits for the
transactions running when it starts. Building the new index reads the table once (about
1-2 s per million events here); the new index exists before the old ones go.
"""

import django.db.models.deletion
from django.db import migrations, models

from meshline.migration_operations import AddIndexConcurrently, DropFieldIndexConcurrently


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("deliveries", "0007_eventprocessing_replay"),
        ("meshline", "0003_tenant_indexes"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="event",
            index=models.Index(
                fields=["organization", "client", "-id"], name="event_client_recent"
            ),
        ),
        AddIndexConcurrently(
            model_name="eventcount",
            index=models.Index(
                fields=["organization", "client", "hour"], name="event_count_client"
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="deliverable",
            name="client",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="deliverables",
                to="deliveries.client",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="event",
            name="client",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="events",
                to="deliveries.client",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="event",
            name="deliverable",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="events",
                to="deliveries.deliverable",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="event",
            name="organization",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="events",
                to="meshline.organization",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="eventcount",
            name="client",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="deliveries.client",
            ),
        ),
    ]
