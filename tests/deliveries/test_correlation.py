"""correlation_id: filtered per organization in the API and the portal, shown in the trail."""

import pytest
from django.db import connection
from django_scopes import scope

from deliveries.services import ingest_events

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/events"


@pytest.fixture
def correlated(org_a, org_b, client_acme, client_b_acme, event_body):
    """Two events of A share correlation 'order-7'; a third of A has 'order-8'; B reuses
    'order-7' (references are per tenant). Returns A's event ids by name."""
    names = {"first": ("e1", "order-7"), "second": ("e2", "order-7"), "other": ("e3", "order-8")}
    ids = {}
    with scope(organization=org_a):
        for name, (key, correlation) in names.items():
            (result,) = ingest_events(
                org_a, [event_body(idempotency_key=key, correlation_id=correlation)]
            )
            assert result.event_id, result.errors
            ids[name] = result.event_id
    with scope(organization=org_b):
        (result,) = ingest_events(
            org_b, [event_body(idempotency_key="b1", correlation_id="order-7")]
        )
        assert result.event_id, result.errors
    return ids


def test_api_event_list_filters_by_correlation_id_within_the_tenant(api_a, api_b, correlated):
    response = api_a.get(f"{EVENTS}?correlation_id=order-7")

    assert response.status_code == 200
    listed = {event["id"] for event in response.json()["results"]}
    assert listed == {correlated["first"], correlated["second"]}
    assert {e["correlation_id"] for e in response.json()["results"]} == {"order-7"}
    # B's own event with the same correlation id, never A's.
    b_listed = api_b.get(f"{EVENTS}?correlation_id=order-7").json()["results"]
    assert len(b_listed) == 1 and b_listed[0]["id"] not in correlated.values()


@pytest.mark.parametrize(
    ("value", "code"), [("x" * 101, "max_length"), ("a%00b", "null_characters_not_allowed")]
)
def test_api_correlation_filter_refuses_what_no_event_can_hold(api_a, correlated, value, code):
    response = api_a.get(f"{EVENTS}?correlation_id={value}")

    assert response.status_code == 400, response.content
    errors = response.json()["errors"]
    assert [(e["code"], e["field"]) for e in errors] == [(code, "correlation_id")]


def test_event_detail_shows_the_correlation_id(api_a, correlated):
    response = api_a.get(f"{EVENTS}/{correlated['other']}")

    assert response.json()["correlation_id"] == "order-8"


def test_portal_event_list_filters_by_correlation_id(as_member, correlated):
    response = as_member.get("/o/org-a/events/?correlation_id=order-8")

    assert response.status_code == 200
    assert [str(e.id) for e in response.context["events"]] == [correlated["other"]]
    content = response.content.decode()
    assert 'name="correlation_id"' in content
    assert 'href="?correlation_id=order-8"' in content


def test_deliverable_timeline_links_each_correlation_id_to_its_events(as_member, correlated):
    content = as_member.get("/o/org-a/deliverables/LP-2041/").content.decode()

    assert 'href="/o/org-a/events/?correlation_id=order-7"' in content
    assert 'href="/o/org-a/events/?correlation_id=order-8"' in content


def test_outsider_cannot_list_anothers_correlated_events(as_outsider, correlated, org_a):
    assert as_outsider.get("/o/org-a/events/?correlation_id=order-7").status_code == 404


@pytest.mark.postgres
def test_correlation_lookup_uses_the_organization_index(org_a, correlated):
    """The index leads with organization: a tenant's lookup is one index range."""
    with scope(organization=org_a), connection.cursor() as cursor:
        # Statistics, as autovacuum keeps them: without any, every index that leads with
        # the organization is priced the same and the planner may take another one.
        cursor.execute("ANALYZE deliveries_event")

        cursor.execute("SET LOCAL enable_seqscan = off")

        cursor.execute(
            "EXPLAIN SELECT id FROM deliveries_event WHERE organization_id = %s "
            "AND correlation_id = %s",
            [org_a.pk, "order-7"],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "event_correlation" in plan, plan
