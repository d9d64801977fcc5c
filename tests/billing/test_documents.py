"""Agreements and invoices as PDF, and the organization's own wording on them."""

import io
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django_scopes import scope
from pypdf import PdfReader

from billing.models import BillingSettings, Invoice, ScopeAgreement
from billing.services import agreements, invoices, pdf
from deliveries.models import Client
from owners.services.tickets import Actor
from tests.billing.conftest import at, scope_event
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db
TERMS = "Payment within 30 days of invoice. $client accepts version $version in $currency."


def text_of(content: bytes) -> str:
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


def plain(text: str) -> str:
    """PDF text extraction breaks lines where the layout wraps; compare without breaks."""
    return "".join(text.split())


@pytest.fixture
def terms(org_a):
    with scope(organization=org_a):
        return BillingSettings.objects.create(
            organization=org_a,
            agreement_terms=TERMS,
            invoice_footer="Pay $total $currency to IBAN DE00 1234 quoting $number.",
        )


def test_the_organizations_terms_are_signed_into_each_new_agreement(
    org_a, client_acme, terms, publish
):
    publish(org_a, scope_event())
    with scope(organization=org_a):
        agreement = ScopeAgreement.objects.get(organization=org_a)
        assert agreement.terms == (
            "Payment within 30 days of invoice. Acme accepts version 1 in EUR."
        )
        assert '"terms":"Payment within 30 days' in agreement.canonical
        assert agreements.verify(agreement).valid
        # New wording changes agreements signed from now on, never a signed one.
        terms.agreement_terms = "Different terms."
        terms.save()
        agreement.refresh_from_db()
        assert agreements.verify(agreement).valid
        assert agreement.terms.startswith("Payment within 30 days")
        ScopeAgreement.objects.filter(pk=agreement.pk).update(terms="Payment within 90 days.")
        agreement.refresh_from_db()
        verification = agreements.verify(agreement)
    assert not verification.valid
    assert [d["field"] for d in verification.differences] == ["terms"]


def test_an_agreement_without_terms_signs_no_terms_key(org_a, client_acme, publish):
    publish(org_a, scope_event())
    with scope(organization=org_a):
        agreement = ScopeAgreement.objects.get(organization=org_a)
        assert '"terms"' not in agreement.canonical
        assert agreements.verify(agreement).valid


@pytest.mark.parametrize(
    "field,text,named",
    [
        ("agreement_terms", "Dear $clinet", "$clinet"),
        ("agreement_terms", "${__class__}", "$__class__"),
        ("invoice_footer", "Pay $version now", "$version"),
        ("invoice_footer", "Costs $5", "$5"),
    ],
)
def test_settings_refuse_placeholders_they_cannot_fill(org_a, field, text, named):
    settings_row = BillingSettings(organization=org_a, **{field: text})
    with scope(organization=org_a), pytest.raises(ValidationError) as caught:
        settings_row.full_clean()
    message = caught.value.message_dict[field][0]
    assert named in message
    assert "Unknown placeholder" in message


def test_a_dollar_sign_is_written_twice(org_a):
    with scope(organization=org_a):
        BillingSettings(organization=org_a, invoice_footer="Fees in $$ are $total.").full_clean()


def test_agreement_pdf_from_portal_and_api_says_what_was_signed(
    client, api_a, org_a, member, client_acme, terms, publish
):
    publish(org_a, scope_event())
    with scope(organization=org_a):
        agreement = ScopeAgreement.objects.get(organization=org_a)
    client.login(username="member@a.example", password=PASSWORD)
    response = client.get(f"/o/org-a/billing/agreements/{agreement.pk}/pdf")
    assert response["Content-Type"] == "application/pdf"
    assert 'filename="agreement-acme-v1.pdf"' in response["Content-Disposition"]
    text = plain(text_of(response.content))
    for expected in (
        "Scopeagreementv1:Acme",
        "Verified:unalteredsinceitwassigned.",
        agreement.digest,
        plain(agreement.terms),
        "revisions",
        "120.00",
    ):
        assert expected in text, expected
    api = api_a.get(f"/api/v1/agreements/{agreement.pk}/pdf")
    assert api.status_code == 200
    assert api.content == response.content  # the same document, whoever asks
    with scope(organization=org_a):
        ScopeAgreement.objects.filter(pk=agreement.pk).update(currency="USD")
    tampered = plain(text_of(client.get(f"/o/org-a/billing/agreements/{agreement.pk}/pdf").content))
    assert "DOESNOTVERIFY:currency" in tampered


