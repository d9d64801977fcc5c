"""/metrics: queue depth, lag, stuck and failed events per organization, for Prometheus.

Counted from the database at scrape time, so any web process gives the same answer. Open to
loopback when no token is configured; with MESHLINE_METRICS_TOKEN, only to its bearer.
"""

import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import transaction
from django.test import override_settings
from django.utils import timezone
from django_scopes import scope, scopes_disabled
from prometheus_client.parser import text_string_to_metric_families

from deliveries.models import EventProcessing
from deliveries.services import ingest_events, process_event
from deliveries.services.processing import MAX_ATTEMPTS, record_failure
from meshline import metrics
from meshline.queues import queue_names

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


# --- Broker queue depth ---------------------------------------------------------------


def samples(client, name: str) -> dict[tuple, float]:
    """{sorted label items: value} of one sample name on /metrics."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.content
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
        if sample.name == name
    }


@pytest.fixture
def redis_queues():
    """Two queue names of this test on the test Redis, deleted afterwards."""
    import redis

    queue = f"lag-test-{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(settings.REDIS_URL)
    yield client, queue, f"{queue}-gates"
    for key in client.scan_iter(f"{queue}*"):
        client.delete(key)


@pytest.mark.redis
def test_broker_queue_depth_is_reported_per_kind_of_queue(client, db, redis_queues):
    redis_client, queue, _other = redis_queues
    redis_client.rpush(f"{queue}.processing", "m1", "m2", "m3")
    redis_client.rpush(f"{queue}.processing\x06\x163", "a priority message")  # kombu's
    redis_client.rpush(f"{queue}.gates", "g1")

    with override_settings(
        CELERY_BROKER_URL=settings.REDIS_URL,
        CELERY_TASK_ALWAYS_EAGER=False,
        CELERY_TASK_DEFAULT_QUEUE=queue,
    ):
        depth = samples(client, "meshline_broker_queue_depth")
        reachable = samples(client, "meshline_broker_reachable")

    assert depth == {
        (("queue", queue),): 0,
        (("queue", f"{queue}.processing"),): 4,
        (("queue", f"{queue}.gates"),): 1,
        (("queue", f"{queue}.heavy"),): 0,
        (("queue", f"{queue}.notifications"),): 0,
        (("queue", f"{queue}.exports"),): 0,
    }
    assert reachable == {(): 1}


@pytest.mark.redis
def test_broker_queue_lag_is_the_age_of_its_oldest_message(client, db, redis_queues):
    import json

    import time_machine

    redis_client, queue, _other = redis_queues
    now = timezone.now()
    stamped = {"headers": {"task": "deliveries.process_events", "meshline_sent_at": 0}}
    for waited in (12.5, 3):  # pushed on the left: the oldest ends up on the right
        stamped["headers"]["meshline_sent_at"] = now.timestamp() - waited
        redis_client.lpush(f"{queue}.processing", json.dumps(stamped))

    with (
        override_settings(
            CELERY_BROKER_URL=settings.REDIS_URL,
            CELERY_TASK_ALWAYS_EAGER=False,
            CELERY_TASK_DEFAULT_QUEUE=queue,
        ),
        time_machine.travel(now, tick=False),
    ):
        oldest = samples(client, "meshline_broker_queue_oldest_seconds")

    assert oldest[(("queue", f"{queue}.processing"),)] == 12.5
    assert oldest[(("queue", f"{queue}.gates"),)] == 0


@override_settings(
    CELERY_BROKER_URL="redis://127.0.0.1:1/0",  # a closed port: refused at once
    CELERY_TASK_ALWAYS_EAGER=False,
)
def test_an_unreachable_broker_leaves_depth_unknown_and_the_scrape_answers(
    client, org_a, client_acme, store
):
    store(org_a, "a1")
    started = time.monotonic()

    assert samples(client, "meshline_broker_queue_depth") == {}
    assert samples(client, "meshline_broker_reachable") == {(): 0}
    assert scrape(client)[("meshline_events_pending", "org-a")] == 1
    assert time.monotonic() - started < 5


def test_queue_names_are_every_kind_under_the_default_queue():
    with override_settings(CELERY_TASK_DEFAULT_QUEUE="acme"):
        assert queue_names() == [
            "acme",
            "acme.exports",
            "acme.gates",
            "acme.heavy",
            "acme.notifications",
            "acme.processing",
        ]


# --- Latency histograms ---------------------------------------------------------------


def bucket_counts(client, name: str, **labels) -> dict[str, float]:
    """{le: cumulative count} of a histogram, plus "count" and "sum"."""
    counts = {}
    for key, value in samples(client, f"{name}_bucket").items():
        found = dict(key)
        if all(found.get(k) == v for k, v in labels.items()):
            counts[found["le"]] = value
    for part in ("count", "sum"):
        for key, value in samples(client, f"{name}_{part}").items():
            if all(dict(key).get(k) == v for k, v in labels.items()):
                counts[part] = value
    return counts


def grown(before: dict, after: dict) -> dict:
    return {k: round(v - before.get(k, 0), 6) for k, v in after.items() if v != before.get(k, 0)}


def test_processing_latency_is_observed_when_an_event_is_processed(
    client, org_a, client_acme, store, django_capture_on_commit_callbacks
):
    (event_id,) = store(org_a, "a1")
    before = bucket_counts(client, "meshline_processing_latency_seconds")

    with (
        scope(organization=org_a),
        django_capture_on_commit_callbacks(execute=True),
    ):
        process_event(event_id)
        process_event(event_id)  # already done: not observed again

    change = grown(before, bucket_counts(client, "meshline_processing_latency_seconds"))
    assert change["count"] == 1 and change["+Inf"] == 1


def test_latency_lands_in_the_buckets_prometheus_expects(
    client, db, django_capture_on_commit_callbacks
):
    """le is inclusive; buckets are cumulative; sum and count add up."""
    received = timezone.now()
    before = bucket_counts(client, "meshline_processing_latency_seconds")

    with django_capture_on_commit_callbacks(execute=True):
        metrics.observe_processed([received, received], received + timedelta(seconds=2.5))
        metrics.observe_processed([received], received + timedelta(seconds=40))

    change = grown(before, bucket_counts(client, "meshline_processing_latency_seconds"))
    assert "1.0" not in change  # nothing at or under 1 s
    assert (change["2.5"], change["5.0"], change["30.0"], change["60.0"]) == (2, 2, 2, 3)
    assert (change["+Inf"], change["count"], change["sum"]) == (3, 3, 45.0)


def test_nothing_is_observed_for_work_that_rolled_back(
    client, db, django_capture_on_commit_callbacks
):
    received = timezone.now()
    before = bucket_counts(client, "meshline_processing_latency_seconds")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            metrics.observe_processed([received], received + timedelta(seconds=1))
            raise RuntimeError("processing failed")
        metrics.observe_processed([received], received + timedelta(seconds=1))

    assert len(callbacks) == 1  # the committed one only
    assert grown(before, bucket_counts(client, "meshline_processing_latency_seconds"))["count"] == 1


@pytest.mark.redis
def test_with_redis_every_process_reports_what_any_process_observed(
    client, db, django_capture_on_commit_callbacks
):
    """The worker observes, the web process reports: both only share Redis."""
    import redis

    received = timezone.now()
    key = metrics.PROCESSING_LATENCY.key
    redis.Redis.from_url(settings.REDIS_URL).delete(key)
    try:
        with override_settings(MESHLINE_METRICS_REDIS_URL=settings.REDIS_URL):
            with django_capture_on_commit_callbacks(execute=True):
                metrics.observe_processed([received], received + timedelta(seconds=7))
            # Another process: its own store object, the same Redis hash (le=30 bucket).
            other = metrics._RedisStore(settings.REDIS_URL)
            other.add(key, {"[]|7": 1, "[]|sum": 20.5, "[]|count": 1})
            counts = bucket_counts(client, "meshline_processing_latency_seconds")
    finally:
        redis.Redis.from_url(settings.REDIS_URL).delete(key)

    assert (counts["5.0"], counts["10.0"], counts["30.0"]) == (0, 1, 2)
    assert (counts["count"], counts["sum"]) == (2, 27.5)


def test_a_redis_outage_drops_observations_and_never_fails_the_work(
    client, db, caplog, django_capture_on_commit_callbacks
):
    received = timezone.now()
    with override_settings(MESHLINE_METRICS_REDIS_URL="redis://127.0.0.1:1/0"):
        with django_capture_on_commit_callbacks(execute=True):
            metrics.observe_processed([received], received + timedelta(seconds=1))  # no raise
        with django_capture_on_commit_callbacks(execute=True):
            metrics.observe_processed([received], received + timedelta(seconds=1))  # skipped
        counts = bucket_counts(client, "meshline_processing_latency_seconds")

    assert counts == {}  # nothing to report, and the scrape still answered
    assert caplog.text.count("metrics: Redis unreachable, dropping observations") == 1
