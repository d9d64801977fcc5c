"""Billing fixtures: the real pipeline (ingest, processing with the billing step), a
scope.accepted with a rate card, finance people."""

from datetime import UTC, datetime, timedelta

import pytest
from django_scopes import scope

from deliveries.services import ingest_events
from meshline.models import Role
from meshline.services import create_user
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
