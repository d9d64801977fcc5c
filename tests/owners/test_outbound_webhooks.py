"""Webhook channels and escalation webhooks through the outbound guard: refused URLs are form
errors, deliveries are signed per Standard Webhooks, failures are stored as classified text,
and secrets are shown once, then masked, and kept out of history and notification rows.

Traffic goes only to 127.0.0.1; name resolution is mocked (no real DNS).
"""

import socket
from datetime import timedelta

import pytest
from django_scopes import scopes_disabled
from standardwebhooks import Webhook

from meshline import outbound
from owners import tasks
from owners.models import (
    ChannelKind,
    DeliveryStatus,
    Notification,
    NotificationChannel,
    StepAction,
    WebhookEndpoint,
)
from owners.services import escalation, notifications
from tests.owners.conftest import MONDAY_10_BERLIN
from tests.owners.factories import make_policy, make_role, make_rule
from tests.owners.test_escalation import one_step_policy
from tests.test_outbound import Receiver

pytestmark = pytest.mark.django_db
ADD_ENDPOINT = "/admin/owners/webhookendpoint/add/"
ADD_CHANNEL = "/admin/owners/notificationchannel/add/"


@pytest.fixture(autouse=True)
def public_dns(monkeypatch, settings):
    """Every host name resolves to a public address; nothing is allowed by the operator."""
    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = []

    def getaddrinfo(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture
def as_owner(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture(autouse=True)
def rule(in_a):
    """Tickets of page.published have an owner and a policy; nobody is on duty."""
    return make_rule(in_a, make_role(in_a), make_policy(in_a), event_type="page.published")


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def add_endpoint(client, organization, url):
    return client.post(
        ADD_ENDPOINT,
        {"organization": organization.pk, "name": "pager", "url": url, "is_active": "on"},
    )


# --- configuration time -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:5432/", "Meshline only calls public addresses"),
        ("http://169.254.169.254/latest/meta-data/", "Meshline only calls public addresses"),
        ("http://10.0.0.8/hook", "Meshline only calls public addresses"),
        ("http://[::1]/hook", "Meshline only calls public addresses"),
        ("http://[::ffff:127.0.0.1]/hook", "Meshline only calls public addresses"),
        ("ftp://files.example.com/hook", "Only http:// and https:// URLs"),
        ("file:///etc/passwd", "Enter a valid URL"),
    ],
)
def test_admin_refuses_a_webhook_to_a_blocked_url_with_a_form_error(as_owner, org_a, url, message):
    response = add_endpoint(as_owner, org_a, url)

    assert response.status_code == 200  # the form again, not a redirect
    assert message in " ".join(response.context["adminform"].form.errors["url"])
    with scopes_disabled():
        assert not WebhookEndpoint.objects.exists()


def test_admin_refuses_a_name_that_resolves_to_a_private_address(as_owner, org_a, monkeypatch):
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.1", port))
        ],
    )

    response = add_endpoint(as_owner, org_a, "https://rebind.example.com/hook")

    assert "resolves to" in " ".join(response.context["adminform"].form.errors["url"])
    with scopes_disabled():
        assert not WebhookEndpoint.objects.exists()


def test_admin_allows_an_operator_listed_host(as_owner, org_a, settings):
    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = ["10.0.0.0/8"]

    response = add_endpoint(as_owner, org_a, "http://10.0.0.8/hook")

    assert response.status_code == 200 and "Signing secret" in response.content.decode()
    with scopes_disabled():
        assert WebhookEndpoint.objects.get().url == "http://10.0.0.8/hook"


def test_webhook_channel_address_is_checked_but_an_email_channel_is_not(as_owner, org_a, member):
    response = as_owner.post(
        ADD_CHANNEL,
        {
            "organization": org_a.pk,
            "user": member.pk,
            "kind": ChannelKind.WEBHOOK,
            "address": "http://169.254.169.254/",
            "is_active": "on",
        },
    )
    assert "public addresses" in " ".join(response.context["adminform"].form.errors["address"])

    response = as_owner.post(
        ADD_CHANNEL,
        {
            "organization": org_a.pk,
            "user": member.pk,
            "kind": ChannelKind.EMAIL,
            "address": "pager@a.example",
            "is_active": "on",
        },
    )
    assert response.status_code == 302  # an email channel has no secret to show
    with scopes_disabled():
        [channel] = NotificationChannel.objects.all()
    assert (channel.kind, channel.secret) == (ChannelKind.EMAIL, "")


# --- secrets: shown once, then masked ---------------------------------------------------


