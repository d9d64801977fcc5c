"""Shared fixtures for the owners app's Django-side tests: a scoped organization A, a
deliverable of an enterprise client, and a one-call ticket opener."""

from datetime import UTC, datetime

import pytest
from django_scopes import scope

from deliveries.models import Deliverable
from owners.models import TicketSource
from owners.services import tickets

# Monday 2026-11-23 10:00 Berlin: inside business hours, so business waits are plain minutes.
MONDAY_10_BERLIN = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def in_a(org_a):
    """Run the test body inside organization A's scope."""
    with scope(organization=org_a):
        yield org_a


@pytest.fixture
def deliverable(org_a, client_acme):
    """A landing page of Acme, an enterprise client of organization A."""
    with scope(organization=org_a):
        return Deliverable.objects.create(
            organization=org_a, client=client_acme, deliverable_id="LP-1", type="landing_page"
        )


@pytest.fixture
def open_ticket(org_a):
    """open_ticket(key, **overrides) for organization A: an incident on page.published.

    Not a gate failure: the gates app registers a resolve guard for those.
    """

    def make(source_key="incident:1", organization=None, **overrides):
        kwargs = {
            "source": TicketSource.INCIDENT,
            "source_key": source_key,
            "title": f"Ticket {source_key}",
            "event_type": "page.published",
            "at": MONDAY_10_BERLIN,
        }
        kwargs.update(overrides)
        ticket, _ = tickets.open_ticket(organization or org_a, **kwargs)
        return ticket

    return make
