"""From the dashboard's attribution mismatch rate to a forensic report and its PDF, in a
real browser (issue #13's browser test)."""

import re
from datetime import date

import pytest
from django_scopes import scope
from pypdf import PdfReader

from reporting.services import attribution
from tests.browser.test_portal_browser import sign_in
from tests.gates.conftest import owner_map, publish  # noqa: F401 (fixtures)
from tests.reporting.conftest import NOW, search, touch
from tests.reporting.conftest import page as published_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def mismatch(org_a, client_acme, owner_map, publish):  # noqa: F811
    """LP-1 had impressions and no touch (a mismatch); LP-2 had both."""
    publish(
        org_a,
        *[published_page(f"LP-{n}", f"https://acme.example/lp/{n}/") for n in (1, 2)],
        search("LP-1", "2026-04-01", 400, 20),
        search("LP-2", "2026-04-01", 90, 9),
        touch("LP-2", "T-1", "2026-03-25T10:00:00Z"),
    )
    with scope(organization=org_a):
        attribution.compute_day(org_a, date(2026, 4, 1), now=NOW)


def test_the_mismatch_rate_leads_to_the_forensic_report_and_its_pdf(
    page, live_server, member, mismatch
):
    sign_in(page, live_server, member.email)
    page.wait_for_url(re.compile(r"/o/org-a/$"))
    rate = page.locator("#mismatch-rate")
    assert "50.0 %" in rate.inner_text()
    rate.click()
    page.wait_for_url(re.compile(r"/o/org-a/reporting/#mismatches$"))
    page.locator("#mismatches + table").get_by_role("link", name="LP-1").click()
    page.get_by_role("heading", name=re.compile("Forensic report: LP-1")).wait_for()
    assert page.get_by_role("heading", name="Search performance").is_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="Download PDF").click()
    path = download.value.path()
    assert download.value.suggested_filename == "forensics-LP-1.pdf"
    text = PdfReader(path).pages[0].extract_text()
    assert "Forensic report: LP-1" in text
