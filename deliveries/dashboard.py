"""The dashboard's scope (organization, client, period) and deliveries' own panel."""

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from urllib.parse import urlencode

from django import forms
from django.urls import reverse
from django.utils import timezone

from deliveries.models import SUBMITTED_SOURCES, Client, EventProcessing, ProcessingStatus
from deliveries.services import backlog, throughput

PERIODS = {  # key: (label, length)
    "24h": ("Last 24 hours", timedelta(hours=24)),
    "7d": ("Last 7 days", timedelta(days=7)),
    "30d": ("Last 30 days", timedelta(days=30)),
}
DEFAULT_PERIOD = "7d"


class DashboardForm(forms.Form):
    client = forms.CharField(required=False, label="Client")
    period = forms.ChoiceField(
        choices=[(key, label) for key, (label, _length) in PERIODS.items()],
        required=False,
        initial=DEFAULT_PERIOD,
        label="Period",
    )


@dataclass
class DashboardScope:
    """What every panel filters by."""

    organization: object
    client: Client | None
    period: str
    since: datetime
    now: datetime

    def query(self, **extra) -> str:
        """Query string for the lists behind the numbers (same client and period)."""
        params = {"client": self.client.client_id} if self.client else {}
        params.update({k: v for k, v in extra.items() if v not in (None, "")})
        return urlencode(params, doseq=True)


def dashboard_scope(request) -> tuple[DashboardScope, DashboardForm]:
    form = DashboardForm(request.GET or None)
    client, period = None, DEFAULT_PERIOD
    if form.is_valid():
        period = form.cleaned_data["period"] or DEFAULT_PERIOD
        ref = form.cleaned_data["client"].strip()
        if ref:
            client = Client.objects.filter(organization=request.organization, client_id=ref).first()
            if client is None:
                form.add_error("client", f"No client '{ref}' in this organization.")
    now = timezone.now()
    return DashboardScope(request.organization, client, period, now - PERIODS[period][1], now), form


def bar_chart(counts: dict, buckets: list, label) -> dict:
    """An inline-SVG bar chart's geometry: no JavaScript, no network."""
    values = [counts.get(bucket, 0) for bucket in buckets]
    peak = max(values) or 1
    width, height = 600, 120
    slot = width / max(1, len(values))
    bars = [
        {
            "x": round(i * slot + 1, 1),
            "width": round(max(1.0, slot - 2), 1),
            "height": round(height * value / peak, 1),
            "y": round(height - height * value / peak, 1),
            "value": value,
            "label": label(bucket),
        }
        for i, (bucket, value) in enumerate(zip(buckets, values, strict=True))
    ]
    return {"bars": bars, "width": width, "height": height, "peak": peak, "total": sum(values)}


def _chart(scope: DashboardScope) -> dict:
    """Hourly bars over 24 hours, daily bars over 7 or 30 days: the organization's days."""
    organization, client = scope.organization, scope.client
    zone = organization.zone
    if scope.period == "24h":
        start = throughput.floor_hour(scope.now) - timedelta(hours=23)
        buckets = [start + timedelta(hours=i) for i in range(24)]
        counts = throughput.hourly_counts(organization, start, client)
        return bar_chart(counts, buckets, lambda hour: hour.astimezone(zone).strftime("%H:%M"))
    days = PERIODS[scope.period][1].days
    first_day = scope.now.astimezone(zone).date() - timedelta(days=days - 1)
    start = datetime.combine(first_day, time.min, tzinfo=zone)
    buckets = [first_day + timedelta(days=i) for i in range(days)]
    counts = throughput.daily_counts(organization, start, client, tz=zone)
    return bar_chart(counts, buckets, lambda day: day.strftime("%b %d"))


def throughput_panel(request, scope: DashboardScope) -> dict:
    organization, client = scope.organization, scope.client
    last_24h = throughput.count_events(organization, scope.now - timedelta(hours=24), client)
    last_7d = throughput.count_events(organization, scope.now - timedelta(days=7), client)
    pending = backlog.measure(scope.organization, scope.now)
    failed = EventProcessing.objects.filter(
        organization=scope.organization, status=ProcessingStatus.FAILED
    ).count()
    events_url = reverse("event-list", args=[scope.organization.slug])
    return {
        "last_24h": last_24h,
        "last_7d": last_7d,
        "chart": _chart(scope),
        "pending": pending.pending,
        "lag_seconds": pending.lag.total_seconds(),
        "failed": failed,
        "url_24h": f"{events_url}?{scope.query(occurred_after=(scope.now - timedelta(hours=24)).isoformat(), source=SUBMITTED_SOURCES)}",
        "url_7d": f"{events_url}?{scope.query(occurred_after=(scope.now - timedelta(days=7)).isoformat(), source=SUBMITTED_SOURCES)}",
        "url_pending": f"{events_url}?{scope.query(processing='pending')}",
        "url_failed": f"{events_url}?{scope.query(processing='failed')}",
    }