def test_new_endpoint_secret_is_shown_once_then_masked_and_never_in_history(as_owner, org_a):
    response = add_endpoint(as_owner, org_a, "https://hooks.example.com/in")

    with scopes_disabled():
        endpoint = WebhookEndpoint.objects.get()
    assert endpoint.secret.startswith("whsec_")
    page = response.content.decode()
    assert endpoint.secret in page
    assert "no-store" in response["Cache-Control"]

    change = as_owner.get(f"/admin/owners/webhookendpoint/{endpoint.pk}/change/")
    assert change.status_code == 200
    assert endpoint.secret not in change.content.decode()
    assert outbound.mask_secret(endpoint.secret) in change.content.decode()
    assert "secret" not in change.context["adminform"].form.fields

    history = as_owner.get(f"/admin/owners/webhookendpoint/{endpoint.pk}/history/")
    assert history.status_code == 200 and endpoint.secret not in history.content.decode()
    with scopes_disabled():
        version = endpoint.history.get()
        assert not hasattr(version, "secret")
        # Reverting to a version keeps the current secret (simple-history reads it back).
        assert version.instance.secret == endpoint.secret


def test_new_webhook_channel_secret_is_shown_once(as_owner, org_a, member):
    response = as_owner.post(
        ADD_CHANNEL,
        {
            "organization": org_a.pk,
            "user": member.pk,
            "kind": ChannelKind.WEBHOOK,
            "address": "https://pager.example.com/in",
            "is_active": "on",
        },
    )

    with scopes_disabled():
        channel = NotificationChannel.objects.get()
    assert channel.secret.startswith("whsec_") and channel.secret in response.content.decode()
    change = as_owner.get(f"/admin/owners/notificationchannel/{channel.pk}/change/")
    assert channel.secret not in change.content.decode()


def test_turning_an_email_channel_into_a_webhook_shows_its_new_secret_once(as_owner, org_a, member):
    with scopes_disabled():
        channel = NotificationChannel.objects.create(
            organization=org_a, user=member, kind=ChannelKind.EMAIL, address="p@a.example"
        )
    form = {"organization": org_a.pk, "user": member.pk, "is_active": "on"}
    url = f"/admin/owners/notificationchannel/{channel.pk}/change/"

    response = as_owner.post(
        url, {**form, "kind": ChannelKind.WEBHOOK, "address": "https://pager.example.com/"}
    )

    channel.refresh_from_db()
    assert channel.secret.startswith("whsec_") and channel.secret in response.content.decode()
    # A later edit keeps the secret and does not show it again.
    response = as_owner.post(
        url, {**form, "kind": ChannelKind.WEBHOOK, "address": "https://pager2.example.com/"}
    )
    assert response.status_code == 302
    secret = channel.secret
    channel.refresh_from_db()
    assert channel.secret == secret


def test_rotating_shows_the_new_secret_once_and_only_for_own_rows(as_owner, org_a, org_b):
    with scopes_disabled():
        ours = WebhookEndpoint.objects.create(
            organization=org_a, name="ours", url="https://a.example.com/"
        )
        theirs = WebhookEndpoint.objects.create(
            organization=org_b, name="theirs", url="https://b.example.com/"
        )
    old_ours, old_theirs = ours.secret, theirs.secret

    response = as_owner.post(
        "/admin/owners/webhookendpoint/",
        {"action": "rotate_secret", "_selected_action": [ours.pk, theirs.pk]},
    )

    ours.refresh_from_db()
    theirs.refresh_from_db()
    assert ours.secret != old_ours and ours.secret in response.content.decode()
    assert theirs.secret == old_theirs  # another tenant's row is not touched
    assert "b.example.com" not in response.content.decode()


def test_another_tenants_endpoint_history_is_404(as_owner, org_b):
    with scopes_disabled():
        theirs = WebhookEndpoint.objects.create(
            organization=org_b, name="theirs", url="https://b.example.com/"
        )

    response = as_owner.get(f"/admin/owners/webhookendpoint/{theirs.pk}/history/")

    assert response.status_code == 404


# --- send time ----------------------------------------------------------------------------


def test_channel_delivery_is_signed_and_verifies_with_standard_webhooks(
    in_a, member, open_ticket, receiver, settings
):
    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    channel = NotificationChannel.objects.create(
        organization=in_a, user=member, kind=ChannelKind.WEBHOOK, address=receiver.url
    )
    ticket = open_ticket()

    [pk] = notifications.notify(ticket, member, "Heads up", dedupe_key="t:signed")
    assert notifications.send(pk) is True

    [(_path, headers, body)] = receiver.requests
    payload = Webhook(channel.secret).verify(body, headers)
    assert payload["subject"] == "Heads up" and payload["ticket_id"] == str(ticket.pk)
    notification = Notification.objects.get(pk=pk)
    assert notification.channel == channel
    assert channel.secret not in str(Notification.objects.filter(pk=pk).values().get())


