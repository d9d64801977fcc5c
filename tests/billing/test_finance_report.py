"""The quarterly finance report and SLA scorecard, per client."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django_scopes import scope

from billing.models import BillableItem
from billing.services import BillingError, disputes
from billing.services.finance_report import Quarter, finance_report, to_csv
from deliveries.models import Client, Deliverable
from owners.models import Ticket, TicketSource, TicketStatus
from owners.services.tickets import Actor
from tests.billing.conftest import T0, at
from tests.conftest import PASSWORD
from tests.owners.factories import make_role

pytestmark = pytest.mark.django_db
Q1 = Quarter(2026, 1)
NOW = T0 + timedelta(days=20)  # still in Q1: 2026-03-22


def ticket(org, deliverable, role, key, *, opened, due, resolved=None):
    return Ticket.objects.create(
        organization=org,
        source=TicketSource.MANUAL,
        source_key=key,
        title=key,
        deliverable=deliverable,
        owner_role=role,
        opened_at=opened,
        resolve_due_at=due,
        resolved_at=resolved,
        status=TicketStatus.RESOLVED if resolved else TicketStatus.OPEN,
    )


@pytest.fixture
def quarter_of_work(org_a, issued):
    """Acme: INV-000001 (2 lines, 240.00 EUR), one line disputed and upheld (CN-000002),
    three tickets: one resolved in time, one late, one open and overdue."""
    with scope(organization=org_a):
        first = BillableItem.objects.filter(organization=org_a).order_by("occurred_at").first()
        dispute = disputes.open_dispute(first, Actor("user", "am@a.example"), "no", at(40))
        disputes.decide(dispute, Actor("user", "fin@a.example"), "upheld", "fair", at(44))
        page = Deliverable.objects.get(organization=org_a, deliverable_id="LP-1")
        role = make_role(org_a)
        ticket(org_a, page, role, "t1", opened=at(0), due=at(10), resolved=at(4))
        ticket(org_a, page, role, "t2", opened=at(0), due=at(10), resolved=at(20))
        ticket(org_a, page, role, "t3", opened=at(5), due=at(9))
        # Another quarter's ticket counts nowhere here.
        ticket(
            org_a, page, role, "old", opened=at(-24 * 70), due=at(-24 * 69), resolved=at(-24 * 69)
        )
        # A client with no activity is not listed.
        Client.objects.create(organization=org_a, client_id="quiet", name="Quiet")
    return issued


def test_the_report_sums_a_clients_quarter(org_a, quarter_of_work):
    with scope(organization=org_a):
        (acme,) = finance_report(org_a, Q1, now=NOW)
    assert acme.client_id == "acme"
    assert acme.money() == [
        {
            "currency": "EUR",
            "billed": Decimal("240.00"),
            "credited": Decimal("142.80"),
            "pending": Decimal("0.00"),
        }
    ]
    assert (acme.billed_items, acme.credit_notes) == (2, 1)
    assert acme.median_approval_hours == 23.5  # proposed at +2 h and +3 h, approved at +26 h
    assert (acme.disputes, acme.upheld, acme.dispute_rate) == (1, 1, 50.0)
    assert (acme.tickets_opened, acme.tickets_resolved, acme.within_sla) == (3, 2, 1)
    assert acme.sla_percent == 50.0
    assert acme.mttr_seconds == 12 * 3600  # 4 h and 20 h
    assert acme.overdue_now == 1


def test_another_quarter_is_empty_and_the_quarter_is_the_organizations(org_a, quarter_of_work):
    with scope(organization=org_a):
        assert [r.client_id for r in finance_report(org_a, Quarter(2026, 2), now=NOW)] == [
            "acme"  # only the ticket still overdue now
        ]
        row = finance_report(org_a, Quarter(2026, 2), now=NOW)[0]
        assert (row.billed_items, row.tickets_opened, row.overdue_now) == (0, 0, 1)
    start, end = Q1.bounds(org_a.zone)
    assert (start.month, end.month, start.tzinfo) == (1, 4, org_a.zone)


@pytest.mark.parametrize("text", ["2026-Q5", "2026Q1", "26-Q1", "", "9999-Q1"])
def test_bad_quarters_are_refused(text):
    with pytest.raises(BillingError) as caught:
        Quarter.parse(text)
    assert caught.value.field == "quarter"


def test_csv_has_a_line_per_client_and_currency(org_a, quarter_of_work):
    with scope(organization=org_a):
        rows = finance_report(org_a, Q1, now=NOW)
    rows[0].billed["USD"] += Decimal("10.00")  # an amendment billed in another currency
    lines = list(csv.DictReader(io.StringIO(to_csv(Q1, rows))))
    assert [(r["currency"], r["billed_overruns"], r["tickets_opened"]) for r in lines] == [
        ("EUR", "240.00", "3"),
        ("USD", "10.00", ""),  # counts only once per client
    ]
    assert lines[0]["mttr_hours"] == "12.0"
    assert lines[0]["resolved_within_sla_percent"] == "50.0"


def test_portal_report_and_csv(client, org_a, member, quarter_of_work, outsider):
    client.login(username="member@a.example", password=PASSWORD)
    page = client.get("/o/org-a/billing/report?quarter=2026-Q1")
    assert page.status_code == 200
    body = page.content.decode()
    assert "240.00 EUR" in body and "142.80 EUR" in body and "SLA scorecard" in body
    assert "Quiet" not in body
    bad = client.get("/o/org-a/billing/report?quarter=2026-Q9")
    assert bad.status_code == 400
    assert "Give a quarter as YYYY-Qn" in bad.content.decode()
    download = client.get("/o/org-a/billing/report.csv?quarter=2026-Q1")
    assert download["Content-Type"].startswith("text/csv")
    assert 'filename="finance-org-a-2026-Q1.csv"' in download["Content-Disposition"]
    assert "acme,Acme,EUR,240.00" in download.content.decode()
    assert client.get("/o/org-a/billing/report.csv?quarter=nope").status_code == 400
    # Another organization's people see nothing of it, from either address.
    client.login(username="outsider@b.example", password=PASSWORD)
    assert client.get("/o/org-a/billing/report?quarter=2026-Q1").status_code == 404
    assert client.get("/o/org-a/billing/report.csv?quarter=2026-Q1").status_code == 404
    own = client.get("/o/org-b/billing/report.csv?quarter=2026-Q1").content.decode()
    assert "acme" not in own


def test_the_report_runs_a_fixed_number_of_queries(org_a, quarter_of_work):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with scope(organization=org_a), CaptureQueriesContext(connection) as one:
        finance_report(org_a, Q1, now=NOW)
    with scope(organization=org_a):
        role = make_role(org_a, slug="other", name="Other")
        for n in range(5):
            other = Client.objects.create(organization=org_a, client_id=f"c{n}", name=f"C{n}")
            page = Deliverable.objects.create(
                organization=org_a, client=other, deliverable_id=f"P{n}", type="landing_page"
            )
            ticket(org_a, page, role, f"c{n}", opened=at(1), due=at(2), resolved=at(3))
        assert len(finance_report(org_a, Q1, now=NOW)) == 6
        with CaptureQueriesContext(connection) as more:
            finance_report(org_a, Q1, now=NOW)
    assert len(more) == len(one)
