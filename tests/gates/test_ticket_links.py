"""A gate ticket knows what opened it through GateTicketLink, not by parsing its key."""

import importlib

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope, scopes_disabled

from gates.models import CheckName, GateEvaluation, GateTicketLink
from owners.models import Ticket, TicketSource
from tests.gates.conftest import event, page, published

pytestmark = pytest.mark.django_db


@pytest.fixture
def failing(org_a, client_acme, owner_map, make_gate, publish):
    """LP-1's page has no JSON-LD: the schema gate fails and opens a ticket."""
    gate = make_gate(CheckName.SCHEMA_CHECK)
    publish(org_a, published("LP-1", page("missing_jsonld.html")))
    with scope(organization=org_a):
        ticket = Ticket.objects.get(organization=org_a, source=TicketSource.GATE_FAILURE)
        evaluation = GateEvaluation.objects.get(organization=org_a, gate=gate)
    return gate, ticket, evaluation


def test_failure_ticket_links_its_gate_deliverable_and_evaluation(org_a, failing):
    gate, ticket, evaluation = failing
    with scope(organization=org_a):
        link = GateTicketLink.objects.get(ticket=ticket)
        assert (link.gate, link.deliverable, link.evaluation) == (
            gate,
            ticket.deliverable,
            evaluation,
        )
        assert "gate_id" not in ticket.context  # no internal integer ids in what is shown


def test_api_shows_what_opened_a_ticket_by_public_ids_only(api_a, org_a, failing):
    gate, ticket, evaluation = failing
    body = api_a.get(f"/api/v1/tickets/{ticket.pk}").json()
    assert body["opened_by"] == {
        "kind": "gate_evaluation",
        "gate": gate.slug,
        "deliverable_id": "LP-1",
        "evaluation_id": str(evaluation.pk),
    }
    assert "source_key" not in body


def test_ticket_list_reads_the_links_in_the_same_query(api_a, org_a, client_acme, failing, publish):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api_a.get("/api/v1/tickets").status_code == 200
        return len(captured.captured_queries)

    queries()  # warm: the first request also records when the key was last used
    one = queries()
    for n in range(2, 6):
        publish(org_a, published(f"LP-{n}", page("missing_jsonld.html")))
    assert queries() == one


def test_passing_again_resolves_the_linked_ticket_and_not_another_gates(
    org_a, failing, make_gate, publish
):
    _gate, ticket, _evaluation = failing
    publish(org_a, published("LP-1", page("product_landing.html")))
    with scope(organization=org_a):
        ticket.refresh_from_db()
    assert ticket.status == "resolved"


def test_migration_links_tickets_opened_before_links_existed(org_a, failing):
    gate, ticket, evaluation = failing
    with scope(organization=org_a):
        GateTicketLink.objects.filter(ticket=ticket).delete()
        Ticket.objects.filter(pk=ticket.pk).update(context={**ticket.context, "gate_id": gate.pk})
    migration = importlib.import_module("gates.migrations.0003_link_existing_tickets")
    with scopes_disabled():  # as in a migration, whose historical models are unscoped
        migration.link(apps, None)
    with scope(organization=org_a):
        link = GateTicketLink.objects.get(ticket=ticket)
        ticket.refresh_from_db()
    assert (link.gate_id, link.deliverable_id, link.evaluation_id) == (
        gate.pk,
        ticket.deliverable_id,
        evaluation.pk,
    )
    assert "gate_id" not in ticket.context


def test_hours_beyond_the_scope_open_a_billable_ticket_counting_the_whole_timesheet(
    org_a, client_acme, owner_map, make_gate, publish, earlier
):
    """The sum comes from the database, so 60 small entries count as much as one big one."""
    make_gate(CheckName.SCOPE_LIMITS, event_types=["time.logged"])
    publish(org_a, event("scope.accepted", "LP-9", {"limits": {"hours": 30}}, at=earlier(600)))
    publish(
        org_a,
        *[event("time.logged", "LP-9", {"hours": 0.5}, at=earlier(500 - n)) for n in range(60)],
    )
    with scope(organization=org_a):
        assert not Ticket.objects.filter(organization=org_a).exists()  # exactly 30 hours
    publish(org_a, event("time.logged", "LP-9", {"hours": 0.25}))
    with scope(organization=org_a):
        [ticket] = Ticket.objects.filter(organization=org_a, source=TicketSource.GATE_FAILURE)
        evaluation = GateEvaluation.objects.get(organization=org_a, opened__ticket=ticket)
    assert evaluation.reasons == ["30.25 hours logged; the scope includes 30."]
    assert evaluation.billing_flag is True and ticket.context["billing_flag"] is True
