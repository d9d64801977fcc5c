"""Prometheus metrics: gauges computed at scrape time, latency histograms shared by processes.

Web and worker processes are many and short-lived. Gauges count in the database (and ask
the broker), which give the same answer whichever process is asked. Latencies are observed
in the workers where the work happens and read by whichever web process is scraped, so
their histograms live in Redis (``MESHLINE_METRICS_REDIS_URL``, else the broker's or the
cache's Redis): one pipelined round trip per observation batch, never an error for the
caller (a Redis outage drops observations for a while and says so in the log).
"""

import json
import logging
import threading
import time
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Min
from django.utils import timezone
from django_scopes import scopes_disabled
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily

from meshline.queues import queue_ages, queue_depths

log = logging.getLogger(__name__)

# Seconds: from "the worker kept up" (under a second) to the seeds' lost event (30 min) and
# a sitemap deadline (a day).
LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 1800, 3600, 21600, 86400)
KEY_PREFIX = "meshline:metrics:"
# After a Redis error, observations are dropped (not retried) for this long.
REDIS_BACKOFF_SECONDS = 30


class ProcessingCollector:
    def collect(self):
        from deliveries.models import EventProcessing, ProcessingStatus

        now = timezone.now()
        stuck_before = now - timedelta(seconds=settings.MESHLINE_STUCK_AFTER_SECONDS)
        pending = GaugeMetricFamily(
            "meshline_events_pending",
            "Events stored but not yet processed",
            labels=["organization"],
        )
        stuck = GaugeMetricFamily(
            "meshline_events_stuck",
            "Events unprocessed for longer than MESHLINE_STUCK_AFTER_SECONDS",
            labels=["organization"],
        )
        lag = GaugeMetricFamily(
            "meshline_processing_lag_seconds",
            "Age of the oldest pending event",
            labels=["organization"],
        )
        failed = GaugeMetricFamily(
            "meshline_events_failed",
            "Events that exhausted their processing attempts",
            labels=["organization"],
        )
        with scopes_disabled():
            rows = (
                EventProcessing.objects.filter(status=ProcessingStatus.PENDING)
                .values("organization__slug")
                .annotate(n=Count("pk"), oldest=Min("enqueued_at"))
            )
            for row in rows:
                slug = row["organization__slug"]
                pending.add_metric([slug], row["n"])
                lag.add_metric([slug], (now - row["oldest"]).total_seconds())
            for row in (
                EventProcessing.objects.filter(
                    status=ProcessingStatus.PENDING, enqueued_at__lte=stuck_before
                )
                .values("organization__slug")
                .annotate(n=Count("pk"))
            ):
                stuck.add_metric([row["organization__slug"]], row["n"])
            for row in (
                EventProcessing.objects.filter(status=ProcessingStatus.FAILED)
                .values("organization__slug")
                .annotate(n=Count("pk"))
            ):
                failed.add_metric([row["organization__slug"]], row["n"])
        yield from (pending, stuck, lag, failed)


class BrokerCollector:
    """Messages waiting in each Celery queue, and how long the oldest has waited; the
    queues are shared, so no organization.

    Depths are absent (and ``meshline_broker_reachable`` 0) when the broker cannot be read.
    """

    def collect(self):
        if settings.CELERY_TASK_ALWAYS_EAGER:
            return  # no broker: tasks run in the process that publishes them
        depth = GaugeMetricFamily(
            "meshline_broker_queue_depth",
            "Messages waiting in the broker queue (not those workers hold)",
            labels=["queue"],
        )
        reachable = GaugeMetricFamily(
            "meshline_broker_reachable", "1 when the queue depths could be read, else 0"
        )
        oldest = GaugeMetricFamily(
            "meshline_broker_queue_oldest_seconds",
            "How long the oldest message of the queue has waited: the queue's lag "
            "(Redis brokers; absent where it cannot be read)",
            labels=["queue"],
        )
        depths = queue_depths()
        for queue, count in sorted(depths.items()):
            if count is not None:
                depth.add_metric([queue], count)
        reachable.add_metric([], int(all(count is not None for count in depths.values())))
        if all(count is not None for count in depths.values()):
            for queue, age in sorted(queue_ages().items()):
                if age is not None:
                    oldest.add_metric([queue], round(age, 3))
        yield from (depth, reachable, oldest)


class _LocalStore:
    """This process's own counts: right only when the work runs in the scraped process."""

    def __init__(self):
        self._lock = threading.Lock()
        self._hashes: dict[str, Counter] = {}

    def add(self, key: str, increments: dict[str, float]) -> None:
        with self._lock:
            counts = self._hashes.setdefault(key, Counter())
            for field, amount in increments.items():
                counts[field] += amount

    def read(self, key: str) -> dict[str, float]:
        with self._lock:
            return dict(self._hashes.get(key, {}))


