"""The portal's ticket pages and actions: another tenant's ticket is 404, a viewer is 403.

The URL walk in tests/test_portal.py only reaches the organization check with a stand-in
id; these use a real ticket of organization A, by its UUID, from organization B's side,
and check the ticket did not change.
"""

import re

import pytest
from django.test import Client as DjangoClient
from django_scopes import scope

from meshline.models import Role
from meshline.services import create_user
from owners.models import Ticket, TicketStatus
from tests.conftest import PASSWORD
from tests.owners.factories import make_role, make_rule

pytestmark = pytest.mark.django_db

ACTIONS = {
    "acknowledge": {},
    "reassign": {"assignee": ""},
    "resolve": {"note": "done"},
    "cancel": {"reason": "duplicate"},
}


@pytest.fixture
def a_ticket(org_a, member, client_acme, deliverable, open_ticket):
    with scope(organization=org_a):
        make_rule(org_a, make_role(org_a, people=[member]), event_type="page.published")
        return open_ticket(deliverable=deliverable)


def signed_in(user) -> DjangoClient:
    client = DjangoClient()
    client.force_login(user)
    return client


def unchanged(org, ticket) -> bool:
    with scope(organization=org):
        fresh = Ticket.objects.get(pk=ticket.pk)
    return (fresh.status, fresh.assignee_id) == (TicketStatus.OPEN, ticket.assignee_id)


def test_another_organization_gets_404_on_a_ticket_and_its_actions(
    org_a, org_b, outsider, a_ticket
):
    b = signed_in(outsider)
    for org_slug in ("org-a", "org-b"):  # A's URL, and A's ticket id under B's own URL
        base = f"/o/{org_slug}/tickets/{a_ticket.pk}/"
        assert b.get(base).status_code == 404
        for action, data in ACTIONS.items():
            assert b.post(f"{base}{action}", data).status_code == 404, (org_slug, action)
    assert unchanged(org_a, a_ticket)


def test_a_viewer_reads_the_ticket_but_every_action_is_refused(org_a, viewer, a_ticket):
    client = signed_in(viewer)
    base = f"/o/org-a/tickets/{a_ticket.pk}/"
    assert client.get(base).status_code == 200
    for action, data in ACTIONS.items():
        assert client.post(f"{base}{action}", data).status_code == 403, action
    assert unchanged(org_a, a_ticket)


def test_the_member_acts_on_the_same_ticket(org_a, member, a_ticket):
    """The control: the same requests from A's account manager do change it."""
    client = signed_in(member)
    response = client.post(f"/o/org-a/tickets/{a_ticket.pk}/acknowledge")
    assert response.status_code == 302
    with scope(organization=org_a):
        assert Ticket.objects.get(pk=a_ticket.pk).status == TicketStatus.ACKNOWLEDGED


def test_acknowledging_from_the_board_renders_the_card_without_the_ticket_history(
    org_a, member, a_ticket
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = signed_in(member)
    with CaptureQueriesContext(connection) as queries:
        response = client.post(
            f"/o/org-a/tickets/{a_ticket.pk}/acknowledge", HTTP_HX_REQUEST="true"
        )
    assert response.status_code == 200
    assert f'id="ticket-{a_ticket.pk}"' in response.content.decode()
    history = [q["sql"] for q in queries.captured_queries if "ticket_id" in q["sql"]]
    assert not [sql for sql in history if sql.startswith("SELECT") and "deliveries_event" in sql]


@pytest.fixture
def finance(org_a):

    return create_user("finance@a.example", org_a, Role.FINANCE, PASSWORD)


def test_finance_cannot_resolve_or_cancel_but_may_acknowledge(org_a, finance, a_ticket):
    client = signed_in(finance)
    base = f"/o/org-a/tickets/{a_ticket.pk}/"
    page = client.get(base).content.decode()
    assert f"{base}resolve" not in page
    assert f"{base}cancel" not in page
    assert f"{base}acknowledge" in page
    for action in ("resolve", "cancel"):
        assert client.post(f"{base}{action}", ACTIONS[action]).status_code == 403, action
        assert (
            client.post(f"{base}{action}", ACTIONS[action], HTTP_HX_REQUEST="true").status_code
            == 403
        )
    assert unchanged(org_a, a_ticket)
    # Acknowledging is still theirs (the board shows them a reassign link, not resolve).
    assert client.post(f"{base}acknowledge").status_code == 302
    board = client.get("/o/org-a/board/").content.decode()
    assert "Resolve or reassign" not in board
    with scope(organization=org_a):
        assert Ticket.objects.get(pk=a_ticket.pk).status == TicketStatus.ACKNOWLEDGED


@pytest.mark.parametrize("action", ["resolve", "cancel"])
def test_an_account_manager_resolves_and_cancels(org_a, member, a_ticket, action):
    """The control for the finance test: the same request from an account manager closes."""
    client = signed_in(member)
    base = f"/o/org-a/tickets/{a_ticket.pk}/"
    assert f"{base}{action}" in client.get(base).content.decode()
    assert client.post(f"{base}{action}", ACTIONS[action]).status_code == 302
    with scope(organization=org_a):
        status = Ticket.objects.get(pk=a_ticket.pk).status
    assert status == {"resolve": TicketStatus.RESOLVED, "cancel": TicketStatus.CANCELLED}[action]


def test_an_outsider_with_finance_role_elsewhere_gets_404(org_a, org_b, a_ticket):

    outsider = create_user("finance@b.example", org_b, Role.FINANCE, PASSWORD)
    client = signed_in(outsider)
    for action in ("resolve", "cancel"):
        response = client.post(f"/o/org-a/tickets/{a_ticket.pk}/{action}", ACTIONS[action])
        assert response.status_code == 404
    assert unchanged(org_a, a_ticket)


@pytest.mark.parametrize(
    "page_url",
    [
        "javascript:alert(document.cookie)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example/x",
        "https://ok.example/\nx",
    ],
)
def test_a_non_http_page_url_in_the_context_is_shown_as_text_not_a_link(
    org_a, member, a_ticket, page_url
):
    with scope(organization=org_a):
        Ticket.objects.filter(pk=a_ticket.pk).update(
            context={"artifacts": ["jsonld"], "page_url": page_url}
        )
    page = signed_in(member).get(f"/o/org-a/tickets/{a_ticket.pk}/").content.decode()
    assert "Failing artifacts" in page
    assert 'rel="noopener noreferrer nofollow"' not in page
    assert "<code>" in page
    hrefs = re.findall(r'<a\b[^>]*\bhref="([^"]*)"', page)
    assert hrefs and all(h.startswith(("/", "#", "?")) for h in hrefs), hrefs


def test_an_http_page_url_in_the_context_is_a_link(org_a, member, a_ticket):
    with scope(organization=org_a):
        Ticket.objects.filter(pk=a_ticket.pk).update(
            context={"artifacts": ["jsonld"], "page_url": "https://acme.example/lp/spring?a=1&b=2"}
        )
    page = signed_in(member).get(f"/o/org-a/tickets/{a_ticket.pk}/").content.decode()
    assert (
        '<a href="https://acme.example/lp/spring?a=1&amp;b=2" rel="noopener noreferrer nofollow">'
        in page
    )
