"""One set of model factories (factory_boy) for the tests, the demo and the benches.

Tenant rows need their organization passed in (``organization=org``) and, for the
get-or-create factories, an active scope: the look-up goes through the scoped manager.
Factories keyed by a natural key (``django_get_or_create``) return the existing row, so
the demo can run them again and change nothing.
"""

from datetime import date, time

import factory
from factory.django import DjangoModelFactory

from deliveries.models import Client, Tier
from gates.models import CheckName, Gate, GateMode
from owners.models import (
    BusinessCalendar,
    EscalationPolicy,
    EscalationStep,
    Frequency,
    OwnerRole,
    OwnerRule,
    Rota,
    RotaLayer,
    StepAction,
    WaitKind,
)

# Monday to Friday, 09:00-17:30: the office hours of the tests' and the demo's calendars.
OFFICE_HOURS = {str(day): [["09:00", "17:30"]] for day in range(5)}
ROTA_START = date(2026, 1, 5)  # a Monday: weekly rotas hand off on Mondays at 09:00


class ClientFactory(DjangoModelFactory):
    class Meta:
        model = Client
        django_get_or_create = ("organization", "client_id")

    client_id = factory.Sequence(lambda n: f"client-{n}")
    name = factory.LazyAttribute(lambda o: o.client_id.replace("-", " ").title())
    tier = Tier.STANDARD


class RotaFactory(DjangoModelFactory):
    class Meta:
        model = Rota
        django_get_or_create = ("organization", "role")

    timezone = "Europe/Berlin"


class RotaLayerFactory(DjangoModelFactory):
    """A weekly layer handing off on Mondays at 09:00; ``people`` are user pks."""

    class Meta:
        model = RotaLayer
        django_get_or_create = ("organization", "rota", "name")

    name = "weekly"
    frequency = Frequency.WEEKLY
    handoff_time = time(9)
    start_date = ROTA_START
    people = factory.LazyFunction(list)


class OwnerRoleFactory(DjangoModelFactory):
    """A role; ``people=[user, ...]`` also gives it a rota with one weekly layer of them."""

    class Meta:
        model = OwnerRole
        django_get_or_create = ("organization", "slug")
        skip_postgeneration_save = True  # the hook adds other rows; a save adds a version

    slug = factory.Sequence(lambda n: f"role-{n}")
    name = factory.LazyAttribute(lambda o: o.slug.replace("-", " ").title())

    @factory.post_generation
    def people(role, create, extracted, **kwargs):
        if not create or not extracted:
            return
        rota = RotaFactory(organization=role.organization, role=role)
        RotaLayerFactory(
            organization=role.organization,
            rota=rota,
            people=[person.pk for person in extracted],
            **kwargs,
        )


class EscalationStepFactory(DjangoModelFactory):
    class Meta:
        model = EscalationStep

    position = factory.Sequence(int)
    wait_minutes = 30
    wait_kind = WaitKind.WALL
    action = StepAction.NOTIFY_PRIMARY


class EscalationPolicyFactory(DjangoModelFactory):
    """A policy; ``steps=[(wait minutes, wait kind, action[, target role]), ...]`` in order."""

    class Meta:
        model = EscalationPolicy
        skip_postgeneration_save = True

    name = "Standard"
    repeat = 0

    @factory.post_generation
    def steps(policy, create, extracted, **kwargs):
        if not create or extracted is None:
            return
        for position, (wait, kind, action, *target) in enumerate(extracted):
            EscalationStepFactory(
                organization=policy.organization,
                policy=policy,
                position=position,
                wait_minutes=wait,
                wait_kind=kind,
                action=action,
                target_role=target[0] if target else None,
            )


class OwnerRuleFactory(DjangoModelFactory):
    class Meta:
        model = OwnerRule

    respond_minutes = 60
    resolve_minutes = 240


class BusinessCalendarFactory(DjangoModelFactory):
    """Office hours in Berlin; the organization's default unless it belongs to a client."""

    class Meta:
        model = BusinessCalendar

    name = "Office hours"
    timezone = "Europe/Berlin"
    working_hours = factory.LazyFunction(lambda: {**OFFICE_HOURS})
    client = None
    is_default = factory.LazyAttribute(lambda o: o.client is None)


class GateFactory(DjangoModelFactory):
    """An enforced gate on page.published, out of reach of the over-strictness guard."""

    class Meta:
        model = Gate
        django_get_or_create = ("organization", "slug")

    check_name = CheckName.SCHEMA_CHECK
    slug = factory.LazyAttribute(lambda o: o.check_name.replace("_", "-"))
    name = factory.LazyAttribute(lambda o: o.check_name.replace("_", " ").capitalize())
    event_types = factory.LazyFunction(lambda: ["page.published"])
    mode = GateMode.ENFORCE
    playbook = "Fix it and republish."
    min_evaluations = 1000
