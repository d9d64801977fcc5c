import pytest
from django_scopes import scopes_disabled

from deliveries.models import Event


@pytest.mark.django_db
def test_single_event_is_accepted_and_processed(api_a, client_acme, event_body):
    response = api_a.post("/api/v1/events", event_body(), format="json")
    assert response.status_code == 202, response.json()
    with scopes_disabled():
        event = Event.objects.get(pk=response.json()["id"])
    assert event.deliverable.deliverable_id == "LP-2041"
