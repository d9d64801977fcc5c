"""Runs by (deliverable, flow, started_at), replacing the index on (deliverable) alone.

Processing reads, per deliverable and flow, only the latest run started before its events
(plus the open ones and those in the batch's time span) instead of every run the
deliverable ever had: a page republished daily gathers a publish-to-indexed run a day. The
new index serves that read and the deliverable foreign key, so the old one goes. Locks:
CREATE / DROP INDEX CONCURRENTLY only.
"""

from django.db import migrations, models

from meshline.migration_operations import AddIndexConcurrently, RemoveIndexConcurrently


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("deliveries", "0008_tenant_indexes"),
        ("flows", "0003_tenant_indexes"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="flowrun",
            index=models.Index(
                fields=["organization", "deliverable", "flow", "started_at", "id"],
                name="flow_run_deliverable_flow",
            ),
        ),
        RemoveIndexConcurrently(model_name="flowrun", name="flow_run_deliverable"),
    ]
