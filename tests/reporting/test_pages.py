"""Reporting page, forensic report, exports and dashboard: members see them, outsiders 404."""

import io
from datetime import date

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope
from pypdf import PdfReader

from reporting.services import attribution, exports
from tests.reporting.conftest import NOW, revenue, search, touch

R = date(2026, 4, 1)


@pytest.fixture
def reported(org_a, pages, publish, owner_map, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    publish(
        org_a,
        search("LP-1", "2026-04-01", 400, 20),
        search("LP-2", "2026-04-01", 90, 9),
        touch("LP-2", "T-1", "2026-03-25T10:00:00Z"),
        revenue("LP-2", "INV-1", 500, "2026-04-01"),
    )
    with scope(organization=org_a):
        attribution.compute_day(org_a, R, now=NOW)
        return exports.run_export(org_a, R, "csv")


def test_reporting_page_lists_roi_mismatches_and_exports(as_member, reported, client_beta):
    page = as_member.get("/o/org-a/reporting/?until=2026-04-01&days=7&sort=impressions")
    assert page.status_code == 200
    html = page.content.decode()
    assert html.index("LP-1") < html.index("LP-2")  # sorted by impressions
    assert "500.00" in html
    assert "deliverables-2026-04-01.csv" in html
    assert 'id="mismatches"' in html and "Attribution mismatch: LP-1" in html
    # The chart: a bar per day of the 7, the day's impressions in its title, the totals.
    assert html.count("impressions</title>") == 7
    assert "<title>Apr 01: 490 impressions</title>" in html
    assert "Impressions per day: 490 in the period (29 clicks), peak 490 a day." in html
    # Another client's numbers are not in its chart.
    other = as_member.get("/o/org-a/reporting/?until=2026-04-01&days=7&client=beta")
    assert "No impressions in the period." in other.content.decode()


def test_reporting_page_bad_client_is_a_form_error(as_member, reported):
    page = as_member.get("/o/org-a/reporting/?client=nope")
    assert page.status_code == 200
    assert "No client &#x27;nope&#x27; in this organization." in page.content.decode()


def test_reporting_page_query_count_does_not_grow(as_member, reported, org_a, publish):
    url = "/o/org-a/reporting/?until=2026-04-01"
    with CaptureQueriesContext(connection) as few:
        as_member.get(url)
    publish(org_a, search("LP-3", "2026-04-01", 5, 0))
    with scope(organization=org_a):
        attribution.compute_day(org_a, R, now=NOW)
    with CaptureQueriesContext(connection) as more:
        as_member.get(url)
    assert len(more) == len(few)


def test_forensic_report_walks_from_events_to_revenue(as_member, api_a, reported):
    page = as_member.get("/o/org-a/reporting/deliverables/LP-2/")
    assert page.status_code == 200
    assert "INV-1" in page.content.decode()
    body = api_a.get("/api/v1/deliverables/LP-2/forensics").json()
    assert [e["event_type"] for e in body["events"]][:1] == ["page.published"]
    assert all(len(e["content_digest"]) == 64 for e in body["events"])
    assert body["crm_touches"][0]["touch_id"] == "T-1"
    assert body["search_performance"][0]["impressions"] == 90
    assert body["revenue"][0]["shares"]["linear"] == {
        "share": "1.00000000",
        "amount": "500.0000",
        "touches": 1,
    }
    assert body["attributed_revenue"]["last_touch"] == "500.0000"


def test_forensic_report_pdf_says_what_the_json_says(as_member, api_a, reported):
    portal = as_member.get("/o/org-a/reporting/deliverables/LP-2/report.pdf")
    api = api_a.get("/api/v1/deliverables/LP-2/forensics/pdf")
    assert portal.status_code == api.status_code == 200
    assert portal["Content-Type"] == "application/pdf"
    assert 'filename="forensics-LP-2.pdf"' in portal["Content-Disposition"]
    assert portal.content == api.content  # dated by the trail: the same bytes each time
    text = " ".join(
        page.extract_text() for page in PdfReader(io.BytesIO(portal.content)).pages
    ).replace("\n", " ")
    body = api_a.get("/api/v1/deliverables/LP-2/forensics").json()
    assert "Forensic report: LP-2" in text
    # Ids may wrap inside a table cell: compare without whitespace.
    dense = "".join(text.split())
    for event in body["events"]:
        assert event["id"] in dense and event["content_digest"][:16] in dense
    assert "T-1" in dense and "INV-1" in dense and "500.0000" in dense
    assert f"Events ({len(body['events'])})" in text
    page = as_member.get("/o/org-a/reporting/deliverables/LP-2/").content.decode()
    assert "/o/org-a/reporting/deliverables/LP-2/report.pdf" in page


def test_exports_list_and_download(as_member, api_a, reported):
    listed = api_a.get("/api/v1/exports").json()["results"]
    assert [(e["date"], e["format"], e["rows"]) for e in listed] == [("2026-04-01", "csv", 3)]
    api_file = api_a.get(f"/api/v1/exports/{reported.pk}/download")
    portal_file = as_member.get(f"/o/org-a/reporting/exports/{reported.pk}/")
    assert api_file.status_code == portal_file.status_code == 200
    assert b"".join(api_file.streaming_content) == b"".join(portal_file.streaming_content)


def test_dashboard_and_deliverable_page_show_reporting(as_member, reported):
    dashboard = as_member.get("/o/org-a/").content.decode()
    assert 'id="mismatch-rate"' in dashboard and "50.0 %" in dashboard  # 1 of 2
    detail = as_member.get("/o/org-a/deliverables/LP-2/").content.decode()
    assert 'id="revenue-h"' in detail and "/o/org-a/reporting/deliverables/LP-2/" in detail


def test_outsiders_get_404_everywhere(as_outsider, api_b, reported):
    for url in [
        "/o/org-a/reporting/",
        "/o/org-a/reporting/deliverables/LP-2/",
        "/o/org-a/reporting/deliverables/LP-2/report.pdf",
        f"/o/org-a/reporting/exports/{reported.pk}/",
    ]:
        assert as_outsider.get(url).status_code == 404, url
    for url in [
        "/api/v1/deliverables/LP-2/forensics",
        "/api/v1/deliverables/LP-2/forensics/pdf",
        f"/api/v1/exports/{reported.pk}",
        f"/api/v1/exports/{reported.pk}/download",
    ]:
        assert api_b.get(url).status_code == 404, url
    assert api_b.get("/api/v1/exports").json()["results"] == []


def test_forensics_needs_the_read_scope(make_key, org_a, reported):
    _key, client = make_key(org_a, scopes=["events:read"])
    assert client.get("/api/v1/deliverables/LP-2/forensics").status_code == 403
    assert client.get("/api/v1/deliverables/LP-2/forensics/pdf").status_code == 403
