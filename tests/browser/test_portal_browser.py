"""An account manager works a ticket end to end in a real browser."""

import io
import re

import pytest
from django.core.management import call_command
from django_scopes import scope, scopes_disabled

from deliveries.services import ingest_events
from devtools.demo import DEMO_PASSWORD, DEMO_SLUG
from gates.models import CheckName, Gate
from owners.models import Ticket, TicketStatus
from tests.conftest import PASSWORD
from tests.owners.factories import make_role, make_rule

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGE_WITHOUT_JSONLD = (
    "<html><head><title>Spring</title></head><body><h1>Spring</h1><p>Hello.</p></body></html>"
)


@pytest.fixture
def failing_page(org_a, member, client_acme):
    """page.published without JSON-LD: the enforced gate opens a ticket for the member."""
    with scope(organization=org_a):
        role = make_role(org_a, people=[member])
        make_rule(org_a, role, event_type="page.published")
        Gate.objects.create(
            organization=org_a,
            slug="jsonld",
            name="Schema.org JSON-LD",
            check_name=CheckName.SCHEMA_CHECK,
            event_types=["page.published"],
            playbook="Add JSON-LD to the template.",
        )
        (result,) = ingest_events(
            org_a,
            [
                {
                    "event_type": "page.published",
                    "deliverable_id": "LP-77",
                    "client_id": "acme",
                    "actor": {"role": "cms", "id": "wp"},
                    "occurred_at": "2026-11-20T10:00:00Z",
                    "payload": {"url": "https://acme.example/spring", "html": PAGE_WITHOUT_JSONLD},
                }
            ],
        )
        assert result.status == "accepted"
        ticket = Ticket.objects.get(organization=org_a)
    return ticket


def sign_in(page, live_server, email):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email or username").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def test_account_manager_acknowledges_ticket_from_board_and_finds_it_in_timeline(
    page, live_server, member, failing_page
):
    sign_in(page, live_server, member.email)
    page.wait_for_url(re.compile(r"/o/org-a/$"))
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    open_count = page.locator("a.stat", has_text="open").first.inner_text()
    assert open_count.startswith("1")

    page.get_by_role("link", name="Board", exact=True).click()
    card = page.locator(f"#ticket-{failing_page.pk}")
    assert "Schema.org JSON-LD failed for LP-77" in card.inner_text()
    card.get_by_role("button", name="Acknowledge").click()
    # htmx swaps the card in place: its status changes without a page load.
    page.wait_for_selector(f"#ticket-{failing_page.pk} .state-acknowledged")
    failing_page.refresh_from_db()
    assert failing_page.status == TicketStatus.ACKNOWLEDGED
    assert failing_page.assignee_id == member.pk

    page.locator(f"#ticket-{failing_page.pk}").get_by_role("link", name="LP-77", exact=True).click()
    page.wait_for_url(re.compile(r"/deliverables/LP-77/$"))
    timeline = page.locator(".trail").inner_text()
    assert "ticket.opened" in timeline and "ticket.acknowledged" in timeline
    assert (
        "Schema.org JSON-LD failed for LP-77"
        in page.locator("#tickets-heading + table").inner_text()
    )


def test_resolving_while_gate_fails_shows_the_error_next_to_the_waiver_field(
    page, live_server, member, failing_page
):
    sign_in(page, live_server, member.email)
    page.goto(f"{live_server.url}/o/org-a/tickets/{failing_page.pk}/")
    page.get_by_role("button", name="Resolve").click()
    error = page.locator(".field-error", has_text="still fails")
    error.wait_for()
    page.get_by_label("Waiver reason").fill("Client accepted the page without JSON-LD")
    page.get_by_role("button", name="Resolve").click()
    page.get_by_text("This ticket is resolved").wait_for()
    failing_page.refresh_from_db()
    assert failing_page.status == TicketStatus.RESOLVED


