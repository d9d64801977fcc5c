"""Every endpoint keyed by a public UUID answers a malformed id with a 404 (JSON in the API)."""

import pytest


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path", ["/api/v1/events/not-a-uuid", "/api/v1/tickets/not-a-uuid", "/api/v1/evaluations/x"]
)
def test_api_malformed_uuid_is_a_json_404(api_a, path):
    response = api_a.get(path)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


@pytest.mark.django_db
def test_portal_malformed_ticket_id_is_a_404(client, member):
    client.force_login(member)
    assert client.get("/o/org-a/tickets/not-a-uuid/").status_code == 404
    assert client.post("/o/org-a/tickets/not-a-uuid/acknowledge").status_code == 404
