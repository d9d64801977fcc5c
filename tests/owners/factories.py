"""Owner-map fixtures for tests, as the shared factories (devtools.factories) build them."""

from devtools.factories import (
    BusinessCalendarFactory,
    EscalationPolicyFactory,
    OwnerRoleFactory,
    OwnerRuleFactory,
)
from owners.models import StepAction, WaitKind


def make_role(organization, slug="seo-delivery-owner", name="SEO Delivery Owner", people=()):
    """A role; with ``people``, a Berlin rota of one weekly layer of them."""
    return OwnerRoleFactory(organization=organization, slug=slug, name=name, people=list(people))


def make_policy(organization, steps=((30, WaitKind.WALL, StepAction.NOTIFY_PRIMARY),), repeat=0):
    return EscalationPolicyFactory(organization=organization, repeat=repeat, steps=list(steps))


def make_rule(organization, role, policy=None, **keys):
    return OwnerRuleFactory(
        organization=organization, owner_role=role, escalation_policy=policy, **keys
    )


def make_calendar(organization, tz="Europe/Berlin", client=None):
    return BusinessCalendarFactory(organization=organization, timezone=tz, client=client)
