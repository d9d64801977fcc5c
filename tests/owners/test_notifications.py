"""Notifications: email and signed webhooks, every attempt recorded, retried with backoff,
sent once per dedupe key; people nobody can reach are flagged before their shift."""

import json
import socket
import threading
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from standardwebhooks import Webhook, WebhookVerificationError

from meshline.models import Role
from meshline.services import create_user
from owners import tasks
from owners.models import (
    ChannelKind,
    DeliveryStatus,
    Notification,
    NotificationChannel,
    Rota,
    RotaLayer,
    WebhookEndpoint,
)
from owners.services import notifications, rotas
from tests.conftest import PASSWORD
from tests.owners.factories import make_policy, make_role, make_rule

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def allow_loopback(settings):
    """The local receivers live on 127.0.0.1, which the outbound guard refuses unless the
    operator allows it (tests/owners/test_outbound_webhooks.py proves the refusal)."""
    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]


@pytest.fixture
def ticket(in_a, member, open_ticket):
    make_rule(in_a, make_role(in_a), make_policy(in_a), event_type="page.published")
    return open_ticket()  # no rota: nobody on duty, so nothing is queued at opening


class Receiver:
    """A local HTTP server that records each POST and answers with ``status``."""

    def __init__(self, status=200):
        self.status = status
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/meshline"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def closed_port_url():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def webhook_notification(organization, ticket, url, secret="topsecret") -> Notification:
    endpoint = WebhookEndpoint.objects.create(
        organization=organization, name="ops", url=url, secret=secret
    )
    outbox = notifications.Outbox(ticket.organization_id)  # as the escalation sweep does
    outbox.notify_webhook(ticket, endpoint, "Escalated", dedupe_key="hook:1")
    [pk] = outbox.flush()
    return Notification.objects.get(pk=pk)


def test_email_is_sent_and_the_attempt_recorded(in_a, ticket, member):
    [pk] = notifications.notify(ticket, member, "New ticket", dedupe_key="t:1")

    assert notifications.send(pk) is True

    [message] = mail.outbox
    assert message.to == [member.email] and message.subject == "New ticket"
    assert json.loads(message.body)["ticket_id"] == str(ticket.pk)
    notification = Notification.objects.get(pk=pk)
    assert notification.status == DeliveryStatus.SENT and notification.attempts == 1
    assert notification.sent_at is not None
    [attempt] = notification.log.all()
    assert attempt.ok and attempt.detail == "sent"

    assert notifications.send(pk) is True  # already sent: no second email
    assert len(mail.outbox) == 1 and notification.log.count() == 1


