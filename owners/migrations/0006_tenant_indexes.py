"""Every unique constraint and index of the owners tables leads with the organization
(tests/test_schema_distribution.py).

New: notification_ticket, notification_attempts, ticket_assignee (organization first),
calendar_once_per_client (a client's calendar was a one-to-one: the same rule, per
organization). Single-column foreign-key indexes go; configuration tables (roles, rules,
policies, rotas) are read by organization and are small.

Locks: indexes are built and dropped CONCURRENTLY (reads and writes go on); the new unique
constraint is built as a unique index CONCURRENTLY, then attached with a moment's lock; the
calendar's old one-to-one unique is dropped with a moment's lock. Historical tables'
slug indexes are dropped the same way.
"""

import django.db.models.deletion
from django.conf import settings
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
        ("meshline", "0003_tenant_indexes"),
        ("owners", "0005_backlog_incident"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="notification",
            index=models.Index(fields=["organization", "ticket"], name="notification_ticket"),
        ),
        AddIndexConcurrently(
            model_name="notificationattempt",
            index=models.Index(
                fields=["organization", "notification"], name="notification_attempts"
            ),
        ),
        AddIndexConcurrently(
            model_name="ticket",
            index=models.Index(fields=["organization", "assignee"], name="ticket_assignee"),
        ),
        AddUniqueConstraintConcurrently(
            model_name="businesscalendar",
            constraint=models.UniqueConstraint(
                fields=("organization", "client"), name="calendar_once_per_client"
            ),
        ),
        DropFieldUnique(
            model_name="businesscalendar",
            name="client",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="deliveries.client",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="escalationstep",
            name="policy",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="steps",
                to="owners.escalationpolicy",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="escalationstep",
            name="target_role",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="owners.ownerrole",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="escalationstep",
            name="webhook",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="owners.webhookendpoint",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="historicalownerrole",
            name="slug",
            field=models.SlugField(db_index=False, max_length=63),
        ),
        DropFieldIndexConcurrently(
            model_name="holiday",
            name="calendar",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="holidays",
                to="owners.businesscalendar",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="notification",
            name="channel",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="owners.notificationchannel",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="notification",
            name="endpoint",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="owners.webhookendpoint",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="notification",
            name="recipient",
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
            model_name="notification",
            name="ticket",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="notifications",
                to="owners.ticket",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="notificationattempt",
            name="notification",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="log",
                to="owners.notification",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="notificationchannel",
            name="user",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="ownerrole",
            name="slug",
            field=models.SlugField(db_index=False, max_length=63),
        ),
        DropFieldIndexConcurrently(
            model_name="ownerrule",
            name="backup_role",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="backup_rules",
                to="owners.ownerrole",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="ownerrule",
            name="escalation_policy",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="rules",
                to="owners.escalationpolicy",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="ownerrule",
            name="owner_role",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="rules",
                to="owners.ownerrole",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="rotalayer",
            name="rota",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="layers",
                to="owners.rota",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="rotaoverride",
            name="person",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="rotaoverride",
            name="rota",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="overrides",
                to="owners.rota",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="ticket",
            name="assignee",
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
            model_name="ticket",
            name="calendar",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="owners.businesscalendar",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="ticket",
            name="deliverable",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="tickets",
                to="deliveries.deliverable",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="ticket",
            name="owner_role",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="tickets",
                to="owners.ownerrole",
            ),
        ),
    ]
