"""Issued invoices and credit notes exported for an accounting system: CSV and JSON."""

import csv
import io
import json
from decimal import Decimal

import pytest
from django_scopes import scope

from billing.models import BillableItem
from billing.services import invoices
from owners.services.tickets import Actor
from tests.billing.conftest import at
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture
def credited(org_a, issued):
    """INV-000001 (two lines) and CN-000002 crediting its first line."""
    with scope(organization=org_a):
        first = BillableItem.objects.filter(invoice=issued).order_by("occurred_at").first()
        return invoices.credit_note(issued, [first], "goodwill", Actor("user", "f"), at(50))


def body(response) -> str:
    return b"".join(response.streaming_content).decode()


def test_json_export_nests_lines_under_each_invoice(api_a, org_a, issued, credited):
    response = api_a.get("/api/v1/invoices/export?start=2026-03-01&end=2026-03-31")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    exported = json.loads(body(response))["invoices"]
    assert [(i["number"], i["kind"], i["corrects"], i["total"]) for i in exported] == [
        ("INV-000001", "invoice", "", "285.60"),
        ("CN-000002", "credit_note", "INV-000001", "-142.80"),
    ]
    assert [line["amount"] for line in exported[0]["lines"]] == ["120.00", "120.00"]
    assert exported[1]["lines"][0]["item_id"] == exported[0]["lines"][0]["item_id"]
    assert exported[0]["digest"] == issued.digest
    # Every line adds up to its invoice's subtotal: what an accounting import checks.
    for invoice in exported:
        assert sum(Decimal(line["amount"]) for line in invoice["lines"]) == Decimal(
            invoice["subtotal"]
        )


def test_csv_export_has_a_row_per_line_and_the_range_is_whole_days(api_a, org_a, issued, credited):
    response = api_a.get("/api/v1/invoices/export?start=2026-03-03&end=2026-03-03&output=csv")
    rows = list(csv.DictReader(io.StringIO(body(response))))
    # INV-000001 was issued on 2026-03-03 (at(30)), CN-000002 on 2026-03-04 (at(50)).
    assert [(r["number"], r["position"]) for r in rows] == [
        ("INV-000001", "1"),
        ("INV-000001", "2"),
    ]
    assert rows[0]["client"] == "acme" and rows[0]["currency"] == "EUR"
    nothing = api_a.get("/api/v1/invoices/export?start=2026-04-01&end=2026-04-30&output=csv")
    assert body(nothing).splitlines() == [",".join(invoices.EXPORT_COLUMNS)]


@pytest.mark.parametrize(
    "query,field",
    [
        ("start=2026-03-31&end=2026-03-01", "end"),
        ("start=yesterday&end=2026-03-01", "start"),
        ("end=2026-03-01", "start"),
        ("start=2026-03-01&end=2026-03-02&output=xlsx", "output"),
    ],
)
def test_export_refuses_a_bad_range_with_the_field(api_a, issued, query, field):
    response = api_a.get(f"/api/v1/invoices/export?{query}")
    assert response.status_code == 400
    assert field in {e.get("field") for e in response.json()["errors"]}


def test_portal_export_and_its_errors(client, org_a, finance, issued):
    client.login(username="finance@a.example", password=PASSWORD)
    page = client.get("/o/org-a/billing/invoices/").content.decode()
    assert "Export for accounting" in page
    response = client.get(
        "/o/org-a/billing/invoices/export?start=2026-03-01&end=2026-03-31&output=csv"
    )
    assert 'filename="invoices-org-a-2026-03-01-2026-03-31.csv"' in response["Content-Disposition"]
    assert "INV-000001" in body(response)
    bad = client.get("/o/org-a/billing/invoices/export?start=2026-03-31&end=2026-03-01&output=csv")
    assert bad.status_code == 400
    assert "The end is before the start." in bad.content.decode()


def test_another_tenants_invoices_are_not_exported(api_b, client, outsider, issued):
    exported = json.loads(
        body(api_b.get("/api/v1/invoices/export?start=2026-03-01&end=2026-03-31"))
    )
    assert exported == {"invoices": []}
    client.login(username="outsider@b.example", password=PASSWORD)
    assert (
        client.get(
            "/o/org-a/billing/invoices/export?start=2026-03-01&end=2026-03-31&output=csv"
        ).status_code
        == 404
    )


def test_the_daily_deliverable_export_carries_what_was_billed(org_a, issued, credited):
    """Reporting's daily export (one row per deliverable and day) has the overruns
    invoiced for the deliverable that day, net of that day's credit notes."""
    from reporting.services import exports

    issued_day = issued.finalized_at.astimezone(org_a.zone).date()
    credited_day = credited.finalized_at.astimezone(org_a.zone).date()
    with scope(organization=org_a):
        rows = {day: list(exports.export_rows(org_a, day)) for day in (issued_day, credited_day)}
    [issued_row] = [r for r in rows[issued_day] if r["deliverable_id"] == "LP-1"]
    [credited_row] = [r for r in rows[credited_day] if r["deliverable_id"] == "LP-1"]
    assert (issued_row["billed_amount"], issued_row["billed_currency"]) == (
        Decimal("240.00"),
        "EUR",
    )
    assert (credited_row["billed_amount"], credited_row["billed_currency"]) == (
        Decimal("-120.00"),
        "EUR",
    )
    nothing = [r for r in rows[issued_day] if r["deliverable_id"] != "LP-1"]
    assert all(r["billed_amount"] == 0 and r["billed_currency"] == "" for r in nothing)
