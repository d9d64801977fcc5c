"""Sitemap timers: after page.published, a sitemap listing the URL must arrive in time."""

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from deliveries.models import Deliverable, Event
from gates import checks
from gates.models import (
    Gate,
    GateEvaluation,
    SitemapTimer,
    TimerStatus,
)
from gates.services.strictness import check_strictness
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


def settle_sitemap_timers(event: Event) -> int:
    """A sitemap listing a waiting timer's URL before its deadline passes that gate."""
    urls = set(event.payload.get("urls") or [])
    with transaction.atomic():
        # Locked (and the WAITING condition re-checked after the lock): the expiry sweep may be
        # failing the same timer right now, and a timer must get exactly one verdict.
        waiting = (
            SitemapTimer.objects.filter(
                organization=event.organization_id, status=TimerStatus.WAITING, url__in=urls
            )
            .select_related("gate", "deliverable")
            .select_for_update(of=("self",))
            .order_by("pk")  # one lock order for every worker: no deadlock between them
        )
        settled = 0
        for timer in waiting:
            if event.occurred_at > timer.due_at:
                continue  # too late: the expiry sweep fails it
            timer.status = TimerStatus.SATISFIED
            timer.settled_by = event
            timer.save(update_fields=["status", "settled_by"])
            if GateEvaluation.objects.filter(
                organization=event.organization_id,
                gate=timer.gate,
                event=event,
                deliverable=timer.deliverable,
            ).exists():  # one sitemap settling two timers of one deliverable: one verdict
                settled += 1
                continue
            record_verdict(
                timer.gate,
                event,
                timer.deliverable,
                checks.CheckResult(
                    True, details={"url": timer.url, "due_at": timer.due_at.isoformat()}
                ),
                0.0,
            )
            settled += 1
        return settled


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
    for gate in gates.values():
        check_strictness(gate, now)
    return expired
