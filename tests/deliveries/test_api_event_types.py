"""GET, POST /api/v1/event-types: the registry an organization submits against."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db.models import F, Q

from deliveries.models import EventType
from meshline.models import Organization

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


DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


def deep_schema(depth: int) -> dict:
    schema: dict = {"type": "integer"}
    for _ in range(depth):
        schema = {"not": schema}
    return schema


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


# --- references in schemas: resolved inside the schema, never fetched ---------------------


@pytest.fixture
def schema_server():
    """An HTTP server on 127.0.0.1 that serves a schema and counts the requests it gets."""
    requests: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            body = json.dumps({"type": "string", "description": "SECRET-CONTENT"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def with_ref(ref: str, keyword: str = "$ref") -> dict:
    return {"type": "object", "properties": {"score": {keyword: ref}}}


@pytest.mark.parametrize(
    "schema",
    [
        with_ref("{server}/x.json"),
        with_ref("{server}/x.json", "$dynamicRef"),
        {"$id": "{server}/root.json", "properties": {"score": {"$ref": "other.json"}}},
        with_ref("file:///etc/passwd"),
        with_ref("other.json"),
        with_ref("#/$defs/missing"),
    ],
    ids=["http", "dynamic-ref", "relative-to-http-id", "file", "relative", "missing-local"],
)
def test_schema_with_a_reference_outside_itself_is_refused(api_a, org_a, schema_server, schema):
    server, requests = schema_server
    schema = json.loads(json.dumps(schema).replace("{server}", server))

    response = register(api_a, {**REVIEW_V1, "payload_schema": schema})

    assert response.status_code == 400, response.json()
    errors = response.json()["errors"]
    assert {(e["code"], e["field"]) for e in errors} == {("invalid_schema", "payload_schema")}
    assert "never fetches" in errors[0]["message"]
    assert requests == []
    assert not own_types(org_a).exists()


@pytest.mark.parametrize(
    "schema",
    [
        {
            "type": "object",
            "$defs": {"score": {"type": "integer", "maximum": 10}},
            "properties": {"score": {"$ref": "#/$defs/score"}},
        },
        {
            "type": "object",
            "$defs": {"score": {"$anchor": "score", "type": "integer", "maximum": 10}},
            "properties": {"score": {"$ref": "#score"}},
        },
        {
            "$id": "https://schemas.example/review.json",
            "type": "object",
            "$defs": {"score": {"$id": "score.json", "type": "integer", "maximum": 10}},
            "properties": {"score": {"$ref": "score.json"}},
        },
    ],
    ids=["pointer", "anchor", "embedded-id"],
)
def test_schema_with_references_inside_itself_is_registered_and_used(
    api_a, org_a, client_acme, event_body, schema
):
    assert register(api_a, {**REVIEW_V1, "payload_schema": schema}).status_code == 201

    valid = api_a.post(
        EVENTS, event_body(event_type=REVIEW_V1["name"], payload={"score": 7}), format="json"
    )
    invalid = api_a.post(
        EVENTS,
        event_body(event_type=REVIEW_V1["name"], idempotency_key="k2", payload={"score": 70}),
        format="json",
    )

    assert valid.status_code == 202, valid.json()
    assert invalid.status_code == 400
    assert invalid.json()["errors"][0]["field"] == "payload.score"


def test_schema_may_refer_to_a_json_schema_metaschema(api_a, org_a):
    schema = {"type": "object", "properties": {"rule": {"$ref": DRAFT_2020_12}}}

    assert register(api_a, {**REVIEW_V1, "payload_schema": schema}).status_code == 201


@pytest.mark.parametrize(
    ("schema", "message"),
    [
        ({"type": "object", "description": "a\u0000b"}, "NUL"),
        (deep_schema(200), "levels deep"),
    ],
    ids=["nul", "deep"],
)
def test_schema_that_cannot_be_stored_or_checked_is_refused(api_a, org_a, schema, message):
    response = register(api_a, {**REVIEW_V1, "payload_schema": schema})

    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["code"] == "invalid_schema"
    assert message in response.json()["errors"][0]["message"]
    assert not own_types(org_a).exists()


def test_stored_schema_with_a_remote_ref_is_never_fetched_when_validating(
    api_a, org_a, client_acme, event_body, row_counts, schema_server
):
    """A schema stored before registration refused outside references: a clean 400."""
    server, requests = schema_server
    EventType.objects.create(
        organization=org_a,
        name=REVIEW_V1["name"],
        version=1,
        payload_schema=with_ref(f"{server}/x.json"),
    )
    Organization.objects.filter(pk=org_a.pk).update(
        event_types_version=F("event_types_version") + 1
    )
    bad = event_body(event_type=REVIEW_V1["name"], idempotency_key="r", payload={"score": 7})
    good = event_body(idempotency_key="good", deliverable_id="LP-1")

    single = api_a.post(EVENTS, bad, format="json")
    batch = api_a.post(EVENTS, {"events": [good, bad]}, format="json")

    assert single.status_code == 400, single.content
    errors = single.json()["errors"]
    assert [(e["code"], e["field"]) for e in errors] == [("schema_unresolvable", "event_type")]
    assert "SECRET-CONTENT" not in single.content.decode()
    assert [r["status"] for r in batch.json()["results"]] == ["accepted", "rejected"]
    assert requests == []
    assert row_counts() == {"events": 1, "deliverables": 1, "processing": 1}
