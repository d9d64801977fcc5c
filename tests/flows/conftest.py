"""Fixtures for the flows tests: organization A's owner map with an escalation policy, a
flow owned by the "Flow Owner" role, and the real event pipeline (tests.gates.conftest)."""

from datetime import UTC, datetime, timedelta

import pytest
from django_scopes import scope

from flows.models import Flow
from meshline.models import Role
from meshline.services import create_user
from tests.conftest import PASSWORD
from tests.gates.conftest import event, make_gate, owner_map, publish  # noqa: F401  (fixtures)
from tests.owners.factories import make_policy, make_role, make_rule

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # a Monday; flows here count wall time


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def second_admin(org_a):
    return create_user("second@a.example", org_a, Role.ADMIN, PASSWORD)


@pytest.fixture
def roles(org_a, owner, member):
    """Two roles: the flow's owner (member on duty) and the map's catch-all (owner)."""
    with scope(organization=org_a):
        flow_owner = make_role(org_a, slug="flow-owner", name="Flow Owner", people=[member])
        fallback = make_role(org_a, slug="account-manager", name="Account Manager", people=[owner])
        make_rule(org_a, fallback, policy=make_policy(org_a), position=1000)
    return {"flow_owner": flow_owner, "fallback": fallback}


@pytest.fixture
def make_flow(org_a, roles):
    """make_flow(**fields): brief-to-live in wall minutes, owned by the Flow Owner."""

    def make(organization=None, **fields):
        values = {
            "slug": "brief-to-live",
            "name": "Brief to live",
            "trigger_event_type": "intake.received",
            "required_fields": ["requested_by"],
            "milestones": [
                {
                    "event_type": "asset.approved",
                    "name": "Approved",
                    "due_minutes": 60,
                    "due_kind": "wall",
                },
                {
                    "event_type": "page.published",
                    "name": "Live",
                    "due_minutes": 120,
                    "due_kind": "wall",
                },
            ],
            "outcome_event_type": "sitemap.submitted",
            "due_minutes": 180,
            "due_kind": "wall",
            "owner_role": roles["flow_owner"],
            "runbook": "1. Chase the approver.\n2. Publish.",
            "affects_client_sla": True,
        }
        values.update(fields)
        organization = organization or org_a
        with scope(organization=organization):
            return Flow.objects.create(organization=organization, **values)

    return make


def intake(ref="LP-1", minutes=0, **payload):
    return event(
        "intake.received",
        ref,
        {"requested_by": "cmo@acme.example", "deliverable_type": "landing_page", **payload},
        at=at(minutes),
        key=f"intake-{ref}-{minutes}",
    )


def approved(ref="LP-1", minutes=30, key=None):
    return event(
        "asset.approved",
        ref,
        {"asset_id": "hero"},
        at=at(minutes),
        key=key or f"approved-{ref}-{minutes}",
    )


def published(ref="LP-1", minutes=60):
    return event(
        "page.published",
        ref,
        {"url": "https://acme.example/lp"},
        at=at(minutes),
        key=f"published-{ref}-{minutes}",
    )


def sitemap(ref="LP-1", minutes=90, key=None):
    return event(
        "sitemap.submitted",
        ref,
        {"sitemap_url": "https://acme.example/sitemap.xml", "urls": ["https://acme.example/lp"]},
        at=at(minutes),
        key=key or f"sitemap-{ref}-{minutes}",
    )
