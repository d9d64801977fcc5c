"""Billing fixtures: the real pipeline (ingest, processing with the billing step), a
scope.accepted with a rate card, finance people."""

from datetime import UTC, datetime, timedelta

import pytest
from django_scopes import scope

from billing.models import BillableItem, ScopeAgreement
from billing.services import approvals, invoices
from deliveries.services import ingest_events
from meshline.models import Role
from meshline.services import create_user
from owners.services.tickets import Actor
from tests.conftest import PASSWORD
from tests.gates.conftest import event

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RATES = {
    "revisions": {"rate": "120.00", "unit": "revision"},
    "hours": {"rate": "95.50", "unit": "hour"},
    "asset_size_mb": {"rate": "40.00", "unit": "oversize asset"},
}


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def scope_event(ref="LP-1", *, hours=0, limits=None, rates=RATES, currency="EUR", **extra):
    payload = {
        "limits": limits or {"revisions": 1, "hours": 10, "asset_size_mb": 5},
        "rates": rates,
        "currency": currency,
        "signed_by": "cmo@acme.example",
        **extra,
    }
    return event("scope.accepted", ref, payload, at=at(hours))


def changes(n, start=1.0, ref="LP-1"):
    """n change requests, an hour apart: beyond the first, each is a revision overrun."""
    return [
        event("change.requested", ref, {"summary": f"change {i}"}, at=at(start + i))
        for i in range(n)
    ]


@pytest.fixture
def publish(django_capture_on_commit_callbacks):
    """Ingest events and run their processing (eager, in this process); returns the results."""

    def run(organization, *events):
        with scope(organization=organization), django_capture_on_commit_callbacks(execute=True):
            return ingest_events(organization, list(events))

    return run


@pytest.fixture
def finance(org_a):
    return create_user("finance@a.example", org_a, Role.FINANCE, PASSWORD)


@pytest.fixture
def finance2(org_a):
    return create_user("finance2@a.example", org_a, Role.FINANCE, PASSWORD)


@pytest.fixture
def billed(org_a, client_acme, publish):
    """A signed agreement (one revision included) and two proposed revision overruns."""
    publish(org_a, scope_event(), *changes(3))
    with scope(organization=org_a):
        return (
            ScopeAgreement.objects.get(organization=org_a),
            list(BillableItem.objects.filter(organization=org_a).order_by("occurred_at")),
        )


@pytest.fixture
def issued(org_a, billed):
    """Invoice INV-000001: both overruns approved and invoiced (285.60 EUR with 19 % tax)."""
    _, items = billed
    actor = Actor("user", "finance@a.example")
    with scope(organization=org_a):
        for item in items:
            approvals.approve(item, actor, at(26))
        return invoices.finalize(
            invoices.draft_invoice(org_a, items[0].client, at(0), at(24), actor), actor, at(30)
        )
