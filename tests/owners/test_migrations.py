"""owners 0002: pending webhook notifications keep a way to their secret after the copied
secret column is dropped; secret-less webhook channels get a secret."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("owners", "0001_initial")]
AFTER = [("owners", "0002_webhook_secrets_out_of_history_and_notifications")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


@pytest.fixture
def latest_schema_afterwards():
    """Migrating owners back unapplies every migration that depends on it (billing's,
    flows', ...), and migrating owners forward does not bring those back: put every app on
    its latest migration again, or the rest of the session runs without their tables."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_existing_webhook_notifications_are_linked_before_the_secret_column_goes(
    latest_schema_afterwards, org_a, member
):
    apps = migrate(BEFORE)
    try:
        Channel = apps.get_model("owners", "NotificationChannel")
        Endpoint = apps.get_model("owners", "WebhookEndpoint")
        Notification = apps.get_model("owners", "Notification")
        channel = Channel._base_manager.create(
            organization_id=org_a.pk,
            user_id=member.pk,
            kind="webhook",
            address="https://pager.example.com/",
            secret="",
        )
        Endpoint._base_manager.create(
            organization_id=org_a.pk, name="old", url="https://ops.example.com/", secret="x"
        )
        endpoint = Endpoint._base_manager.create(
            organization_id=org_a.pk, name="new", url="https://ops.example.com/", secret="s3cret"
        )
        common = {"organization_id": org_a.pk, "kind": "webhook", "subject": "s"}
        to_channel = Notification._base_manager.create(
            **common,
            recipient_id=member.pk,
            address=channel.address,
            secret="",
            dedupe_key="a",
        )
        to_endpoint = Notification._base_manager.create(
            **common, address=endpoint.url, secret="s3cret", dedupe_key="b"
        )
        email = Notification._base_manager.create(
            organization_id=org_a.pk,
            kind="email",
            subject="s",
            address="x@a.example",
            dedupe_key="c",
        )
    finally:
        apps = migrate(AFTER)

    Channel = apps.get_model("owners", "NotificationChannel")
    Notification = apps.get_model("owners", "Notification")
    rows = {n.pk: n for n in Notification._base_manager.all()}
    assert rows[to_channel.pk].channel_id == channel.pk
    assert rows[to_endpoint.pk].endpoint_id == endpoint.pk  # the one with the same secret
    assert (rows[email.pk].channel_id, rows[email.pk].endpoint_id) == (None, None)
    assert Channel._base_manager.get(pk=channel.pk).secret.startswith("whsec_")
    assert "secret" not in {f.name for f in Notification._meta.get_fields()}
    history = apps.get_model("owners", "HistoricalWebhookEndpoint")
    assert "secret" not in {f.name for f in history._meta.get_fields()}
