"""An admin proposes a new owner for a flow; a second admin approves and rolls it back."""

import re

import pytest
from django_scopes import scope

from flows.models import Change, ChangeStatus, Flow
from meshline.models import Role
from meshline.services import create_user
from tests.browser.test_portal_browser import sign_in
from tests.conftest import PASSWORD
from tests.owners.factories import make_role

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def governed_flow(org_a, owner):
    with scope(organization=org_a):
        current = make_role(org_a, slug="seo", name="SEO Delivery Owner")
        make_role(org_a, slug="creative", name="Creative Ops Lead")
        return Flow.objects.create(
            organization=org_a,
            slug="brief-to-live",
            name="Brief to live",
            trigger_event_type="intake.received",
            outcome_event_type="sitemap.submitted",
            owner_role=current,
            due_minutes=480,
            affects_client_sla=True,
        )


def test_second_admin_approves_and_rolls_back_an_owner_change(
    browser, page, live_server, owner, governed_flow
):
    sign_in(page, live_server, owner.email)
    page.wait_for_url(re.compile(r"/o/org-a/$"))
    page.goto(f"{live_server.url}/o/org-a/flows/brief-to-live/")
    page.get_by_label("Owner role").select_option(label="Creative Ops Lead")
    page.get_by_label("Why this change?").fill("Creative ops owns late briefs now")
    page.get_by_role("button", name="Propose").click()
    page.get_by_text("a second admin must approve it").first.wait_for()
    assert page.get_by_role("button", name="Approve and apply").count() == 0
    governed_flow.refresh_from_db()
    assert governed_flow.owner_role.slug == "seo"

    create_user("second@a.example", governed_flow.organization, Role.ADMIN, PASSWORD)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    second = context.new_page()
    try:
        sign_in(second, live_server, "second@a.example")
        second.wait_for_url(re.compile(r"/o/org-a/$"))
        second.get_by_role("link", name="Changes", exact=True).click()
        second.get_by_role("link", name=re.compile("Flow: Brief to live")).click()
        second.get_by_role("button", name="Approve and apply").click()
        second.get_by_role("button", name="Roll back to the version before").wait_for()
        governed_flow.refresh_from_db()
        assert governed_flow.owner_role.slug == "creative"
        second.get_by_role("button", name="Roll back to the version before").click()
        second.get_by_text("Rolled back by second@a.example").wait_for()
    finally:
        context.close()
    governed_flow.refresh_from_db()
    assert governed_flow.owner_role.slug == "seo"
    with scope(organization=governed_flow.organization):
        assert Change.objects.get().status == ChangeStatus.ROLLED_BACK
