"""Incident mode: while a systemic failure is declared, non-essential flows pause (their
timers stop), the owners of the paused flows are told, and when it ends every paused run
gets the lost time credited. Essential flows keep counting: they are what an incident
must not stop.
"""

import contextlib
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from deliveries.services import trail
from flows.models import Flow, FlowRun, Incident, IncidentRule, RunState
from flows.services import runs
from flows.services.changes import ChangeError, is_admin
from owners.services.notifications import Outbox
from owners.services.schedules import who_is_on_duty


def declare(organization, user, title: str, *, at: datetime | None = None) -> Incident:
    """Open the incident and pause every running run of a non-essential flow."""
    if not is_admin(organization, user):
        raise ChangeError("Only admins declare incidents.", "not_admin")
    if not title.strip():
        raise ChangeError("Say what is failing.", "required", "title")
    return _declare(organization, title, at or timezone.now(), user=user)


def _declare(organization, title: str, at: datetime, *, user=None, rule: str = "") -> Incident:
    try:
        with transaction.atomic():
            incident = Incident.objects.create(
                organization=organization,
                title=title.strip()[:200],
                declared_by=user,
                declared_by_rule=rule,
                started_at=at,
            )
            paused = list(
                FlowRun.objects.select_for_update(of=("self",))
                .filter(
                    organization=organization,
                    state=RunState.RUNNING,
                    flow__essential=False,
                )
                .select_related("flow__owner_role")
            )
            for run in paused:
                run.state, run.paused_at, run.due_at, run.due_for = RunState.PAUSED, at, None, ""
            FlowRun.objects.bulk_update(paused, ["state", "paused_at", "due_at", "due_for"])
            incident.paused_runs.add(*paused)
            _record(incident, "declared", user, at, paused_runs=len(paused), rule=rule or None)
            _notify_owners(incident, {run.flow for run in paused}, at)
    except IntegrityError:
        raise ChangeError(
            "An incident is open already; end it before declaring another.", "incident_open"
        ) from None
    return incident


def end(incident: Incident, user, *, at: datetime | None = None) -> Incident:
    """Close the incident; paused runs resume with the paused time credited."""
    if not is_admin(incident.organization, user):
        raise ChangeError("Only admins end incidents.", "not_admin")
    return _end(incident, at or timezone.now(), user=user)


def _end(incident: Incident, at: datetime, *, user=None) -> Incident:
    with transaction.atomic():
        incident = Incident.objects.select_for_update().get(pk=incident.pk)
        if not incident.is_open:
            raise ChangeError("This incident has ended already.", "invalid_status")
        incident.ended_at, incident.ended_by = at, user
        incident.save()
        resumed = list(
            incident.paused_runs.select_for_update(of=("self",))
            .filter(state=RunState.PAUSED)
            .select_related("flow", "client", "organization")
        )
        specs: dict = {}
        for run in resumed:
            run.credited_seconds += max(0, int((at - run.paused_at).total_seconds()))
            run.state, run.paused_at = RunState.RUNNING, None
            if run.client_id not in specs:
                specs[run.client_id] = runs.spec_for(run)
            run.due_at, run.due_for = runs.schedule(run.flow, run, specs[run.client_id])
        FlowRun.objects.bulk_update(
            resumed, ["credited_seconds", "state", "paused_at", "due_at", "due_for"]
        )
        _record(incident, "ended", user, at, resumed_runs=len(resumed))
    return incident


def on_trail_appended(organization, events) -> None:
    """trail_listeners: an enabled IncidentRule declares an incident when its trigger is
    recorded and ends it when the matching all-clear is. Never a second incident (an
    admin's open one stands), never ends an admin's."""
    triggers = {e.event_type: e for e in events if e.event_type in _RULE_TYPES}
    if not triggers:
        return
    for on, until in IncidentRule.UNTIL.items():
        if on in triggers:
            rule = IncidentRule.objects.filter(
                organization=organization, on=on, enabled=True
            ).first()
            open_one = Incident.objects.filter(organization=organization, ended_at__isnull=True)
            if rule is not None and not open_one.exists():
                # An admin declaring one in the same moment wins: theirs stands.
                with contextlib.suppress(ChangeError):
                    _declare(organization, rule.title, triggers[on].occurred_at, rule=on)
        if until in triggers:
            incident = Incident.objects.filter(
                organization=organization, ended_at__isnull=True, declared_by_rule=on
            ).first()
            if incident is not None:
                _end(incident, triggers[until].occurred_at)


_RULE_TYPES = set(IncidentRule.UNTIL) | set(IncidentRule.UNTIL.values())


def _notify_owners(incident: Incident, flows: set[Flow], at: datetime) -> None:
    """Tell whoever is on duty for each paused flow's owner role, once per incident."""
    outbox = Outbox(incident.organization_id)
    for flow in flows:
        if flow.owner_role is None:
            continue
        person = who_is_on_duty(flow.owner_role, at).primary
        if person is None:
            continue
        outbox.notify(
            None,
            person,
            f"Incident: {incident.title}. {flow.name} is paused until it ends.",
            dedupe_key=f"incident:{incident.pk}:{flow.pk}:{person.pk}",
            body={"incident_id": str(incident.pk), "flow": flow.slug, "title": incident.title},
        )
    outbox.flush()


def _record(incident: Incident, step: str, user, at: datetime, **extra) -> None:
    trail.record(
        incident.organization,
        f"incident.{step}",
        key=f"incident:{incident.pk}:{step}",
        actor_role="user" if user else "meshline",
        actor_id=(user.email or user.username) if user else f"rule:{incident.declared_by_rule}",
        occurred_at=at,
        payload={"incident_id": str(incident.pk), "title": incident.title, **extra},
    )
