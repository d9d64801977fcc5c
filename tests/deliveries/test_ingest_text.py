import json

import pytest

from deliveries.models import Event


@pytest.mark.django_db
@pytest.mark.parametrize("text", ["nul \u0000 inside", "lone \ud800 surrogate"])
def test_unstorable_text_is_a_400_not_a_500(api_a, client_acme, event_body, unscoped, text):
    body = json.dumps(event_body(payload={"url": "https://acme.example/x", "html": text}))
    response = api_a.post("/api/v1/events", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["errors"][0]["code"] == "invalid_text"
    assert Event.objects.count() == 0


@pytest.mark.django_db
def test_invalid_event_with_surrogate_reports_its_errors(api_a, client_acme, event_body):
    body = json.dumps(event_body(event_type="no.such", payload={"html": "\ud800"}))
    response = api_a.post("/api/v1/events", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "unknown_event_type"
