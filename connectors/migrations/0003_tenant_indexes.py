"""Every unique constraint and index of the connectors tables leads with the organization
(tests/test_schema_distribution.py).

Public ids of inbound deliveries, subscriptions and outbound deliveries are looked up with
their organization everywhere (portal, API, tasks), so they are unique per organization
(UUIDv7s: no two organizations draw the same one). An endpoint's public id stays unique
alone: /hooks/<id> finds the organization by it. A vendor's delivery id is unique per
(organization, endpoint); an outbound delivery per (organization, subscription, event).
Due deliveries: (organization, next_attempt_at) WHERE pending, which also serves the beat's
fan-out.

Locks: CONCURRENTLY for every index, a moment's lock to attach or drop a constraint.
"""

import django.db.models.deletion
import meshline.ids
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
        ("connectors", "0002_contentful_kind"),
        ("deliveries", "0008_tenant_indexes"),
        ("meshline", "0003_tenant_indexes"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="outboundattempt",
            index=models.Index(
                fields=["organization", "delivery", "attempted_at"], name="outbound_attempts"
            ),
        ),
        AddIndexConcurrently(
            model_name="outbounddelivery",
            index=models.Index(
                condition=models.Q(("status", "pending")),
                fields=["organization", "next_attempt_at"],
                name="outbound_due",
            ),
        ),
        AddUniqueConstraintConcurrently(
            model_name="inbounddelivery",
            constraint=models.UniqueConstraint(
                fields=("organization", "endpoint", "vendor_delivery_id"),
                name="inbound_vendor_id_once",
            ),
        ),
        AddUniqueConstraintConcurrently(
            model_name="inbounddelivery",
            constraint=models.UniqueConstraint(
                fields=("organization", "public_id"), name="inbound_public_id_unique"
            ),
        ),
        AddUniqueConstraintConcurrently(
            model_name="outbounddelivery",
            constraint=models.UniqueConstraint(
                fields=("organization", "subscription", "event"), name="outbound_once_per_event"
            ),
        ),
        AddUniqueConstraintConcurrently(
            model_name="outbounddelivery",
            constraint=models.UniqueConstraint(
                fields=("organization", "public_id"), name="outbound_public_id_unique"
            ),
        ),
        AddUniqueConstraintConcurrently(
            model_name="subscription",
            constraint=models.UniqueConstraint(
                fields=("organization", "public_id"), name="subscription_public_id_unique"
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="inbounddelivery",
            name="endpoint",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="deliveries",
                to="connectors.inboundendpoint",
            ),
        ),
        DropFieldUnique(
            model_name="inbounddelivery",
            name="public_id",
            field=models.UUIDField(default=meshline.ids.uuid7, editable=False),
        ),
        DropFieldIndexConcurrently(
            model_name="inboundendpoint",
            name="client",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="deliveries.client",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="outboundattempt",
            name="delivery",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="attempt_log",
                to="connectors.outbounddelivery",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="outbounddelivery",
            name="event",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="deliveries.event",
            ),
        ),
        DropFieldUnique(
            model_name="outbounddelivery",
            name="public_id",
            field=models.UUIDField(default=meshline.ids.uuid7, editable=False),
        ),
        DropFieldIndexConcurrently(
            model_name="outbounddelivery",
            name="subscription",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="deliveries",
                to="connectors.subscription",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="rejecteddelivery",
            name="endpoint",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="rejections",
                to="connectors.inboundendpoint",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="subscription",
            name="client",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="deliveries.client",
            ),
        ),
        DropFieldUnique(
            model_name="subscription",
            name="public_id",
            field=models.UUIDField(default=meshline.ids.uuid7, editable=False),
        ),
        migrations.RemoveConstraint(
            model_name="inbounddelivery",
            name="inbound_vendor_id_unique",
        ),
        migrations.RemoveConstraint(
            model_name="outbounddelivery",
            name="outbound_delivery_unique",
        ),
        migrations.RemoveIndex(
            model_name="outbounddelivery",
            name="connectors__status_4cb3c2_idx",
        ),
    ]
