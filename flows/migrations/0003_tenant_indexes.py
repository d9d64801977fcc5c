"""Every index of the flows tables leads with the organization
(tests/test_schema_distribution.py).

Runs' foreign keys were covered by flow_run_flow, flow_run_deliverable and the unique
(organization, flow, trigger_event); the people's and the slugs' single-column indexes
served no query. Locks: DROP INDEX CONCURRENTLY only.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from meshline.migration_operations import DropFieldIndexConcurrently


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("deliveries", "0008_tenant_indexes"),
        ("flows", "0002_incident_mode_pauses_runs"),
        ("owners", "0006_tenant_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        DropFieldIndexConcurrently(
            model_name="change",
            name="decided_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="change",
            name="proposed_by",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="change",
            name="rolled_back_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="flow",
            name="owner_role",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                help_text="Who gets breach tickets. Blank: the owner map decides.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="flows",
                to="owners.ownerrole",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="flow",
            name="slug",
            field=models.SlugField(db_index=False, max_length=63),
        ),
        DropFieldIndexConcurrently(
            model_name="flow",
            name="template",
            field=models.SlugField(
                blank=True, db_index=False, help_text="Shipped template, if any.", max_length=63
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="flowrun",
            name="client",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="deliveries.client",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="flowrun",
            name="deliverable",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="flow_runs",
                to="deliveries.deliverable",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="flowrun",
            name="flow",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="runs",
                to="flows.flow",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="flowrun",
            name="trigger_event",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="deliveries.event",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="flowticketlink",
            name="run",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="ticket_links",
                to="flows.flowrun",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="historicalflow",
            name="slug",
            field=models.SlugField(db_index=False, max_length=63),
        ),
        DropFieldIndexConcurrently(
            model_name="historicalflow",
            name="template",
            field=models.SlugField(
                blank=True, db_index=False, help_text="Shipped template, if any.", max_length=63
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="incident",
            name="declared_by",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="incident",
            name="ended_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
