"""Webhook secrets leave the history table and notification rows.

A notification now points at the channel or endpoint whose secret signs it (read at send
time). Existing webhook notifications are linked to theirs before the copied secret is
dropped; webhook channels without a secret get one, since every webhook is now signed.
"""

import base64
import secrets

import django.db.models.deletion
from django.db import migrations, models

import meshline.outbound


def link_notifications(apps, schema_editor):
    Notification = apps.get_model("owners", "Notification")
    NotificationChannel = apps.get_model("owners", "NotificationChannel")
    WebhookEndpoint = apps.get_model("owners", "WebhookEndpoint")
    for channel in NotificationChannel._base_manager.filter(kind="webhook", secret=""):
        channel.secret = "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
        channel.save(update_fields=["secret"])
    rows = Notification._base_manager.filter(kind="webhook").exclude(status="sent")
    for notification in rows.iterator():
        if notification.recipient_id is not None:
            notification.channel = (
                NotificationChannel._base_manager.filter(
                    organization=notification.organization_id,
                    user=notification.recipient_id,
                    kind="webhook",
                    address=notification.address,
                )
                .order_by("pk")
                .first()
            )
        else:
            candidates = WebhookEndpoint._base_manager.filter(
                organization=notification.organization_id, url=notification.address
            ).order_by("pk")
            notification.endpoint = (
                candidates.filter(secret=notification.secret).first() or candidates.first()
            )
        notification.save(update_fields=["channel", "endpoint"])


class Migration(migrations.Migration):
    dependencies = [
        ("owners", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="notification",
            name="channel",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="owners.notificationchannel",
            ),
        ),
        migrations.AddField(
            model_name="notification",
            name="endpoint",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="owners.webhookendpoint",
            ),
        ),
        migrations.RunPython(link_notifications, migrations.RunPython.noop),
        migrations.RemoveField(
            model_name="notification",
            name="secret",
        ),
        migrations.RemoveField(
            model_name="historicalwebhookendpoint",
            name="secret",
        ),
        migrations.AlterField(
            model_name="notificationchannel",
            name="secret",
            field=models.CharField(blank=True, editable=False, max_length=200),
        ),
        migrations.AlterField(
            model_name="webhookendpoint",
            name="secret",
            field=models.CharField(
                default=meshline.outbound.generate_secret, editable=False, max_length=200
            ),
        ),
    ]
