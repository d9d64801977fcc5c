"""Connectors API: the inbound delivery log, dead-letter replay, subscriptions; scopes,
tenant isolation and the error body."""

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope, scopes_disabled

from connectors.models import InboundDelivery, InboxState, Subscription
from tests.connectors.conftest import fixture

BASE = "/api/v1/inbound-deliveries"


@pytest.fixture
def deliveries(org_a, wp_endpoint, post_hook):
    endpoint, _ = wp_endpoint
    post_hook(endpoint, fixture("wordpress_post_published.json"), msg_id="ok-1")
    post_hook(endpoint, fixture("wordpress_post_no_reference.json"), msg_id="dead-1")
    with scopes_disabled():
        return {d.vendor_delivery_id: d for d in InboundDelivery.objects.all()}


def test_list_filters_by_state_and_shows_no_body(api_a, deliveries):
    response = api_a.get(f"{BASE}?state=dead")
    assert response.status_code == 200
    [row] = response.json()["results"]
    assert row["vendor_delivery_id"] == "dead-1"
    assert "No deliverable reference" in row["error"]
    assert "body" not in row
    assert api_a.get(f"{BASE}?state=nope").status_code == 400


def test_detail_has_the_raw_body_and_events(api_a, deliveries):
    ok = deliveries["ok-1"]
    row = api_a.get(f"{BASE}/{ok.public_id}").json()
    assert row["body"] == ok.body and row["event_ids"] == ok.event_ids
    assert row["headers"]["x-wp-webhook-id"] == "ok-1"


def test_replay_one_after_a_fix_and_not_a_mapped_one(
    org_a, api_a, deliveries, wp_endpoint, django_capture_on_commit_callbacks
):
    endpoint, _ = wp_endpoint
    mapped = api_a.post(f"{BASE}/{deliveries['ok-1'].public_id}/replay")
    assert mapped.status_code == 400
    assert mapped.json()["errors"][0]["code"] == "not_a_dead_letter"
    with scope(organization=org_a):
        endpoint.mapping = {"deliverable_path": "taxonomies.post_tag.0"}
        endpoint.save()
    with django_capture_on_commit_callbacks(execute=True):
        response = api_a.post(f"{BASE}/{deliveries['dead-1'].public_id}/replay")
    assert response.json() == {"queued": 1}
    with scopes_disabled():
        assert InboundDelivery.objects.get(vendor_delivery_id="dead-1").state == InboxState.MAPPED
    assert api_a.post(f"{BASE}/replay").json() == {"queued": 0}


def test_scopes(make_key, org_a, deliveries):
    _, reader = make_key(org_a, scopes=["connectors:read"])
    _, nothing = make_key(org_a, scopes=["events:read"])
    assert reader.get(BASE).status_code == 200
    assert reader.post(f"{BASE}/replay").status_code == 403
    assert nothing.get(BASE).status_code == 403
    assert nothing.get("/api/v1/subscriptions").status_code == 403


def test_another_tenant_sees_none_of_it(api_b, deliveries, org_a):
    dead = deliveries["dead-1"]
    assert api_b.get(BASE).json()["results"] == []
    assert api_b.get(f"{BASE}/{dead.public_id}").status_code == 404
    assert api_b.post(f"{BASE}/{dead.public_id}/replay").status_code == 404
    assert api_b.get(f"{BASE}/{uuid.uuid4()}").status_code == 404
    assert api_b.get(f"{BASE}/not-a-uuid").json()["errors"][0]["code"] == "not_found"
    with scope(organization=org_a):
        Subscription.objects.create(
            organization=org_a, name="A's", url="https://hooks.example/", event_types=["a.b"]
        )
    assert api_b.get("/api/v1/subscriptions").json() == []


def test_subscriptions_list_backlog_and_breaker(api_a, org_a):
    with scope(organization=org_a):
        Subscription.objects.create(
            organization=org_a, name="Ops", url="https://hooks.example/", event_types=["a.b"]
        )
    [row] = api_a.get("/api/v1/subscriptions").json()
    assert (row["name"], row["breaker_state"], row["backlog"], row["client_id"]) == (
        "Ops",
        "closed",
        0,
        None,
    )


def test_list_query_count_does_not_grow(api_a, deliveries, wp_endpoint, post_hook):
    def count():
        with CaptureQueriesContext(connection) as ctx:
            assert api_a.get(BASE).status_code == 200
        return len(ctx.captured_queries)

    count()  # the key's first use records last_used_at
    before = count()
    endpoint, _ = wp_endpoint
    for n in range(5):
        post_hook(endpoint, fixture("wordpress_post_draft.json"), msg_id=f"more-{n}")
    assert count() == before
