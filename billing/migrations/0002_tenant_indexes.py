"""Every unique constraint and index of the billing tables leads with the organization
(tests/test_schema_distribution.py).

Invoice lines are unique per (organization, invoice, position); an agreement per
(organization, source event); a billing exception per (organization, event): the same rules
as before, since each parent has one organization. Items get (organization, client,
occurred_at) for drafting an invoice, (organization, deliverable, -proposed_at) for the
deliverable page and (organization, invoice).

Locks: CONCURRENTLY for every index, a moment's lock to attach or drop a constraint.
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
        ("billing", "0001_agreements_items_invoices"),
        ("deliveries", "0008_tenant_indexes"),
        ("meshline", "0003_tenant_indexes"),
        ("owners", "0006_tenant_indexes"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="billableitem",
            index=models.Index(
                fields=["organization", "client", "occurred_at"], name="item_client"
            ),
        ),
        AddIndexConcurrently(
            model_name="billableitem",
            index=models.Index(
                fields=["organization", "deliverable", "-proposed_at"], name="item_deliverable"
            ),
        ),
        AddIndexConcurrently(
            model_name="billableitem",
            index=models.Index(fields=["organization", "invoice"], name="item_invoice"),
        ),
        AddIndexConcurrently(
            model_name="invoiceline",
            index=models.Index(fields=["organization", "item"], name="invoice_line_item"),
        ),
        AddUniqueConstraintConcurrently(
            model_name="billingticketlink",
            constraint=models.UniqueConstraint(
                fields=("organization", "event"), name="billing_link_once_per_event"
            ),
        ),
        AddUniqueConstraintConcurrently(
            model_name="invoiceline",
            constraint=models.UniqueConstraint(
                fields=("organization", "invoice", "position"), name="invoice_line_unique"
            ),
        ),
        AddUniqueConstraintConcurrently(
            model_name="scopeagreement",
            constraint=models.UniqueConstraint(
                fields=("organization", "source_event"), name="agreement_once_per_event"
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="billableitem",
            name="agreement",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="items",
                to="billing.scopeagreement",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="billableitem",
            name="client",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="deliveries.client",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="billableitem",
            name="deliverable",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="billable_items",
                to="deliveries.deliverable",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="billableitem",
            name="invoice",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="items",
                to="billing.invoice",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="billingticketlink",
            name="deliverable",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="deliveries.deliverable",
            ),
        ),
        DropFieldUnique(
            model_name="billingticketlink",
            name="event",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="deliveries.event",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="invoice",
            name="client",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="deliveries.client",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="invoice",
            name="corrects",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="credit_notes",
                to="billing.invoice",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="invoiceline",
            name="invoice",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="lines",
                to="billing.invoice",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="invoiceline",
            name="item",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="lines",
                to="billing.billableitem",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="scopeagreement",
            name="client",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="agreements",
                to="deliveries.client",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="scopeagreement",
            name="deliverable",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                help_text="Empty: the agreement covers all of the client's work.",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="agreements",
                to="deliveries.deliverable",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="scopeagreement",
            name="signing_key",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="billing.signingkey",
            ),
        ),
        DropFieldUnique(
            model_name="scopeagreement",
            name="source_event",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="deliveries.event",
            ),
        ),
        migrations.RemoveConstraint(
            model_name="invoiceline",
            name="invoice_line_position",
        ),
    ]
