"""/metrics: queue depth, lag, stuck and failed events per organization, for Prometheus.

Counted from the database at scrape time, so any web process gives the same answer. Open to
loopback when no token is configured; with MESHLINE_METRICS_TOKEN, only to its bearer.
"""

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from django_scopes import scope, scopes_disabled
from prometheus_client.parser import text_string_to_metric_families

from deliveries.models import EventProcessing
from deliveries.services import ingest_events, process_event
from deliveries.services.processing import MAX_ATTEMPTS, record_failure

STUCK_AFTER = 30 * 60


@pytest.fixture
def store(event_body):
    def store_events(organization, *keys) -> list[str]:
        with scope(organization=organization):
            results = ingest_events(organization, [event_body(idempotency_key=k) for k in keys])
        return [r.event_id for r in results]

    return store_events


def scrape(client, **headers) -> dict[tuple[str, str], float]:
    """GET /metrics and parse it as Prometheus does: {(sample name, organization): value}."""
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, sample.labels.get("organization")): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def _age(event_id, seconds: int) -> None:
    # EventProcessing is bookkeeping beside the append-only trail: it may be updated.
    with scopes_disabled():
        EventProcessing.objects.filter(event_id=event_id).update(
            enqueued_at=timezone.now() - timedelta(seconds=seconds)
        )


def test_metrics_from_loopback_report_pending_events_per_organization(
    client, org_a, org_b, client_acme, store
):
    store(org_a, "a1", "a2")

    response = client.get("/metrics")  # the test client's REMOTE_ADDR is 127.0.0.1
    metrics = scrape(client)

    assert 'meshline_events_pending{organization="org-a"} 2.0' in response.content.decode()
    assert metrics[("meshline_events_pending", "org-a")] == 2
    assert ("meshline_events_pending", "org-b") not in metrics
    assert metrics[("meshline_processing_lag_seconds", "org-a")] >= 0
    assert ("meshline_events_stuck", "org-a") not in metrics


def test_processed_events_leave_the_pending_count(client, org_a, client_acme, store):
    first, _second = store(org_a, "a1", "a2")
    with scope(organization=org_a):
        process_event(first)

    assert scrape(client)[("meshline_events_pending", "org-a")] == 1


def test_events_pending_longer_than_the_threshold_are_stuck(client, org_a, client_acme, store):
    old, _fresh = store(org_a, "old", "fresh")
    _age(old, STUCK_AFTER + 60)

    metrics = scrape(client)

    assert metrics[("meshline_events_stuck", "org-a")] == 1
    assert metrics[("meshline_events_pending", "org-a")] == 2
    assert metrics[("meshline_processing_lag_seconds", "org-a")] >= STUCK_AFTER + 60


def test_stuck_threshold_follows_the_setting(client, org_a, client_acme, store):
    (event_id,) = store(org_a, "a1")
    _age(event_id, 120)

    assert ("meshline_events_stuck", "org-a") not in scrape(client)
    with override_settings(MESHLINE_STUCK_AFTER_SECONDS=60):
        assert scrape(client)[("meshline_events_stuck", "org-a")] == 1


def test_events_that_exhausted_their_attempts_are_reported_failed(
    client, org_a, client_acme, store
):
    failed, _pending = store(org_a, "bad", "ok")
    with scope(organization=org_a):
        for _ in range(MAX_ATTEMPTS):
            record_failure(failed, "RuntimeError: boom")

    metrics = scrape(client)

    assert metrics[("meshline_events_failed", "org-a")] == 1
    assert metrics[("meshline_events_pending", "org-a")] == 1


def test_metrics_without_a_token_refuse_other_addresses(client, db):
    response = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 403


@override_settings(MESHLINE_METRICS_TOKEN="scrape-secret")
@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer wrong-secret", "Bearer scrape-secret-but-longer", "scrape-secre"],
)
def test_metrics_with_a_token_refuse_a_missing_or_wrong_token(client, db, authorization):
    headers = {"HTTP_AUTHORIZATION": authorization} if authorization is not None else {}
    response = client.get("/metrics", **headers)
    assert response.status_code == 401


@override_settings(MESHLINE_METRICS_TOKEN="scrape-secret")
def test_metrics_with_the_right_token_answer_from_anywhere(client, org_a, client_acme, store):
    store(org_a, "a1")

    metrics = scrape(client, HTTP_AUTHORIZATION="Bearer scrape-secret", REMOTE_ADDR="203.0.113.9")

    assert metrics[("meshline_events_pending", "org-a")] == 1
