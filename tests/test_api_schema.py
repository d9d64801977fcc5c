"""The API does what its schema says: JSON 404s for any /api/ path, and every operation
documents its error statuses and the shapes it returns."""

import pytest
from drf_spectacular.generators import SchemaGenerator

pytestmark = pytest.mark.django_db

NOT_FOUND = {"errors": [{"code": "not_found", "message": "Not found."}]}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/no-such-thing",
        "/api/v1/events/extra/segments/",
        "/api/v2/events",
        "/api/",
        "/api/v1/deliverables/-starts-with-a-dash/",  # breaks the reference pattern
        "/api/v1/clients/has%20space/",
        "/api/v1/deliverables/LP%2F1/trail",
    ],
)
def test_unknown_api_path_is_a_json_404(api_a, path):
    response = api_a.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == NOT_FOUND


def test_unknown_api_path_is_a_json_404_for_any_method_and_without_a_key(client):
    # No CSRF 403 and no HTML: the portal's session machinery has no say under /api/.
    for method in ("get", "post", "patch", "delete"):
        response = getattr(client, method)("/api/v1/nowhere", content_type="application/json")
        assert response.status_code == 404, method
        assert response.json() == NOT_FOUND


def test_portal_paths_keep_djangos_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_other_tenants_client_is_a_json_404_like_an_unknown_one(api_b, client_acme):
    response = api_b.get("/api/v1/clients/acme")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_operation_documents_auth_scope_and_throttle_errors(schema):
    for path, method, operation in operations(schema):
        for code in ("401", "403", "429"):
            body = operation["responses"][code]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/Error"}, (path, method, code)


def test_input_and_lookups_document_400_and_404(schema):
    paths = schema["paths"]
    assert "400" in paths["/api/v1/clients/"]["post"]["responses"]
    assert "415" in paths["/api/v1/clients/"]["post"]["responses"]
    assert "400" in paths["/api/v1/deliverables/"]["get"]["responses"]  # filters
    assert "404" in paths["/api/v1/deliverables/"]["get"]["responses"]  # cursor
    assert "404" in paths["/api/v1/deliverables/{deliverable_id}/"]["get"]["responses"]
    # Nothing to mistype and nothing to look up: no 400 or 404 to promise.
    assert "400" not in paths["/api/v1/event-types/"]["get"]["responses"]
    assert "404" not in paths["/api/v1/event-types/"]["get"]["responses"]
    assert "409" in paths["/api/v1/tickets/{id}/acknowledge/"]["post"]["responses"]


def test_error_body_is_the_exception_handlers_shape(schema):
    components = schema["components"]["schemas"]
    assert components["Error"]["required"] == ["errors"]
    item = components["ErrorItem"]
    assert set(item["properties"]) == {"code", "message", "field"}
    assert item["required"] == ["code", "message"]


def test_event_submission_is_described_field_by_field(schema):
    components = schema["components"]["schemas"]
    body = schema["paths"]["/api/v1/events/"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"] == {
        "$ref": "#/components/schemas/EventSubmissionBodyRequest"
    }
    one_of = components["EventSubmissionBodyRequest"]["oneOf"]
    assert {"$ref": "#/components/schemas/EventSubmissionRequest"} in one_of
    event = components["EventSubmissionRequest"]
    assert event["additionalProperties"] is False  # ingest rejects unknown fields
    assert event["properties"]["deliverable_id"]["maxLength"] == 100
    assert event["properties"]["actor"] == {"$ref": "#/components/schemas/ActorInputRequest"}
    assert set(event["required"]) == {
        "event_type",
        "deliverable_id",
        "client_id",
        "actor",
        "occurred_at",
        "payload",
    }


def test_single_duplicate_is_not_documented_as_the_batch_shape(schema):
    components = schema["components"]["schemas"]
    responses = schema["paths"]["/api/v1/events/"]["post"]["responses"]
    ok = responses["200"]["content"]["application/json"]["schema"]
    assert components[ok["$ref"].rsplit("/", 1)[1]]["oneOf"] == [
        {"$ref": "#/components/schemas/IngestResult"},
        {"$ref": "#/components/schemas/IngestBatchResult"},
    ]


def test_nullable_fields_are_nullable(schema):
    components = schema["components"]["schemas"]
    assert components["OwnerRule"]["properties"]["backup_role"]["nullable"] is True
    assert components["OwnerRule"]["properties"]["escalation_policy"]["nullable"] is True
    assert components["OnDuty"]["properties"]["primary"]["nullable"] is True
    assert components["Resolution"]["properties"]["rule"]["nullable"] is True


def test_every_api_path_answers_options_without_a_server_error(api_a, schema):
    """DRF describes each view on OPTIONS; a view it cannot describe was a 500 (the
    search-performance import, found by the fuzz run)."""
    import re

    for path in schema["paths"]:
        concrete = re.sub(r"\{[^}]+\}", "x-1", path)
        response = api_a.options(concrete)
        assert response.status_code < 500, (path, response.status_code)


def test_every_query_parameter_refuses_a_nul_with_a_400(api_a, schema):
    """PostgreSQL text cannot hold NUL: every filter, on every list, answers 400 naming it."""
    checked = 0
    for path, method, operation in operations(schema):
        if method != "get" or "{" in path:
            continue
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "query":
                continue
            response = api_a.get(path, {parameter["name"]: "a\x00b"})
            assert response.status_code == 400, (path, parameter["name"], response.status_code)
            [error] = response.json()["errors"]
            assert (error["code"], error["field"]) == (
                "null_characters_not_allowed",
                parameter["name"],
            )
            checked += 1
    assert checked > 40  # every list's filters and pagination, not a handful
