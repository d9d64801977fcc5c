"""GET, POST /api/v1/clients and GET, PATCH /api/v1/clients/<client_id>."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope, scopes_disabled

from deliveries.models import Client, Tier

pytestmark = pytest.mark.django_db

CLIENTS = "/api/v1/clients"


def codes_for(response, field):
    return [e["code"] for e in response.json()["errors"] if e.get("field") == field]


def test_client_list_shows_the_tenant_clients_by_reference(api_a, client_acme, client_beta):
    response = api_a.get(CLIENTS)

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["client_id"] for row in rows] == ["acme", "beta"]
    assert rows[0] == {
        "client_id": "acme",
        "name": "Acme",
        "tier": "enterprise",
        "created_at": rows[0]["created_at"],
    }


def test_client_list_filters_by_tier(api_a, client_acme, client_beta):
    response = api_a.get(f"{CLIENTS}?tier=enterprise")

    assert [row["client_id"] for row in response.json()["results"]] == ["acme"]


def test_create_client(api_a, org_a):
    response = api_a.post(
        CLIENTS, {"client_id": "globex", "name": "Globex", "tier": "premium"}, format="json"
    )

    assert response.status_code == 201, response.json()
    assert response.json()["client_id"] == "globex"
    with scope(organization=org_a):
        client = Client.objects.get(organization=org_a, client_id="globex")
    assert (client.name, client.tier) == ("Globex", Tier.PREMIUM)


def test_create_client_defaults_to_standard_tier(api_a, org_a):
    response = api_a.post(CLIENTS, {"client_id": "initech", "name": "Initech"}, format="json")

    assert response.status_code == 201
    assert response.json()["tier"] == "standard"


def test_duplicate_client_id_is_refused(api_a, org_a, client_acme):
    response = api_a.post(CLIENTS, {"client_id": "acme", "name": "Acme again"}, format="json")

    assert response.status_code == 400
    assert codes_for(response, "client_id") == ["unique"]
    with scope(organization=org_a):
        assert Client.objects.get(organization=org_a, client_id="acme").name == "Acme"


@pytest.mark.parametrize(
    "client_id",
    [
        "bad id",
        "acme/eu",
        "-acme",
        "acme!",
        "x" * 101,
        "",
        # Not trimmed into "acme": refused, like the event contract refuses it.
        " acme",
        "acme ",
        "acme\n",
        "\uff21\uff23\uff2d\uff25",  # full-width ACME
        "acme\u202e",
        "acme\x00",
        "acme-🚀",
    ],
)
def test_invalid_client_id_is_refused(api_a, client_id):
    response = api_a.post(CLIENTS, {"client_id": client_id, "name": "Bad"}, format="json")

    assert response.status_code == 400
    assert codes_for(response, "client_id"), response.json()
    with scopes_disabled():
        assert not Client.objects.exists()


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        ({"client_id": "x1"}, "name", "required"),
        ({"name": "No ref"}, "client_id", "required"),
        ({"client_id": "x1", "name": "X", "tier": "platinum"}, "tier", "invalid_choice"),
    ],
)
def test_create_client_reports_field_errors(api_a, body, field, code):
    response = api_a.post(CLIENTS, body, format="json")

    assert response.status_code == 400
    assert codes_for(response, field) == [code]


def test_client_detail(api_a, client_acme):
    response = api_a.get(f"{CLIENTS}/acme")

    assert response.status_code == 200
    assert response.json()["name"] == "Acme"
    assert response.json()["tier"] == "enterprise"


def test_unknown_client_is_a_json_404(api_a, client_acme):
    response = api_a.get(f"{CLIENTS}/nobody")

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


def test_patch_client_name_and_tier(api_a, org_a, client_acme):
    response = api_a.patch(
        f"{CLIENTS}/acme", {"name": "Acme Corp", "tier": "standard"}, format="json"
    )

    assert response.status_code == 200, response.json()
    assert response.json()["name"] == "Acme Corp"
    client_acme.refresh_from_db()
    assert (client_acme.name, client_acme.tier) == ("Acme Corp", Tier.STANDARD)


def test_patch_with_unchanged_client_id_is_fine(api_a, client_acme):
    response = api_a.patch(f"{CLIENTS}/acme", {"client_id": "acme", "name": "A"}, format="json")

    assert response.status_code == 200


def test_client_id_cannot_be_changed(api_a, org_a, client_acme):
    response = api_a.patch(f"{CLIENTS}/acme", {"client_id": "acme-2"}, format="json")

    assert response.status_code == 400
    assert codes_for(response, "client_id") == ["immutable"]
    client_acme.refresh_from_db()
    assert client_acme.client_id == "acme"


def test_patch_rejects_an_unknown_tier(api_a, client_acme):
    response = api_a.patch(f"{CLIENTS}/acme", {"tier": "gold"}, format="json")

    assert response.status_code == 400
    assert codes_for(response, "tier") == ["invalid_choice"]
    client_acme.refresh_from_db()
    assert client_acme.tier == Tier.ENTERPRISE


def test_put_is_not_offered(api_a, client_acme):
    response = api_a.put(f"{CLIENTS}/acme", {"client_id": "acme", "name": "A"}, format="json")

    assert response.status_code == 405


def test_client_list_paginates_by_cursor(api_a, org_a):
    with scope(organization=org_a):
        Client.objects.bulk_create(
            Client(organization=org_a, client_id=f"c{i:02}", name=f"C{i}") for i in range(5)
        )
    seen, url = [], f"{CLIENTS}?limit=2"
    while url:
        page = api_a.get(url).json()
        seen += [row["client_id"] for row in page["results"]]
        url = page["next"]

    assert seen == ["c00", "c01", "c02", "c03", "c04"]


# --- tenant isolation ------------------------------------------------------------------


def test_other_tenant_client_detail_is_404(api_b, client_acme):
    response = api_b.get(f"{CLIENTS}/acme")

    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


def test_other_tenant_client_cannot_be_patched(api_b, client_acme):
    response = api_b.patch(f"{CLIENTS}/acme", {"name": "Hijacked"}, format="json")

    assert response.status_code == 404
    client_acme.refresh_from_db()
    assert client_acme.name == "Acme"


def test_client_list_shows_only_own_tenant(api_a, api_b, client_acme, client_b_acme, client_beta):
    a_rows = api_a.get(CLIENTS).json()["results"]
    b_rows = api_b.get(CLIENTS).json()["results"]

    assert [(r["client_id"], r["name"]) for r in a_rows] == [("acme", "Acme"), ("beta", "Beta")]
    assert [(r["client_id"], r["name"]) for r in b_rows] == [("acme", "B's Acme")]


def test_same_client_id_may_exist_in_each_tenant(api_b, org_b, client_acme):
    response = api_b.post(CLIENTS, {"client_id": "acme", "name": "B's Acme"}, format="json")

    assert response.status_code == 201, response.json()
    with scope(organization=org_b):
        assert Client.objects.get(organization=org_b, client_id="acme").name == "B's Acme"


def test_patch_changes_only_own_tenant_client(api_b, client_acme, client_b_acme):
    response = api_b.patch(f"{CLIENTS}/acme", {"name": "B renamed"}, format="json")

    assert response.status_code == 200
    client_acme.refresh_from_db()
    client_b_acme.refresh_from_db()
    assert (client_acme.name, client_b_acme.name) == ("Acme", "B renamed")


# --- query counts ----------------------------------------------------------------------


def test_client_list_query_count_does_not_grow_with_rows(api_a, org_a):
    def make(start, stop):
        with scope(organization=org_a):
            Client.objects.bulk_create(
                Client(organization=org_a, client_id=f"c{i:02}", name=f"C{i}")
                for i in range(start, stop)
            )

    make(0, 3)
    api_a.get(CLIENTS)  # warm up: the first use of a key records last_used_at
    with CaptureQueriesContext(connection) as few:
        assert len(api_a.get(CLIENTS).json()["results"]) == 3
    make(3, 30)
    with CaptureQueriesContext(connection) as many:
        assert len(api_a.get(CLIENTS).json()["results"]) == 30

    assert len(many) == len(few) <= 2


def test_a_client_registered_concurrently_is_a_400_not_a_500(
    api_a, org_a, client_acme, monkeypatch
):
    """Two requests may both pass the 'does it exist?' check; the second insert then hits
    the unique constraint, which must read as the same 'unique' error."""
    from deliveries.api.serializers import ClientSerializer

    monkeypatch.setattr(ClientSerializer, "validate_client_id", lambda self, value: value)
    response = api_a.post(CLIENTS, {"client_id": "acme", "name": "Acme again"}, format="json")
    assert response.status_code == 400
    assert codes_for(response, "client_id") == ["unique"]
    with scope(organization=org_a):
        assert Client.objects.filter(organization=org_a, client_id="acme").count() == 1
