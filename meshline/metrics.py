"""Prometheus metrics computed from the database at scrape time.

Web and worker processes are many and short-lived; counting in the database, which is the
source of truth for what is still to do, gives the same answer whichever process is asked.
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone
from django_scopes import scopes_disabled
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily


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


def render() -> tuple[bytes, str]:
    registry = CollectorRegistry()
    registry.register(ProcessingCollector())
    return generate_latest(registry), CONTENT_TYPE_LATEST
