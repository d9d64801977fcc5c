"""Rota reports and handoff recording.

Handoffs are computed, not stored as they happen: a periodic task walks each rota from
``handoffs_recorded_until`` to now and appends each handoff to the trail (keyed, so a
retry or an overlapping run records it once) and notifies the incoming person.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from deliveries.services import trail
from owners import rota_schedule
from owners.models import Rota
from owners.services import notifications
from owners.services.schedules import rota_spec

# A rota that has never recorded handoffs starts from here, not from its first layer's start.
FIRST_LOOKBACK = timedelta(days=1)


def record_handoffs(rota: Rota, now: datetime | None = None) -> int:
    """Append the rota's handoffs since it last looked; returns how many were new."""
    now = now or timezone.now()
    with transaction.atomic():
        rota = Rota.objects.select_for_update().select_related("role").get(pk=rota.pk)
        since = rota.handoffs_recorded_until or now - FIRST_LOOKBACK
        if since >= now:
            return 0
        spec = rota_spec(rota)
        changes = rota_schedule.handoffs(spec, since, now)
        users = get_user_model().objects.in_bulk(
            {p for h in changes for p in (h.from_person, h.to_person) if p is not None}
        )
        recorded = 0
        for handoff in changes:
            incoming = users.get(handoff.to_person)
            outgoing = users.get(handoff.from_person)
            event = trail.record(
                rota.organization,
                "rota.handoff",
                key=f"rota:{rota.pk}:{handoff.at.isoformat()}",
                occurred_at=handoff.at,
                payload={
                    "role": rota.role.name,
                    "layer": handoff.layer,
                    "from": outgoing.email if outgoing else None,
                    "to": incoming.email if incoming else None,
                },
            )
            recorded += 1
            if incoming is not None:
                _notify_incoming(rota, incoming, handoff.at, event.pk)
        rota.handoffs_recorded_until = now
        rota.save(update_fields=["handoffs_recorded_until"])
    return recorded


def _notify_incoming(rota: Rota, user, at: datetime, event_id) -> None:
    from owners.models import Notification

    ids = []
    for kind, address, channel_id in notifications.channels_for(rota.organization_id, user):
        notification, created = Notification.objects.get_or_create(
            organization_id=rota.organization_id,
            dedupe_key=f"handoff:{event_id}:{kind}:{address}"[:200],
            defaults={
                "recipient": user,
                "kind": kind,
                "address": address,
                "channel_id": channel_id,
                "subject": f"You are now on duty as {rota.role.name}",
                "body": {"role": rota.role.name, "since": at.isoformat()},
            },
        )
        if created:
            ids.append(notification.pk)
    notifications.enqueue(rota.organization_id, ids)


@dataclass
class CoverageProblem:
    role: str
    kind: str  # "gap" | "no_channel"
    start: datetime
    end: datetime
    detail: str


def coverage_report(organization, start: datetime, end: datetime) -> list[CoverageProblem]:
    """Gaps in every role's rota, and on-duty people nobody can reach, in [start, end)."""
    problems: list[CoverageProblem] = []
    rotas = (
        Rota.objects.filter(organization=organization)
        .select_related("role")
        .prefetch_related("layers", "overrides")
    )
    shifts = []  # (role name, shift): who can be reached is looked up once for everybody
    for rota in rotas:
        spec = rota_spec(rota)
        for gap_start, gap_end in rota_schedule.coverage_gaps(spec, start, end):
            problems.append(
                CoverageProblem(rota.role.name, "gap", gap_start, gap_end, "Nobody is on duty.")
            )
        shifts += [(rota.role.name, shift) for shift in rota_schedule.shifts(spec, start, end)]
    reachable = notifications.reachable_people(organization.pk, {s.person for _, s in shifts})
    for role_name, shift in shifts:
        user, ok = reachable.get(shift.person, (None, False))
        if not ok:
            who = (user.email or user.get_username()) if user else f"user #{shift.person}"
            problems.append(
                CoverageProblem(
                    role_name,
                    "no_channel",
                    shift.start,
                    shift.end,
                    f"{who} goes on duty with no working notification channel.",
                )
            )
    return sorted(problems, key=lambda p: (p.start, p.role))