def test_viewer_sees_the_board_but_cannot_act(page, live_server, viewer, failing_page):
    sign_in(page, live_server, viewer.email)
    page.goto(f"{live_server.url}/o/org-a/board/")
    assert page.locator(f"#ticket-{failing_page.pk}").is_visible()
    assert page.get_by_role("button", name="Acknowledge").count() == 0
    page.goto(f"{live_server.url}/o/org-a/tickets/{failing_page.pk}/")
    assert page.get_by_text("your role cannot change it").is_visible()


def test_other_organizations_user_gets_404_on_a_pages(page, live_server, outsider, failing_page):
    sign_in(page, live_server, outsider.email)
    for path in (
        "/o/org-a/",
        "/o/org-a/board/",
        f"/o/org-a/tickets/{failing_page.pk}/",
        "/o/org-a/deliverables/LP-77/",
    ):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 404, path


def test_account_manager_works_a_demo_ticket_from_board_to_resolution(page, live_server):
    """The issue's done-when, on the demo organization exactly as `make demo` seeds it."""
    call_command("seed_demo", stdout=io.StringIO())
    with scopes_disabled():
        ticket = Ticket.objects.get(
            organization__slug=DEMO_SLUG, title="Schema.org JSON-LD failed for SEO-2007"
        )
    assert ticket.status == TicketStatus.OPEN
    with scopes_disabled():
        # What the demo opens: gate failures, flows' breaches and exceptions, billing's
        # scope overruns, reporting's attribution mismatches.
        open_tickets = Ticket.objects.filter(
            organization__slug=DEMO_SLUG, status=TicketStatus.OPEN
        ).count()

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email or username").fill("am@northwind.example")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(rf"/o/{DEMO_SLUG}/$"))
    assert page.get_by_role("heading", name="Dashboard").is_visible()
    open_stat = page.locator("a.stat", has_text="open").first.inner_text()
    assert open_stat.split()[0] == str(open_tickets)

    page.get_by_role("link", name="Board", exact=True).click()
    card = page.locator(f"#ticket-{ticket.pk}")
    card.get_by_role("button", name="Acknowledge").click()
    page.wait_for_selector(f"#ticket-{ticket.pk} .state-acknowledged")

    page.locator(f"#ticket-{ticket.pk}").get_by_role("link", name=ticket.title).click()
    page.wait_for_url(re.compile(rf"/tickets/{ticket.pk}/$"))
    # The gate still fails: resolving needs a waiver, asked for next to its field.
    page.get_by_role("button", name="Resolve").click()
    page.locator(".field-error", has_text="still fails").wait_for()
    page.get_by_label("Waiver reason").fill("Client publishes JSON-LD through their tag manager")
    page.get_by_role("button", name="Resolve").click()
    page.get_by_text("This ticket is resolved").wait_for()

    page.get_by_role("link", name="SEO-2007", exact=True).first.click()
    page.wait_for_url(re.compile(r"/deliverables/SEO-2007/$"))
    timeline = page.locator(".trail").inner_text()
    for step in ("page.published", "gate.failed", "ticket.acknowledged", "ticket.resolved"):
        assert step in timeline, step
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.RESOLVED
    assert ticket.closed_note == "Client publishes JSON-LD through their tag manager"


def test_the_portal_breaks_no_content_security_policy_rule(page, live_server, member, failing_page):
    """Chromium reports every CSP violation on the console: the pages and an htmx swap
    (acknowledge on the board) must produce none."""
    violations = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    sign_in(page, live_server, member.email)
    page.wait_for_url(re.compile(r"/o/org-a/$"))
    for path in ("board/", "tickets/", f"tickets/{failing_page.pk}/", "deliverables/", "me/"):
        page.goto(f"{live_server.url}/o/org-a/{path}")
    page.goto(f"{live_server.url}/o/org-a/board/")
    page.locator(f"#ticket-{failing_page.pk}").get_by_role("button", name="Acknowledge").click()
    page.wait_for_selector(f"#ticket-{failing_page.pk} .state-acknowledged")
    assert violations == []