def test_notify_sends_after_commit_through_the_task(
    in_a, ticket, member, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        [pk] = notifications.notify(ticket, member, "Heads up", dedupe_key="t:2")
        assert mail.outbox == []  # nothing leaves before the transaction commits

    assert [m.to for m in mail.outbox] == [[member.email]]
    assert Notification.objects.get(pk=pk).status == DeliveryStatus.SENT


def test_notify_uses_each_working_channel_instead_of_the_account_email(
    in_a, ticket, member, receiver
):
    NotificationChannel.objects.create(
        organization=in_a, user=member, kind=ChannelKind.EMAIL, address="pager@a.example"
    )
    NotificationChannel.objects.create(
        organization=in_a, user=member, kind=ChannelKind.WEBHOOK, address=receiver.url, secret="x"
    )
    NotificationChannel.objects.create(
        organization=in_a,
        user=member,
        kind=ChannelKind.EMAIL,
        address="broken@a.example",
        failing_since=datetime(2026, 1, 1, tzinfo=UTC),
    )

    notifications.notify(ticket, member, "Hi", dedupe_key="t:3")

    assert set(Notification.objects.values_list("kind", "address")) == {
        ("email", "pager@a.example"),
        ("webhook", receiver.url),
    }


def test_same_dedupe_key_makes_one_notification(in_a, ticket, member):
    first = notifications.notify(ticket, member, "Escalated", dedupe_key="ticket:x:step:0")
    second = notifications.notify(ticket, member, "Escalated again", dedupe_key="ticket:x:step:0")

    assert len(first) == 1 and second == []
    [notification] = Notification.objects.all()
    assert notification.subject == "Escalated"
    assert notifications.notify(ticket, member, "Other", dedupe_key="ticket:x:step:1")


def test_webhook_is_posted_with_a_valid_signature(in_a, ticket, receiver):
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    notification = webhook_notification(in_a, ticket, receiver.url, secret=secret)

    assert notifications.send(notification.pk) is True

    [(headers, body)] = receiver.requests
    # Verified as any Standard Webhooks receiver would: id, timestamp and body are signed.
    payload = Webhook(secret).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 32).verify(body, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace(b"Escalated", b"Escalatex"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, {**headers, "webhook-id": "msg_other"})
    assert headers["webhook-id"] == f"msg_meshline_{notification.pk}"
    assert headers["content-type"] == "application/json"
    assert "x-meshline-signature" not in headers
    assert payload["subject"] == "Escalated" and payload["ticket_id"] == str(ticket.pk)
    notification.refresh_from_db()
    assert notification.status == DeliveryStatus.SENT
    assert [(a.ok, a.detail) for a in notification.log.all()] == [(True, "HTTP 200")]


def test_webhook_answering_500_records_a_failed_attempt(in_a, ticket, receiver):
    receiver.status = 500
    notification = webhook_notification(in_a, ticket, receiver.url)

    assert notifications.send(notification.pk) is False

    notification.refresh_from_db()
    assert notification.status == DeliveryStatus.PENDING and notification.attempts == 1
    assert notification.last_error == "HTTP 500"
    [attempt] = notification.log.all()
    assert not attempt.ok and attempt.detail == "HTTP 500"
    assert len(receiver.requests) == 1


def test_webhook_to_a_closed_port_records_a_failed_attempt(in_a, ticket, closed_port_url):
    notification = webhook_notification(in_a, ticket, closed_port_url)

    assert notifications.send(notification.pk) is False

    notification.refresh_from_db()
    assert notification.attempts == 1 and notification.last_error == "connection refused"
    assert notification.log.get().detail == "connection refused"


def test_give_up_marks_failed_but_never_a_sent_notification(in_a, ticket, member):
    failing, sent = (
        notifications.notify(ticket, member, "x", dedupe_key=key)[0] for key in ("a", "b")
    )
    notifications.send(sent)

    notifications.give_up(failing)
    notifications.give_up(sent)

    statuses = dict(Notification.objects.values_list("pk", "status"))
    assert statuses == {failing: DeliveryStatus.FAILED, sent: DeliveryStatus.SENT}


def test_task_retries_with_backoff_then_gives_up(in_a, ticket, closed_port_url, monkeypatch):
    notification = webhook_notification(in_a, ticket, closed_port_url)
    countdowns = []
    retry = tasks.send_notification.retry

    def recording_retry(*args, **kwargs):
        countdowns.append(kwargs["countdown"])
        return retry(*args, **kwargs)

    monkeypatch.setattr(tasks.send_notification, "retry", recording_retry)

    result = tasks.send_notification.apply(
        kwargs={"organization_id": in_a.pk, "notification_id": notification.pk}
    )

    assert result.get() is False
    assert countdowns == [30, 60, 120, 240, 480]
    notification.refresh_from_db()
    assert notification.status == DeliveryStatus.FAILED
    assert notification.attempts == tasks.NOTIFY_MAX_RETRIES + 1
    assert notification.log.filter(ok=False).count() == tasks.NOTIFY_MAX_RETRIES + 1


def test_task_stops_retrying_once_delivery_succeeds(in_a, ticket, receiver, monkeypatch):
    notification = webhook_notification(in_a, ticket, receiver.url)
    receiver.status = 503
    retry = tasks.send_notification.retry

    def recover_then_retry(*args, **kwargs):
        receiver.status = 200
        return retry(*args, **kwargs)

    monkeypatch.setattr(tasks.send_notification, "retry", recover_then_retry)

    result = tasks.send_notification.apply(
        kwargs={"organization_id": in_a.pk, "notification_id": notification.pk}
    )

    assert result.get() is True
    notification.refresh_from_db()
    assert notification.status == DeliveryStatus.SENT
    assert [a.ok for a in notification.log.all()] == [False, True]


def test_channel_that_kept_failing_is_marked_failing_when_the_task_gives_up(
    in_a, ticket, member, closed_port_url
):
    channel = NotificationChannel.objects.create(
        organization=in_a, user=member, kind=ChannelKind.WEBHOOK, address=closed_port_url
    )
    [pk] = notifications.notify(ticket, member, "x", dedupe_key="t:4")

    tasks.send_notification.apply(kwargs={"organization_id": in_a.pk, "notification_id": pk})

    channel.refresh_from_db()
    assert channel.failing_since is not None
    # The failing channel is skipped from now on; the account email is the fallback.
    assert notifications.channels_for(in_a.pk, member) == [("email", member.email, None)]


@pytest.fixture
def unreachable(org_a):
    """A member with no email address and no channel."""
    user = create_user("nomail@a.example", org_a, Role.ACCOUNT_MANAGER, PASSWORD)
    get_user_model().objects.filter(pk=user.pk).update(email="")
    user.refresh_from_db()
    return user


def week_rota(organization, role, people, windows=()):
    rota = Rota.objects.create(organization=organization, role=role, timezone="Europe/Berlin")
    RotaLayer.objects.create(
        organization=organization,
        rota=rota,
        name="weekly",
        start_date=date(2026, 1, 5),
        people=[p.pk for p in people],
        windows=list(windows),
    )
    return rota


def test_coverage_report_flags_a_person_nobody_can_reach(in_a, member, unreachable):
    week_rota(in_a, make_role(in_a), [member, unreachable])
    start = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)  # member's week starts

    problems = rotas.coverage_report(in_a, start, start + timedelta(days=14))

    assert [(p.kind, p.start, p.end) for p in problems] == [
        ("no_channel", start + timedelta(days=7), start + timedelta(days=14))
    ]
    # The email is blank, so the person is named by their username.
    assert problems[0].detail.startswith("nomail@a.example goes on duty")

    NotificationChannel.objects.create(
        organization=in_a, user=unreachable, kind=ChannelKind.WEBHOOK, address="http://x.example"
    )
    assert rotas.coverage_report(in_a, start, start + timedelta(days=14)) == []


def test_coverage_report_shows_gaps(in_a, member):
    office = {"weekdays": [0, 1, 2, 3, 4], "start": "09:00", "end": "18:00"}
    week_rota(in_a, make_role(in_a), [member], windows=[office])
    monday = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)

    problems = rotas.coverage_report(in_a, monday, monday + timedelta(days=1))

    # Monday before 09:00 and after 18:00 Berlin (UTC+1) are gaps.
    assert [(p.kind, p.start, p.end) for p in problems] == [
        ("gap", monday, monday + timedelta(hours=8)),
        ("gap", monday + timedelta(hours=17), monday + timedelta(days=1)),
    ]
