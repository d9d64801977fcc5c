"""API keys: missing, malformed, unknown, revoked (401 with a code); missing scope (403)."""

import pytest
from django_scopes import scope
from rest_framework.test import APIClient

from meshline.models import ApiKey, ApiScope

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/events"

# Every endpoint, with a method that must be refused without a usable key.
ENDPOINTS = [
    ("get", "/api/v1/events"),
    ("post", "/api/v1/events"),
    ("get", "/api/v1/events/01a207b0-cef9-71e6-a2bb-f981100fd91c"),
    ("get", "/api/v1/clients"),
    ("post", "/api/v1/clients"),
    ("get", "/api/v1/clients/acme"),
    ("patch", "/api/v1/clients/acme"),
    ("get", "/api/v1/deliverables"),
    ("get", "/api/v1/deliverables/LP-2041"),
    ("get", "/api/v1/deliverables/LP-2041/trail"),
    ("get", "/api/v1/event-types"),
    ("post", "/api/v1/event-types"),
]


def call(client, method, path, body=None):
    return getattr(client, method)(path, body or {}, format="json")


def codes(response):
    return [e["code"] for e in response.json()["errors"]]


def with_header(value: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=value)
    return client


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_missing_api_key_is_401(client_acme, method, path):
    response = call(APIClient(), method, path)

    assert response.status_code == 401
    assert codes(response) == ["missing_api_key"]
    assert response["WWW-Authenticate"] == "Api-Key"


@pytest.mark.parametrize(
    "header",
    [
        "Api-Key",
        "Api-Key not-a-key",
        "Api-Key ml_short_secret",
        "Api-Key xx_0123456789ab_secret",
        "Api-Key two words",
        "Basic dXNlcjpwYXNz",
        "Token ml_0123456789ab_secret",
    ],
)
def test_malformed_api_key_is_401(client_acme, header):
    response = with_header(header).get(EVENTS)

    assert response.status_code == 401
    assert codes(response) == ["malformed_api_key"]


def test_unknown_api_key_is_401(client_acme):
    response = with_header("Api-Key ml_0123456789ab_" + "s" * 43).get(EVENTS)

    assert response.status_code == 401
    assert codes(response) == ["unknown_api_key"]


def test_known_prefix_with_wrong_secret_is_unknown(api_key_a):
    api_key, plaintext = api_key_a
    forged = f"ml_{api_key.prefix}_{'x' * 43}"
    assert forged != plaintext

    response = with_header(f"Api-Key {forged}").get(EVENTS)

    assert response.status_code == 401
    assert codes(response) == ["unknown_api_key"]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_revoked_api_key_is_401(org_a, make_key, client_acme, method, path):
    api_key, client = make_key(org_a)
    with scope(organization=org_a):
        api_key.revoke()

    response = call(client, method, path)

    assert response.status_code == 401
    assert codes(response) == ["revoked_api_key"]


def test_bearer_keyword_is_accepted(api_key_a, client_acme):
    response = with_header(f"Bearer {api_key_a[1]}").get("/api/v1/clients")

    assert response.status_code == 200


def test_rejected_keys_store_nothing(org_a, make_key, client_acme, event_body, row_counts):
    revoked_key, revoked = make_key(org_a)
    with scope(organization=org_a):
        revoked_key.revoke()
    attempts = [
        APIClient(),
        with_header("Api-Key garbage"),
        with_header("Api-Key ml_0123456789ab_" + "s" * 43),
        revoked,
    ]

    statuses = [client.post(EVENTS, event_body(), format="json").status_code for client in attempts]

    assert statuses == [401, 401, 401, 401]
    assert row_counts() == {"events": 0, "deliverables": 0, "processing": 0}


def test_use_is_recorded_on_the_key(api_a, api_key_a, org_a):
    api_key, _ = api_key_a
    assert api_key.last_used_at is None

    api_a.get("/api/v1/clients")

    with scope(organization=org_a):
        api_key = ApiKey.objects.get(pk=api_key.pk)
    assert api_key.last_used_at is not None


def test_key_is_stored_hashed(api_key_a, org_a):
    api_key, plaintext = api_key_a
    with scope(organization=org_a):
        stored = ApiKey.objects.get(pk=api_key.pk)
    assert plaintext not in (stored.digest, stored.prefix, stored.name)
    assert stored.digest == ApiKey.digest_for(plaintext)


# --- scopes ----------------------------------------------------------------------------

ALL = {scope.value for scope in ApiScope}

SCOPED_ENDPOINTS = [
    # (method, path, body, the scope it needs)
    ("get", "/api/v1/events", None, ApiScope.EVENTS_READ),
    ("get", "/api/v1/deliverables/LP-2041/trail", None, ApiScope.DELIVERABLES_READ),
    ("post", "/api/v1/events", "event", ApiScope.EVENTS_WRITE),
    ("get", "/api/v1/clients", None, ApiScope.CLIENTS_READ),
    ("get", "/api/v1/clients/acme", None, ApiScope.CLIENTS_READ),
    ("post", "/api/v1/clients", {"client_id": "new", "name": "New"}, ApiScope.CLIENTS_WRITE),
    ("patch", "/api/v1/clients/acme", {"name": "Renamed"}, ApiScope.CLIENTS_WRITE),
    ("get", "/api/v1/deliverables", None, ApiScope.DELIVERABLES_READ),
    ("get", "/api/v1/deliverables/LP-2041", None, ApiScope.DELIVERABLES_READ),
    ("get", "/api/v1/event-types", None, ApiScope.EVENTS_READ),
    (
        "post",
        "/api/v1/event-types",
        {"name": "review.done", "payload_schema": {"type": "object"}},
        ApiScope.EVENT_TYPES_WRITE,
    ),
]


@pytest.fixture
def deliverable_a(api_a, client_acme, event_body):
    response = api_a.post(EVENTS, event_body(), format="json")
    assert response.status_code == 202
    return response.json()["id"]


@pytest.mark.parametrize(
    ("method", "path", "body", "needed"),
    SCOPED_ENDPOINTS,
    ids=[f"{m} {p}" for m, p, _, _ in SCOPED_ENDPOINTS],
)
def test_key_without_the_scope_is_403(
    org_a, make_key, deliverable_a, event_body, row_counts, method, path, body, needed
):
    _, lacking = make_key(org_a, scopes=sorted(ALL - {needed}))
    _, holding = make_key(org_a, scopes=[needed])
    if body == "event":
        body = event_body(idempotency_key="scoped")
    before = row_counts()

    refused = call(lacking, method, path, body)

    assert refused.status_code == 403, refused.json()
    assert codes(refused) == ["missing_scope"]
    assert needed in refused.json()["errors"][0]["message"]
    assert row_counts() == before
    allowed = call(holding, method, path, body)
    assert allowed.status_code in (200, 201, 202), allowed.json()


def test_key_without_scopes_can_do_nothing(org_a, make_key, client_acme):
    _, client = make_key(org_a, scopes=[])

    for method, path in ENDPOINTS:
        response = call(client, method, path)
        assert response.status_code == 403, (method, path)


def test_other_tenant_key_never_gets_403_for_an_object(api_b, deliverable_a):
    # Cross-tenant answers 404 (the object's existence is not theirs to learn), never 403.
    for path in (
        f"/api/v1/events/{deliverable_a}",
        "/api/v1/clients/acme",
        "/api/v1/deliverables/LP-2041",
        "/api/v1/deliverables/LP-2041/trail",
    ):
        assert api_b.get(path).status_code == 404, path
    assert api_b.patch("/api/v1/clients/acme", {"name": "x"}, format="json").status_code == 404
