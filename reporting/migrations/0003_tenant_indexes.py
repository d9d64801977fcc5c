"""Every unique constraint and index of the reporting tables leads with the organization
(tests/test_schema_distribution.py).

A CRM touch and a revenue row were one-to-one with their event; they are now unique per
(organization, event), which is the same rule (an event has one organization). The
deliverable foreign keys were already covered by indexes leading with the organization.

Locks: CONCURRENTLY for every index, a moment's lock to attach each unique constraint and
to drop the old ones.
"""

import django.db.models.deletion
from django.db import migrations, models

from meshline.migration_operations import (
    AddUniqueConstraintConcurrently,
    DropFieldIndexConcurrently,
    DropFieldUnique,
)


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("deliveries", "0008_tenant_indexes"),
        ("meshline", "0003_tenant_indexes"),
        ("reporting", "0002_search_row_as_of"),
    ]

    operations = [
        AddUniqueConstraintConcurrently(
            model_name="crmtouch",
            constraint=models.UniqueConstraint(
                fields=("organization", "event"), name="crm_touch_once_per_event"
            ),
        ),
        AddUniqueConstraintConcurrently(
            model_name="revenuerow",
            constraint=models.UniqueConstraint(
                fields=("organization", "event"), name="revenue_once_per_event"
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="attributionfact",
            name="deliverable",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attribution_facts",
                to="deliveries.deliverable",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="attributionmismatch",
            name="deliverable",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="attribution_mismatches",
                to="deliveries.deliverable",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="attributionmismatch",
            name="resolved_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="reporting.crmtouch",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="attributionshare",
            name="deliverable",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attribution_shares",
                to="deliveries.deliverable",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="attributionshare",
            name="revenue",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="shares",
                to="reporting.revenuerow",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="crmtouch",
            name="deliverable",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="crm_touches",
                to="deliveries.deliverable",
            ),
        ),
        DropFieldUnique(
            model_name="crmtouch",
            name="event",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="deliveries.event",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="revenuerow",
            name="deliverable",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="revenue_rows",
                to="deliveries.deliverable",
            ),
        ),
        DropFieldUnique(
            model_name="revenuerow",
            name="event",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="deliveries.event",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="searchperformance",
            name="deliverable",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="search_rows",
                to="deliveries.deliverable",
            ),
        ),
    ]
