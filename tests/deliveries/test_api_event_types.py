"""GET, POST /api/v1/event-types: the registry an organization submits against."""

import pytest
from django.db.models import Q

from deliveries.models import EventType

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/events"
EVENT_TYPES = "/api/v1/event-types"

REVIEW_V1 = {
    "name": "review.completed",
    "description": "A client review round finished.",
    "advances_to": "approved",
    "payload_schema": {
        "type": "object",
        "required": ["score"],
        "properties": {"score": {"type": "integer", "minimum": 0, "maximum": 10}},
    },
}
REVIEW_V2 = {
    **REVIEW_V1,
    "payload_schema": {
        "type": "object",
        "required": ["score", "reviewer"],
        "properties": {
            "score": {"type": "integer", "minimum": 0, "maximum": 10},
            "reviewer": {"type": "string", "minLength": 1},
        },
    },
}


def register(api, body):
    return api.post(EVENT_TYPES, body, format="json")


def listed(api) -> dict[str, dict]:
    response = api.get(EVENT_TYPES)
    assert response.status_code == 200, response.json()
    rows = response.json()
    names = [row["name"] for row in rows]
    assert len(names) == len(set(names)), "one row per name: its latest version"
    return {row["name"]: row for row in rows}


def own_types(organization):
    return EventType.objects.filter(organization=organization)


def test_list_includes_canonical_types(api_a):
    types = listed(api_a)

    assert types["page.published"]["canonical"] is True
    assert types["page.published"]["version"] == 1
    assert "url" in types["page.published"]["payload_schema"]["required"]
    assert types["gate.failed"]["internal"] is True
    assert not any(row["canonical"] is False for row in types.values())


def test_register_org_type_then_next_version(api_a, org_a):
    first = register(api_a, REVIEW_V1)
    second = register(api_a, REVIEW_V2)

    assert first.status_code == 201, first.json()
    assert second.status_code == 201, second.json()
    assert (first.json()["version"], second.json()["version"]) == (1, 2)
    assert first.json()["canonical"] is False
    assert list(own_types(org_a).values_list("name", "version")) == [
        ("review.completed", 1),
        ("review.completed", 2),
    ]
    row = listed(api_a)["review.completed"]
    assert (row["version"], row["canonical"]) == (2, False)


def test_event_of_a_registered_type_is_accepted_and_validated(
    api_a, org_a, client_acme, event_body, row_counts
):
    body = event_body(event_type="review.completed", payload={"score": 7})
    assert api_a.post(EVENTS, body, format="json").status_code == 400  # not registered yet

    register(api_a, REVIEW_V1)
    accepted = api_a.post(EVENTS, body, format="json")
    invalid = api_a.post(
        EVENTS,
        event_body(idempotency_key="bad", event_type="review.completed", payload={"score": 11}),
        format="json",
    )

    assert accepted.status_code == 202, accepted.json()
    assert invalid.status_code == 400
    assert [(e["code"], e["field"]) for e in invalid.json()["errors"]] == [
        ("payload_invalid", "payload.score")
    ]
    assert row_counts()["events"] == 1


def test_new_version_schema_applies_to_later_events(api_a, org_a, client_acme, event_body):
    register(api_a, REVIEW_V1)
    v1_event = api_a.post(
        EVENTS,
        event_body(idempotency_key="v1", event_type="review.completed", payload={"score": 7}),
        format="json",
    )
    register(api_a, REVIEW_V2)

    missing_reviewer = api_a.post(
        EVENTS,
        event_body(idempotency_key="v2a", event_type="review.completed", payload={"score": 7}),
        format="json",
    )
    v2_event = api_a.post(
        EVENTS,
        event_body(
            idempotency_key="v2b",
            event_type="review.completed",
            payload={"score": 7, "reviewer": "Ana"},
        ),
        format="json",
    )

    assert v1_event.status_code == 202
    assert missing_reviewer.status_code == 400
    assert missing_reviewer.json()["errors"][0]["code"] == "payload_invalid"
    assert v2_event.status_code == 202, v2_event.json()
    stored = api_a.get(f"{EVENTS}?event_type=review.completed").json()["results"]
    assert sorted(e["schema_version"] for e in stored) == [1, 2]


def test_registered_type_advances_the_lifecycle(
    api_a, client_acme, event_body, django_capture_on_commit_callbacks
):
    register(api_a, REVIEW_V1)

    with django_capture_on_commit_callbacks(execute=True):
        api_a.post(
            EVENTS, event_body(event_type="review.completed", payload={"score": 9}), format="json"
        )

    assert api_a.get("/api/v1/deliverables/LP-2041").json()["state"] == "approved"


@pytest.mark.parametrize("name", ["page.published", "gate.failed", "crm.touch"])
def test_registering_a_canonical_name_is_refused(api_a, org_a, name):
    response = register(api_a, {**REVIEW_V1, "name": name})

    assert response.status_code == 400
    assert [(e["code"], e["field"]) for e in response.json()["errors"]] == [("canonical", "name")]
    assert not own_types(org_a).exists()


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "no-such-type"},
        {"type": "object", "required": "score"},
        {"properties": {"score": {"minimum": "zero"}}},
        ["not", "an", "object"],
    ],
)
def test_invalid_json_schema_is_refused(api_a, org_a, schema):
    response = register(api_a, {**REVIEW_V1, "payload_schema": schema})

    assert response.status_code == 400, response.json()
    assert {e["code"] for e in response.json()["errors"]} == {"invalid_schema"}
    assert {e["field"] for e in response.json()["errors"]} == {"payload_schema"}
    assert not own_types(org_a).exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**REVIEW_V1, "name": "Review Completed"}, "name"),
        ({**REVIEW_V1, "name": "review"}, "name"),
        ({**REVIEW_V1, "advances_to": "shipped"}, "advances_to"),
    ],
)
def test_invalid_type_definition_is_refused(api_a, org_a, body, field):
    response = register(api_a, body)

    assert response.status_code == 400
    assert field in {e["field"] for e in response.json()["errors"]}
    assert not own_types(org_a).exists()


def test_key_without_event_types_write_is_403(org_a, make_key):
    _, client = make_key(org_a, scopes=["events:read", "events:write"])

    response = register(client, REVIEW_V1)

    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "missing_scope"
    assert not own_types(org_a).exists()


# --- tenant isolation ------------------------------------------------------------------


def test_list_excludes_other_tenant_types(api_a, api_b):
    register(api_b, {**REVIEW_V1, "name": "b.only"})

    assert "b.only" not in listed(api_a)
    assert "b.only" in listed(api_b)


def test_other_tenant_type_cannot_be_submitted(api_a, api_b, client_b_acme, event_body, row_counts):
    register(api_a, REVIEW_V1)

    response = api_b.post(
        EVENTS, event_body(event_type="review.completed", payload={"score": 1}), format="json"
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "unknown_event_type"
    assert row_counts()["events"] == 0


def test_each_tenant_numbers_its_own_versions(api_a, api_b, org_a, org_b):
    register(api_a, REVIEW_V1)
    register(api_a, REVIEW_V2)

    response = register(api_b, REVIEW_V1)

    assert response.status_code == 201
    assert response.json()["version"] == 1
    assert listed(api_a)["review.completed"]["version"] == 2
    assert listed(api_b)["review.completed"]["version"] == 1
    assert EventType.objects.filter(~Q(organization=None), name="review.completed").count() == 3
