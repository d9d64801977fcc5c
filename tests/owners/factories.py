"""Builders for owner-map fixtures: a role with a rota, a rule, a policy, a calendar."""

from datetime import date, time

from owners.models import (
    BusinessCalendar,
    EscalationPolicy,
    EscalationStep,
    OwnerRole,
    OwnerRule,
    Rota,
    RotaLayer,
    StepAction,
    WaitKind,
)


def make_role(organization, slug="seo-delivery-owner", name="SEO Delivery Owner", people=()):
    role = OwnerRole.objects.create(organization=organization, slug=slug, name=name)
    if people:
        rota = Rota.objects.create(organization=organization, role=role, timezone="Europe/Berlin")
        RotaLayer.objects.create(
            organization=organization,
            rota=rota,
            name="weekly",
            frequency="weekly",
            handoff_time=time(9),
            start_date=date(2026, 1, 5),
            people=[person.pk for person in people],
        )
    return role


def make_policy(organization, steps=((30, WaitKind.WALL, StepAction.NOTIFY_PRIMARY),), repeat=0):
    policy = EscalationPolicy.objects.create(
        organization=organization, name="Standard", repeat=repeat
    )
    for position, (wait, kind, action) in enumerate(steps):
        EscalationStep.objects.create(
            organization=organization,
            policy=policy,
            position=position,
            wait_minutes=wait,
            wait_kind=kind,
            action=action,
        )
    return policy


def make_rule(organization, role, policy=None, **keys):
    defaults = {"respond_minutes": 60, "resolve_minutes": 240}
    defaults.update(keys)
    return OwnerRule.objects.create(
        organization=organization, owner_role=role, escalation_policy=policy, **defaults
    )


def make_calendar(organization, tz="Europe/Berlin", client=None):
    return BusinessCalendar.objects.create(
        organization=organization,
        name="Office hours",
        timezone=tz,
        working_hours={str(day): [["09:00", "17:30"]] for day in range(5)},
        is_default=client is None,
        client=client,
    )