def test_invoice_pdf_ties_each_line_to_its_agreement_and_events(
    client, api_a, org_a, finance, terms, issued
):
    with scope(organization=org_a):
        lines = invoices.document(issued)["lines"]
    assert issued.footer == "Pay 285.60 EUR to IBAN DE00 1234 quoting INV-000001."
    client.login(username="finance@a.example", password=PASSWORD)
    page = client.get(f"/o/org-a/billing/invoices/{issued.pk}/")
    assert f"/o/org-a/billing/invoices/{issued.pk}/pdf" in page.content.decode()
    response = client.get(f"/o/org-a/billing/invoices/{issued.pk}/pdf")
    assert response["Content-Type"] == "application/pdf"
    assert 'filename="INV-000001.pdf"' in response["Content-Disposition"]
    text = plain(text_of(response.content))
    for expected in (
        "InvoiceINV-000001",
        "Total285.60",
        "Tax(0.1900)45.60",
        issued.digest,
        plain(issued.footer),
        *(line["agreement_digest"] for line in lines),
        *(event_id for line in lines for event_id in line["event_ids"]),
    ):
        assert expected in text, expected
    assert "DRAFT" not in text
    assert api_a.get(f"/api/v1/invoices/{issued.pk}/pdf").content == response.content


def test_a_draft_invoice_pdf_says_it_is_not_issued(org_a, billed):
    _, items = billed
    actor = Actor("user", "finance@a.example")
    from billing.services import approvals

    with scope(organization=org_a):
        for item in items:
            approvals.approve(item, actor)
        draft = invoices.draft_invoice(org_a, items[0].client, at(0), at(24), actor)
        text = plain(text_of(pdf.invoice_pdf(draft)))
    assert "(DRAFT,notissued)" in text
    assert "Notissuedyet" in text
    assert "Workfrom2026-03-0209:00UTCto2026-03-0309:00UTC" in text


def test_without_a_truetype_font_names_outside_latin1_print_as_question_marks(
    settings, org_a, client_acme, publish
):
    settings.MESHLINE_PDF_FONT = "/nonexistent/font.ttf"
    with scope(organization=org_a):
        Client.objects.filter(pk=client_acme.pk).update(name="Acme Łódź 東京")
    publish(org_a, scope_event())
    with scope(organization=org_a):
        agreement = ScopeAgreement.objects.select_related("client").get(organization=org_a)
        text = text_of(pdf.agreement_pdf(agreement))
    assert "Acme ?ód? ??" in text


def test_pdfs_of_another_tenant_are_404(client, api_b, outsider, org_a, issued):
    with scope(organization=org_a):
        agreement = ScopeAgreement.objects.get(organization=org_a)
    assert api_b.get(f"/api/v1/invoices/{issued.pk}/pdf").status_code == 404
    assert api_b.get(f"/api/v1/agreements/{agreement.pk}/pdf").status_code == 404
    client.login(username="outsider@b.example", password=PASSWORD)
    for path in (
        f"/o/org-a/billing/invoices/{issued.pk}/pdf",
        f"/o/org-a/billing/agreements/{agreement.pk}/pdf",
        f"/o/org-b/billing/invoices/{issued.pk}/pdf",
        f"/o/org-b/billing/agreements/{agreement.pk}/pdf",
    ):
        assert client.get(path).status_code == 404, path


def test_rendering_twice_gives_the_same_bytes(org_a, issued):
    with scope(organization=org_a):
        invoice = Invoice.objects.get(pk=issued.pk)
        assert pdf.invoice_pdf(invoice) == pdf.invoice_pdf(invoice)
        assert invoice.total == Decimal("285.60")


def test_rendering_logs_nothing_at_info(org_a, issued, caplog):
    """fpdf2's font subsetting (fontTools) would log ~40 INFO lines per PDF."""
    import logging

    with caplog.at_level(logging.INFO), scope(organization=org_a):
        pdf.invoice_pdf(Invoice.objects.get(pk=issued.pk))
    assert [r.name for r in caplog.records if r.name.startswith("fontTools")] == []
