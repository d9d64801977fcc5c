"""Meshline's own trail entries: one writer, every entry digested and keyed, appended once."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope, scopes_disabled

from deliveries.models import Deliverable, Event, EventSource
from deliveries.services import trail
from devtools.demo import DEMO_SLUG
from meshline.models import Organization
from owners.services import escalation

pytestmark = pytest.mark.django_db


@pytest.fixture
def deliverable(org_a, client_acme):
    with scope(organization=org_a):
        return Deliverable.objects.create(
            organization=org_a, client=client_acme, deliverable_id="LP-1", type="landing_page"
        )


def test_record_many_appends_each_key_once_in_two_writes(org_a, deliverable):
    with scope(organization=org_a):
        trail.record(org_a, "rota.handoff", key="handoff:1", payload={"n": 1})
        entries = [
            trail.Entry("rota.handoff", key="handoff:1", payload={"n": 1}),  # already there
            trail.Entry("ticket.escalated", key="t:1", payload={"n": 2}, deliverable=deliverable),
            trail.Entry("ticket.escalated", key="t:1", payload={"n": 2}),  # twice in the batch
            trail.Entry("ticket.escalated", key="t:2", payload={"n": 3}),
        ]
        with CaptureQueriesContext(connection) as captured:
            added = trail.record_many(org_a, entries)
        # Two COPYs on PostgreSQL (two INSERTs elsewhere): the events and their processing.
        writes = [q for q in captured.captured_queries if q["sql"].startswith(("INSERT", "COPY"))]
        assert len(writes) == 2
        assert [e.idempotency_key for e in added] == ["meshline:t:1", "meshline:t:2"]
        assert added[0].client_id == deliverable.client_id
        assert trail.record_many(org_a, entries) == []
        assert Event.objects.filter(organization=org_a).count() == 3


def test_every_entry_meshline_writes_has_its_digest_and_key():
    """The demo opens, escalates and hands off: every Meshline entry goes through trail."""
    call_command("seed_demo", stdout=StringIO())
    organization = Organization.objects.get(slug=DEMO_SLUG)
    with scope(organization=organization):
        escalation.escalate_due_tickets(
            organization, now=organization.created_at + timedelta(days=60)
        )
    with scopes_disabled():
        entries = Event.objects.filter(organization=organization, source=EventSource.MESHLINE)
        types = set(entries.values_list("event_type", flat=True))
        assert {"ticket.opened", "ticket.escalated", "gate.failed"} <= types, types
        assert not entries.filter(content_digest="").exists()
        assert entries.exclude(idempotency_key__startswith="meshline:").count() == 0
