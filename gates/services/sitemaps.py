"""Sitemap timers: after page.published, a sitemap listing the URL must arrive in time."""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from deliveries.models import Deliverable, Event
from gates import checks
from gates.models import (
    Gate,
    SitemapTimer,
    TimerStatus,
)
from gates.services.strictness import check_strictness_many
from gates.services.verdicts import record_verdict

DEFAULT_SITEMAP_HOURS = 24


def start_sitemap_timer(gate: Gate, event: Event, deliverable: Deliverable) -> SitemapTimer | None:
    url = event.payload.get("url") or deliverable.url
    if not url:
        return None
    hours = float((gate.parameters or {}).get("deadline_hours", DEFAULT_SITEMAP_HOURS))
    timer, _ = SitemapTimer.objects.get_or_create(
        organization_id=event.organization_id,
        gate=gate,
        started_by=event,
        defaults={
            "deliverable": deliverable,
            "url": url,
            "due_at": event.occurred_at + timedelta(hours=hours),
        },
    )
    return timer


def settle_sitemap_timers(organization, sitemaps: list[Event]) -> list[tuple]:
    """Sitemaps listing a waiting timer's URL before its deadline pass that gate.

    For a processing batch's ``sitemap.submitted`` events at once: the waiting timers of
    every URL they list are read and locked in one query (in key order, as every worker
    does: no deadlock between them; WAITING re-checked under the lock, as the expiry sweep
    may be failing the same timer right now), settled by the earliest sitemap that lists
    them in time, and saved in one UPDATE. Returns the passing verdicts to write, as
    ``(gate, event, deliverable, result)``: one per sitemap, gate and deliverable.
    """
    urls = {url for event in sitemaps for url in _listed(event)}
    if not urls:
        return []
    waiting = list(
        SitemapTimer.objects.filter(
            organization=organization, status=TimerStatus.WAITING, url__in=urls
        )
        .select_related("gate", "deliverable")
        .select_for_update(of=("self",))
        .order_by("pk")
    )
    settled, verdicts, judged = [], [], set()
    for event in sorted(sitemaps, key=lambda e: (e.occurred_at, e.pk)):
        listed = _listed(event)
        for timer in waiting:
            if timer.status != TimerStatus.WAITING or timer.url not in listed:
                continue
            if event.occurred_at > timer.due_at:
                continue  # too late: the expiry sweep fails it
            timer.status, timer.settled_by = TimerStatus.SATISFIED, event
            settled.append(timer)
            key = (timer.gate_id, event.pk, timer.deliverable_id)
            if key in judged:
                continue  # one sitemap settling two timers of one deliverable: one verdict
            judged.add(key)
            result = checks.CheckResult(
                True, details={"url": timer.url, "due_at": timer.due_at.isoformat()}
            )
            verdicts.append((timer.gate, event, timer.deliverable, result))
    SitemapTimer.objects.bulk_update(settled, ["status", "settled_by"])
    return verdicts


def _listed(event: Event) -> set[str]:
    urls = event.payload.get("urls") if isinstance(event.payload, dict) else None
    return {url for url in urls if isinstance(url, str)} if isinstance(urls, list) else set()


def expire_sitemap_timers(organization, now: datetime | None = None) -> int:
    """Fail every waiting timer past its deadline (idempotent: each timer expires once)."""
    now = now or timezone.now()
    expired = 0
    ids = list(
        SitemapTimer.objects.filter(
            organization=organization, status=TimerStatus.WAITING, due_at__lte=now
        ).values_list("pk", flat=True)[:1000]
    )
    gates = {}
    for timer_id in ids:
        with transaction.atomic():
            timer = (
                SitemapTimer.objects.select_for_update(of=("self",))
                .select_related("gate", "deliverable", "started_by")
                .filter(pk=timer_id, status=TimerStatus.WAITING)
                .first()
            )
            if timer is None:
                continue
            timer.status = TimerStatus.EXPIRED
            timer.save(update_fields=["status"])
            record_verdict(
                timer.gate,
                timer.started_by,
                timer.deliverable,
                checks.CheckResult.fail(
                    f"No sitemap listing {timer.url} arrived by {timer.due_at:%Y-%m-%d %H:%M} UTC.",
                    details={
                        "url": timer.url,
                        "due_at": timer.due_at.isoformat(),
                        "artifact": "sitemap listing",
                    },
                ),
                0.0,
                at=now,
            )
            gates[timer.gate_id] = timer.gate
            expired += 1
    # Expiries are failures like any other: a sitemap gate failing too often must switch to
    # monitor too. (Settlements are passes: they cannot make a gate too strict.)
    check_strictness_many(gates.values(), now)
    return expired
