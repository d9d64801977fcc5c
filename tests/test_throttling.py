"""API rate limit per key: 429 in the API's error shape with Retry-After; keys count apart."""

import pytest
from django.core.cache import cache
from django.test import override_settings

from meshline.env import ConfigError, env_rate
from meshline.throttling import ApiKeyRateThrottle

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _empty_counts():
    """Throttle counts live in the cache: no test may inherit another's."""
    cache.clear()
    yield
    cache.clear()


@override_settings(MESHLINE_API_RATE="3/min")
def test_a_key_over_its_rate_gets_429_with_retry_after(api_a, client_acme):
    for _ in range(3):
        assert api_a.get("/api/v1/clients").status_code == 200
    response = api_a.get("/api/v1/clients")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    errors = response.json()["errors"]
    assert [e["code"] for e in errors] == ["throttled"]
    assert "seconds" in errors[0]["message"]
    # Writes count against the same budget.
    assert api_a.post("/api/v1/clients", {}, format="json").status_code == 429


@override_settings(MESHLINE_API_RATE="2/min")
def test_keys_are_counted_apart_even_from_the_same_address(api_a, api_b, make_key, org_a):
    for _ in range(2):
        assert api_a.get("/api/v1/clients").status_code == 200
    assert api_a.get("/api/v1/clients").status_code == 429
    # Another tenant's key, and a second key of the same tenant, still have their budget.
    assert api_b.get("/api/v1/clients").status_code == 200
    _, second = make_key(org_a)
    assert second.get("/api/v1/clients").status_code == 200


@override_settings(MESHLINE_API_RATE="2/min")
def test_the_window_slides(api_a, client_acme, monkeypatch):
    clock = [1_000_000.0]
    monkeypatch.setattr(ApiKeyRateThrottle, "timer", lambda self: clock[0])
    for _ in range(2):
        assert api_a.get("/api/v1/clients").status_code == 200
    clock[0] += 30
    refused = api_a.get("/api/v1/clients")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "30"
    clock[0] += 31
    assert api_a.get("/api/v1/clients").status_code == 200


@override_settings(MESHLINE_API_RATE="1/min")
def test_requests_without_a_valid_key_are_401_not_throttled(api_a, client):
    assert api_a.get("/api/v1/clients").status_code == 200
    for _ in range(3):
        response = client.get("/api/v1/clients", HTTP_AUTHORIZATION="Api-Key ml_nope")
        assert response.status_code == 401


@pytest.mark.parametrize("raw", ["fast", "0/min", "10/fortnight", "10", "-1/s"])
def test_a_bad_rate_in_the_environment_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("MESHLINE_API_RATE", raw)
    with pytest.raises(ConfigError, match="MESHLINE_API_RATE"):
        env_rate("MESHLINE_API_RATE", "1200/min")


def test_a_good_rate_is_read(monkeypatch):
    monkeypatch.setenv("MESHLINE_API_RATE", " 600/Minute ")
    assert env_rate("MESHLINE_API_RATE", "1/s") == "600/minute"
    monkeypatch.delenv("MESHLINE_API_RATE")
    assert env_rate("MESHLINE_API_RATE", "1/s") == "1/s"
