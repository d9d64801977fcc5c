"""The Connections pages: what each role sees and may do, secrets shown once, the preview,
replay from the portal, the drill-downs, tenant isolation on every route, query counts."""

import re
import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope, scopes_disabled

from connectors import services
from connectors.models import (
    ConnectorKind,
    InboundDelivery,
    InboundEndpoint,
    InboxState,
    OutboundDelivery,
    Subscription,
)
from deliveries.services import trail
from tests.connectors.conftest import fixture


@pytest.fixture
def as_owner(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def rows(org_a, wp_endpoint, post_hook):
    """One mapped delivery, one dead letter and a queued outbound delivery in org A."""
    endpoint, _ = wp_endpoint
    post_hook(endpoint, fixture("wordpress_post_published.json"), msg_id="ok-1")
    post_hook(endpoint, fixture("wordpress_post_no_reference.json"), msg_id="dead-1")
    with scope(organization=org_a):
        subscription = Subscription.objects.create(
            organization=org_a,
            name="Ops",
            url="https://hooks.example/in",
            event_types=["gate.failed"],
            paused=True,
        )
        trail.record(org_a, "gate.failed", key="g-1", payload={})
        delivered = InboundDelivery.objects.get(vendor_delivery_id="ok-1")
        dead = InboundDelivery.objects.get(vendor_delivery_id="dead-1")
        outbound = OutboundDelivery.objects.get(organization=org_a)
    return {
        "endpoint": endpoint,
        "subscription": subscription,
        "delivered": delivered,
        "dead": dead,
        "outbound": outbound,
    }


def _routes(rows) -> list[tuple[str, str]]:
    base = "/o/org-a/connections/"
    return [
        ("get", base),
        ("get", f"{base}endpoints/new/"),
        ("get", f"{base}endpoints/{rows['endpoint'].public_id}/"),
        ("post", f"{base}endpoints/{rows['endpoint'].public_id}/rotate/"),
        ("get", f"{base}inbound/{rows['delivered'].public_id}/"),
        ("post", f"{base}replay/"),
        ("get", f"{base}outbound/{rows['outbound'].public_id}/"),
        ("get", f"{base}subscriptions/new/"),
        ("post", f"{base}subscriptions/{rows['subscription'].public_id}/pause/"),
        ("post", f"{base}subscriptions/{rows['subscription'].public_id}/replay/"),
    ]


def test_outsiders_get_404_on_every_route(rows, as_outsider):
    for method, url in _routes(rows):
        assert getattr(as_outsider, method)(url).status_code == 404, url


def test_another_tenants_objects_are_404_under_ones_own_organization(rows, client, outsider):
    """Organization B's admin, at B's own URLs, cannot reach A's rows by their ids."""
    client.force_login(outsider)
    for method, url in _routes(rows)[2:]:
        if "/new/" in url or url.endswith("/replay/"):
            continue
        own_url = url.replace("/o/org-a/", "/o/org-b/")
        assert getattr(client, method)(own_url).status_code == 404, own_url
    response = client.post("/o/org-b/connections/replay/", {"delivery": rows["dead"].public_id})
    assert response.status_code == 302
    with scopes_disabled():
        assert InboundDelivery.objects.get(pk=rows["dead"].pk).attempts == 1  # not replayed


def test_unknown_and_malformed_ids_are_404(rows, as_owner):
    for bad in (uuid.uuid4(), "not-a-uuid"):
        assert as_owner.get(f"/o/org-a/connections/inbound/{bad}/").status_code == 404
        assert as_owner.get(f"/o/org-a/connections/endpoints/{bad}/").status_code == 404


def test_non_admins_read_but_cannot_act(rows, as_member):
    assert as_member.get("/o/org-a/connections/").status_code == 200
    for method, url in _routes(rows):
        if method == "post" or url.endswith("/new/"):
            assert getattr(as_member, method)(url).status_code == 403, url


def test_connections_page_shows_health_dead_letters_and_subscriptions(rows, as_owner):
    page = as_owner.get("/o/org-a/connections/").content.decode()
    assert "Acme WordPress" in page
    assert "50 % <small>of 2</small>" in page  # one mapped of two in 24 h
    assert "dead-1" in page and "No deliverable reference" in page
    assert "Ops" in page and "Closed (delivering)" in page and "Paused" in page
    found = as_owner.get("/o/org-a/connections/?q=dead").content.decode()
    assert "dead-1" in found and "ok-1" not in found
    mapped = as_owner.get("/o/org-a/connections/?state=mapped").content.decode()
    log = mapped.split("<h2>Inbound log</h2>")[1]
    assert "ok-1" in log and "dead-1" not in log


def test_admin_creates_an_endpoint_and_sees_the_secret_once(org_a, client_acme, as_owner):
    response = as_owner.post(
        "/o/org-a/connections/endpoints/new/",
        {"name": "Blog", "kind": ConnectorKind.WORDPRESS, "client": client_acme.pk},
    )
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")
    secret = re.search(r'data-testid="secret">(whsec_[^<]+)<', response.content.decode())[1]
    with scope(organization=org_a):
        endpoint = InboundEndpoint.objects.get(organization=org_a, name="Blog")
    assert endpoint.secret == secret
    assert f"/hooks/{endpoint.public_id}" in response.content.decode()
    detail = as_owner.get(f"/o/org-a/connections/endpoints/{endpoint.public_id}/")
    assert secret not in detail.content.decode()
    assert secret[-4:] in detail.content.decode()  # masked


def test_endpoint_form_refuses_another_tenants_client(client_b_acme, as_owner, org_a):
    response = as_owner.post(
        "/o/org-a/connections/endpoints/new/",
        {"name": "Blog", "kind": ConnectorKind.WORDPRESS, "client": client_b_acme.pk},
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    with scope(organization=org_a):
        assert not InboundEndpoint.objects.filter(organization=org_a).exists()


def test_rotation_shows_the_new_secret_and_keeps_the_old_one_for_the_overlap(rows, as_owner):
    endpoint = rows["endpoint"]
    old = endpoint.secret
    response = as_owner.post(f"/o/org-a/connections/endpoints/{endpoint.public_id}/rotate/")
    with scopes_disabled():
        endpoint.refresh_from_db()
    assert endpoint.secret != old and endpoint.previous_secret == old
    assert endpoint.secret in response.content.decode()


def test_mapping_form_errors_and_the_preview(org_a, generic_endpoint, as_owner):
    import json

    endpoint, _ = generic_endpoint
    url = f"/o/org-a/connections/endpoints/{endpoint.public_id}/"
    bad = as_owner.post(url, {"action": "mapping", "mapping": '{"colour": "x"}'})
    assert bad.status_code == 200
    assert "Unknown target" in bad.content.decode()
    not_json = as_owner.post(url, {"action": "mapping", "mapping": "{"})
    assert "Not JSON" in not_json.content.decode()
    preview = as_owner.post(
        url, {"action": "preview", "payload": json.dumps(fixture("generic_order.json"))}
    )
    assert "asset.approved" in preview.content.decode() and "AS-9" in preview.content.decode()
    with scope(organization=org_a):
        endpoint.refresh_from_db()
    assert "colour" not in endpoint.mapping  # nothing half-saved


def test_portal_replay_after_fixing_the_mapping(
    org_a, rows, as_owner, django_capture_on_commit_callbacks
):
    endpoint = rows["endpoint"]
    saved = as_owner.post(
        f"/o/org-a/connections/endpoints/{endpoint.public_id}/",
        {"action": "mapping", "mapping": '{"deliverable_path": "taxonomies.post_tag.0"}'},
    )
    assert saved.status_code == 302, saved.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = as_owner.post(
            "/o/org-a/connections/replay/", {"delivery": rows["dead"].public_id}
        )
    assert response.status_code == 302
    with scopes_disabled():
        replayed = InboundDelivery.objects.get(pk=rows["dead"].pk)
        assert replayed.state == InboxState.MAPPED, (replayed.attempts, replayed.error)
    detail = as_owner.get(f"/o/org-a/connections/inbound/{rows['dead'].public_id}/")
    assert "LP-78" in detail.content.decode()


def test_subscription_form_validates_and_shows_the_secret_once(org_a, as_owner):
    bad = as_owner.post(
        "/o/org-a/connections/subscriptions/new/",
        {"name": "x", "url": "http://127.0.0.1/", "event_types": "Ticket Opened"},
    )
    text = bad.content.decode()
    assert "public addresses" in text and "dotted lower-case" in text
    good = as_owner.post(
        "/o/org-a/connections/subscriptions/new/",
        {"name": "Ops", "url": "https://93.184.215.14/hook", "event_types": "ticket.opened"},
    )
    with scope(organization=org_a):
        subscription = Subscription.objects.get(organization=org_a)
    assert subscription.event_types == ["ticket.opened"]
    assert subscription.secret in good.content.decode()


def test_pause_and_resume(rows, as_owner):
    url = f"/o/org-a/connections/subscriptions/{rows['subscription'].public_id}/pause/"
    as_owner.post(url, {"paused": "0"})
    with scopes_disabled():
        assert Subscription.objects.get(pk=rows["subscription"].pk).paused is False
    as_owner.post(url, {"paused": "1"})
    with scopes_disabled():
        assert Subscription.objects.get(pk=rows["subscription"].pk).paused is True


def test_connections_page_query_count_does_not_grow_with_rows(org_a, rows, as_owner, client_acme):
    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert as_owner.get("/o/org-a/connections/").status_code == 200
        return len(ctx.captured_queries)

    before = count()
    with scope(organization=org_a):
        for n in range(5):
            services.create_endpoint(
                org_a, name=f"E{n}", kind=ConnectorKind.WORDPRESS, client=client_acme
            )
            Subscription.objects.create(
                organization=org_a, name=f"S{n}", url="https://hooks.example/", event_types=["x.y"]
            )
        for n in range(5):
            trail.record(org_a, "gate.failed", key=f"more-{n}", payload={})
    after = count()
    assert after == before, (before, after)
    assert before <= 20


def test_replay_range_form_refuses_a_backwards_range(rows, as_owner):
    url = f"/o/org-a/connections/subscriptions/{rows['subscription'].public_id}/replay/"
    response = as_owner.post(
        url, {"since": "2026-03-02T10:00", "until": "2026-03-01T10:00"}, follow=True
    )
    assert "must be before" in response.content.decode()
    response = as_owner.post(url, {"since": "yesterday", "until": ""}, follow=True)
    text = response.content.decode()
    assert "Enter a valid date/time" in text and "This field is required" in text
    response = as_owner.post(
        url, {"since": "2000-01-01T00:00", "until": "2100-01-01T00:00"}, follow=True
    )
    assert "Sending 0 delivery(ies) of Ops again." in response.content.decode()