class _RedisStore:
    """One Redis hash per histogram, shared by every process that points at it."""

    def __init__(self, url: str):
        import redis

        self.client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
        self._down_until = 0.0

    def add(self, key: str, increments: dict[str, float]) -> None:
        if time.monotonic() < self._down_until:
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for field, amount in increments.items():
                    if field.endswith("|sum"):
                        pipe.hincrbyfloat(key, field, amount)
                    else:  # counts: integers, exact however many are added
                        pipe.hincrby(key, field, int(amount))
                pipe.execute()
        except Exception:  # metrics never fail the work they measure
            self._down_until = time.monotonic() + REDIS_BACKOFF_SECONDS
            log.warning(
                "metrics: Redis unreachable, dropping observations for %ss",
                REDIS_BACKOFF_SECONDS,
                exc_info=True,
            )

    def read(self, key: str) -> dict[str, float]:
        try:
            raw = self.client.hgetall(key)
        except Exception:
            log.warning("metrics: Redis unreachable, histogram %s not reported", key, exc_info=True)
            return {}
        return {field.decode(): float(value) for field, value in raw.items()}


_LOCAL = _LocalStore()
_redis_stores: dict[str, _RedisStore] = {}


def _redis_url() -> str:
    """MESHLINE_METRICS_REDIS_URL, else the broker's Redis, else the cache's; else ''."""
    if settings.MESHLINE_METRICS_REDIS_URL:
        return settings.MESHLINE_METRICS_REDIS_URL
    candidates = [settings.CELERY_BROKER_URL]
    cache = settings.CACHES.get("default", {})
    if cache.get("BACKEND", "").endswith("RedisCache"):
        candidates.append(cache.get("LOCATION") or "")
    return next((url for url in candidates if url.startswith(("redis://", "rediss://"))), "")


def _store():
    url = _redis_url()
    if not url:
        return _LOCAL
    if url not in _redis_stores:
        _redis_stores[url] = _RedisStore(url)
    return _redis_stores[url]


class SharedHistogram:
    """A Prometheus histogram that every process adds to and any process reports.

    Stored as per-bucket (not cumulative) counts, their sum and count, one hash field per
    label set: adding is commutative, so processes never coordinate.
    """

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...] = ()):
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.key = f"{KEY_PREFIX}{name}"

    def observe(self, seconds: Iterable[float], labels: tuple[str, ...] = ()) -> None:
        """Add observations of one label set in one round trip."""
        self.observe_groups({labels: seconds})

    def observe_groups(self, groups: dict[tuple[str, ...], Iterable[float]]) -> None:
        """Add observations of several label sets in one round trip."""
        increments: Counter = Counter()
        for labels, seconds in groups.items():
            prefix = json.dumps(list(labels))
            for value in seconds:
                value = max(0.0, float(value))
                increments[f"{prefix}|{bisect_left(LATENCY_BUCKETS, value)}"] += 1
                increments[f"{prefix}|sum"] += value
                increments[f"{prefix}|count"] += 1
        if increments:
            _store().add(self.key, dict(increments))

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=list(self.labels))
        by_labels: dict[str, dict[str, float]] = {}
        for field, value in _store().read(self.key).items():
            prefix, _, part = field.rpartition("|")
            by_labels.setdefault(prefix, {})[part] = value
        for prefix, parts in sorted(by_labels.items()):
            cumulative, buckets = 0.0, []
            for index, bound in enumerate([*LATENCY_BUCKETS, float("inf")]):
                cumulative += parts.get(str(index), 0)
                buckets.append(
                    ("+Inf" if bound == float("inf") else repr(float(bound)), cumulative)
                )
            family.add_metric(json.loads(prefix), buckets, parts.get("sum", 0.0))
        return family


PROCESSING_LATENCY = SharedHistogram(
    "meshline_processing_latency_seconds",
    "From an event's receipt to the end of its processing",
)
EVALUATION_LATENCY = SharedHistogram(
    "meshline_gate_evaluation_latency_seconds",
    "From an event's receipt to a gate's verdict on it",
    labels=("check",),
)


def _seconds_since(received: Iterable[datetime], done: datetime) -> list[float]:
    return [(done - at).total_seconds() for at in received]


def observe_processed(received_at: Iterable[datetime], processed_at: datetime) -> None:
    """Processing latency of events processed together, once their transaction commits."""
    values = _seconds_since(received_at, processed_at)
    transaction.on_commit(lambda: PROCESSING_LATENCY.observe(values))


def observe_evaluated(verdicts: Iterable[tuple[str, datetime, datetime]]) -> None:
    """Gate evaluation latency of verdicts, each ``(check, event received_at, evaluated_at)``,
    once their transaction commits; per check, since a sitemap verdict is due a day later
    by design."""
    by_check: dict[tuple[str, ...], list[float]] = {}
    for check, received_at, evaluated_at in verdicts:
        by_check.setdefault((check,), []).append((evaluated_at - received_at).total_seconds())
    if by_check:
        transaction.on_commit(lambda: EVALUATION_LATENCY.observe_groups(by_check))


class HistogramCollector:
    def collect(self):
        yield PROCESSING_LATENCY.family()
        yield EVALUATION_LATENCY.family()


def render() -> tuple[bytes, str]:
    registry = CollectorRegistry()
    registry.register(ProcessingCollector())
    registry.register(BrokerCollector())
    registry.register(HistogramCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