def test_retries_keep_the_webhook_id_so_receivers_can_drop_duplicates(
    in_a, member, open_ticket, receiver, settings
):
    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    NotificationChannel.objects.create(
        organization=in_a, user=member, kind=ChannelKind.WEBHOOK, address=receiver.url
    )
    [pk] = notifications.notify(open_ticket(), member, "x", dedupe_key="t:retry")
    receiver.status = 503

    assert notifications.send(pk) is False
    receiver.status = 200
    assert notifications.send(pk) is True

    ids = [headers["webhook-id"] for _path, headers, _body in receiver.requests]
    assert ids == [f"msg_meshline_{pk}"] * 2
    assert [a.detail for a in Notification.objects.get(pk=pk).log.all()] == ["HTTP 503", "HTTP 200"]


def test_loopback_receiver_is_refused_without_the_operator_setting(
    in_a, member, open_ticket, receiver
):
    NotificationChannel.objects.create(
        organization=in_a, user=member, kind=ChannelKind.WEBHOOK, address=receiver.url
    )
    [pk] = notifications.notify(open_ticket(), member, "x", dedupe_key="t:loop")

    assert notifications.send(pk) is False

    assert receiver.requests == []
    notification = Notification.objects.get(pk=pk)
    assert notification.last_error == "blocked address"
    assert [a.detail for a in notification.log.all()] == ["blocked address"]


def test_redirect_to_the_metadata_address_is_stored_as_blocked(
    in_a, member, open_ticket, receiver, settings, monkeypatch
):
    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    receiver.status, receiver.location = 302, "http://169.254.169.254/latest/meta-data/"
    connected = []
    real_connect = outbound._connect
    monkeypatch.setattr(
        outbound,
        "_connect",
        lambda addresses, port, timeout: (
            connected.append([str(a) for a in addresses]) or real_connect(addresses, port, timeout)
        ),
    )
    NotificationChannel.objects.create(
        organization=in_a, user=member, kind=ChannelKind.WEBHOOK, address=f"{receiver.url}/in"
    )
    [pk] = notifications.notify(open_ticket(), member, "x", dedupe_key="t:redirect")

    assert notifications.send(pk) is False

    assert [path for path, _headers, _body in receiver.requests] == ["/in"]
    assert connected == [["127.0.0.1"]]  # never 169.254.169.254
    assert Notification.objects.get(pk=pk).last_error == "blocked address"


def test_stored_errors_are_classified_without_internals(in_a, member, open_ticket, settings):
    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    NotificationChannel.objects.create(
        organization=in_a,
        user=member,
        kind=ChannelKind.WEBHOOK,
        address=f"http://127.0.0.1:{port}/hook",
    )
    [pk] = notifications.notify(open_ticket(), member, "x", dedupe_key="t:closed")

    tasks.send_notification.apply(kwargs={"organization_id": in_a.pk, "notification_id": pk})

    notification = Notification.objects.get(pk=pk)
    assert notification.status == DeliveryStatus.FAILED
    details = {a.detail for a in notification.log.all()} | {notification.last_error}
    assert details == {"connection refused"}  # no errno, address, port or exception name


def test_escalation_webhook_stored_before_the_guard_fails_at_send_as_blocked(
    in_a, rule, client, owner, open_ticket
):
    # Stored without clean(), as rows from before this check were.
    hook = WebhookEndpoint.objects.create(
        organization=in_a, name="legacy", url="http://127.0.0.1:5432/"
    )
    rule.escalation_policy = one_step_policy(in_a, StepAction.WEBHOOK, webhook=hook)
    rule.save()
    open_ticket()
    client.force_login(owner)

    assert client.get(f"/admin/owners/webhookendpoint/{hook.pk}/change/").status_code == 200
    assert client.get("/admin/owners/webhookendpoint/").status_code == 200
    assert escalation.escalate_due_tickets(in_a, now=MONDAY_10_BERLIN + timedelta(hours=1)) == 1
    [notification] = Notification.objects.filter(kind=ChannelKind.WEBHOOK)
    assert notifications.send(notification.pk) is False

    notification.refresh_from_db()
    assert notification.last_error == "blocked address"
    assert client.get(f"/admin/owners/notification/{notification.pk}/change/").status_code == 200


def test_deleted_endpoint_fails_as_no_signing_secret(in_a, open_ticket):
    hook = WebhookEndpoint.objects.create(
        organization=in_a, name="gone", url="https://hooks.example.com/"
    )
    outbox = notifications.Outbox(in_a.pk)
    outbox.notify_webhook(open_ticket(), hook, "x", dedupe_key="hook:gone")
    [pk] = outbox.flush()
    hook.delete()

    assert notifications.send(pk) is False

    assert Notification.objects.get(pk=pk).last_error == "no signing secret"
