"""Every unique constraint and index of the gates tables leads with the organization
(tests/test_schema_distribution.py).

gates_gateevaluation, the second biggest table, loses four single-column indexes and gains
(organization, event) for an event's verdicts; gate and deliverable were covered by
evaluation_gate and evaluation_deliverable already. A ticket link is unique per
(organization, evaluation) (it was a one-to-one). Waiting timers are indexed by
(organization, due_at): the expiry sweep of one organization and the beat's fan-out.

Locks: CONCURRENTLY for every index (new ones are built before old ones go), a moment's
lock to attach or drop a constraint.
"""

import django.db.models.deletion
from django.db import migrations, models

from meshline.migration_operations import (
    AddIndexConcurrently,
    AddUniqueConstraintConcurrently,
    DropFieldIndexConcurrently,
    DropFieldUnique,
)


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("deliveries", "0008_tenant_indexes"),
        ("gates", "0004_gate_priority_choices"),
        ("meshline", "0003_tenant_indexes"),
        ("owners", "0006_tenant_indexes"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="artifact",
            index=models.Index(fields=["organization", "evaluation"], name="artifact_evaluation"),
        ),
        AddIndexConcurrently(
            model_name="gateevaluation",
            index=models.Index(fields=["organization", "event"], name="evaluation_event"),
        ),
        AddIndexConcurrently(
            model_name="sitemaptimer",
            index=models.Index(
                condition=models.Q(("status", "waiting")),
                fields=["organization", "due_at"],
                name="timer_due",
            ),
        ),
        AddUniqueConstraintConcurrently(
            model_name="gateticketlink",
            constraint=models.UniqueConstraint(
                fields=("organization", "evaluation"), name="gate_link_once_per_evaluation"
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="artifact",
            name="evaluation",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="artifacts",
                to="gates.gateevaluation",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="gate",
            name="slug",
            field=models.SlugField(db_index=False, max_length=63),
        ),
        DropFieldIndexConcurrently(
            model_name="gateevaluation",
            name="deliverable",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="gate_evaluations",
                to="deliveries.deliverable",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="gateevaluation",
            name="event",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="gate_evaluations",
                to="deliveries.event",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="gateevaluation",
            name="gate",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="evaluations",
                to="gates.gate",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="gateevaluation",
            name="ticket",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="owners.ticket",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="gateticketlink",
            name="deliverable",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="deliveries.deliverable",
            ),
        ),
        DropFieldUnique(
            model_name="gateticketlink",
            name="evaluation",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="opened",
                to="gates.gateevaluation",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="gateticketlink",
            name="gate",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="ticket_links",
                to="gates.gate",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="historicalgate",
            name="slug",
            field=models.SlugField(db_index=False, max_length=63),
        ),
        DropFieldIndexConcurrently(
            model_name="sitemaptimer",
            name="deliverable",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="deliveries.deliverable",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="sitemaptimer",
            name="gate",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="timers",
                to="gates.gate",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="sitemaptimer",
            name="settled_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="deliveries.event",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="sitemaptimer",
            name="started_by",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="deliveries.event",
            ),
        ),
        migrations.RemoveIndex(
            model_name="sitemaptimer",
            name="timer_waiting_due",
        ),
    ]
