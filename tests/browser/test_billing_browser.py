"""Finance works the demo's billing in a real browser: approve an overrun, issue the
invoice, download its PDF, find it in the client's trail (issue #11's done-when)."""

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django_scopes import scopes_disabled
from pypdf import PdfReader

from billing.models import BillableItem, Dispute, DisputeStatus, Invoice, ItemStatus
from devtools.demo import DEMO_PASSWORD, DEMO_SLUG

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_finance_approves_an_overrun_issues_the_invoice_and_downloads_its_pdf(
    page, live_server, tmp_path
):
    call_command("seed_demo", stdout=io.StringIO())
    with scopes_disabled():
        item = (
            BillableItem.objects.filter(
                organization__slug=DEMO_SLUG, status=ItemStatus.PROPOSED, amount__lte=1000
            )
            .select_related("client")
            .order_by("occurred_at", "id")
            .first()
        )
        event_ids = [str(e.pk) for e in item.events.all()]
        # The demo also brings a dispute for finance to decide.
        assert Dispute.objects.filter(
            organization__slug=DEMO_SLUG, status=DisputeStatus.OPEN
        ).exists()
    base = f"{live_server.url}/o/{DEMO_SLUG}"

    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email or username").fill("finance@northwind.example")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(rf"/o/{DEMO_SLUG}/$"))

    page.goto(f"{base}/billing/items/{item.pk}/")
    page.get_by_role("button", name="Approve").click()
    page.get_by_text("Approved:").first.wait_for()

    page.goto(f"{base}/billing/invoices/")
    page.get_by_label("Client").select_option(item.client.client_id)
    page.get_by_label("Period start").fill(
        (item.occurred_at - timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    )
    page.get_by_label("Period end").fill(
        (item.occurred_at + timedelta(days=1)).strftime("%Y-%m-%d %H:%M")
    )
    page.get_by_role("button", name="Draft invoice").click()
    page.wait_for_url(re.compile(r"/billing/invoices/[0-9a-f-]{36}/$"))
    page.get_by_role("button", name="Finalise and issue").click()
    issued = page.get_by_text(re.compile(r"Issued INV-\d{6}\.")).inner_text()
    number = re.search(r"INV-\d{6}", issued)[0]

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download PDF").click()
    download = download_info.value
    assert download.suggested_filename == f"{number}.pdf"
    path = tmp_path / download.suggested_filename
    download.save_as(path)
    text = "".join("".join(p.extract_text().split()) for p in PdfReader(path).pages)
    assert f"Invoice{number}" in text
    for event_id in event_ids:  # the line ties back to the exact events
        assert event_id in text

    with scopes_disabled():
        invoice = Invoice.objects.get(organization__slug=DEMO_SLUG, number=int(number[4:]))
        item.refresh_from_db()
    assert item.status == ItemStatus.INVOICED and item.invoice_id == invoice.pk
    page.goto(f"{base}/clients/{item.client.client_id}/")
    trail = page.locator(".trail").inner_text()
    assert "invoice.generated" in trail and number in trail
    assert invoice.digest[:17] in trail
