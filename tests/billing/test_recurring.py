"""Recurring fees of an agreement's rate card become invoice lines, once per month."""

from datetime import datetime
from decimal import Decimal

import pytest
from django_scopes import scope

from billing.models import BillableItem, ItemStatus, ScopeAgreement
from billing.services import BillingError, agreements, invoices, pdf
from billing.services.agreements import AgreementTerms
from owners.services.tickets import Actor
from tests.billing.conftest import RATES, T0, scope_event
from tests.billing.test_documents import text_of
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db
FIN = Actor("user", "finance@a.example")
RETAINER = {"rate": "2500.00", "unit": "month", "recurring": "month"}


def month(org, year, number):
    return datetime(year, number, 1, tzinfo=org.zone)


def fees(org):
    with scope(organization=org):
        return list(
            BillableItem.objects.filter(organization=org, evidence__recurring="month")
            .order_by("occurred_at", "clause")
            .values_list("description", "amount", "status")
        )


def test_a_recurring_rate_is_signed_and_only_month_is_understood():
    assert agreements.clean_rates({"retainer": RETAINER})["retainer"]["recurring"] == "month"
    assert "recurring" not in agreements.clean_rates(RATES)["hours"]
    with pytest.raises(BillingError) as caught:
        agreements.clean_rates({"retainer": {**RETAINER, "recurring": "week"}})
    assert caught.value.code == "invalid_rates"
    assert "recurring is one of month" in str(caught.value)


def test_each_month_in_force_bills_its_fee_once_at_the_rate_of_its_version(
    org_a, client_acme, publish
):
    publish(org_a, scope_event(rates={**RATES, "retainer": RETAINER}))  # from 2026-03-02
    with scope(organization=org_a):
        v1 = ScopeAgreement.objects.get(organization=org_a)
        v2 = agreements.record_agreement(
            org_a,
            client_acme,
            v1.deliverable,
            AgreementTerms(
                limits=v1.limits,
                rates={**v1.rates, "retainer": {**RETAINER, "rate": "3000.00"}},
                currency="EUR",
                valid_from=datetime(2026, 4, 15, tzinfo=org_a.zone),
                accepted_by="cmo@acme.example",
                accepted_at=datetime(2026, 4, 14, tzinfo=org_a.zone),
            ),
        )
        invoice = invoices.draft_invoice(
            org_a, client_acme, month(org_a, 2026, 3), month(org_a, 2026, 6), FIN, at=T0
        )
    # March 1 is before v1 starts; April is v1's, May v2's (v1 ended on April 15).
    assert fees(org_a) == [
        ("LP-1: retainer for 2026-04 (agreement v1)", Decimal("2500.00"), ItemStatus.APPROVED),
        ("LP-1: retainer for 2026-05 (agreement v2)", Decimal("3000.00"), ItemStatus.APPROVED),
    ]
    with scope(organization=org_a):
        assert [line.amount for line in invoice.lines.all()] == [
            Decimal("2500.00"),
            Decimal("3000.00"),
        ]
        assert {line.item.agreement_id for line in invoice.lines.all()} == {v1.pk, v2.pk}
        # Drafting over the same months again adds nothing: those fees are invoiced.
        with pytest.raises(BillingError) as caught:
            invoices.draft_invoice(
                org_a, client_acme, month(org_a, 2026, 4), month(org_a, 2026, 6), FIN, at=T0
            )
        assert caught.value.code == "nothing_to_invoice"
    assert len(fees(org_a)) == 2


def test_a_client_wide_retainer_has_no_deliverable_and_still_shows_everywhere(
    client, api_a, org_a, finance, client_acme
):
    with scope(organization=org_a):
        agreements.record_agreement(
            org_a,
            client_acme,
            None,
            AgreementTerms(
                limits={"pages": 10},
                rates={"retainer": RETAINER},
                currency="EUR",
                valid_from=month(org_a, 2026, 1),
                accepted_by="cmo@acme.example",
                accepted_at=month(org_a, 2026, 1),
            ),
        )
        invoice = invoices.finalize(
            invoices.draft_invoice(
                org_a, client_acme, month(org_a, 2026, 1), month(org_a, 2026, 2), FIN, at=T0
            ),
            FIN,
            at=T0,
        )
        item = BillableItem.objects.get(organization=org_a)
        text = text_of(pdf.invoice_pdf(invoice))
    # The fee's line reads in the PDF, and its evidence is the agreement: no events.
    assert "retainerfor2026-01(agreementv1)" in "".join(text.split())
    assert "eventsnone" in "".join(text.split())
    assert item.deliverable_id is None
    assert (invoice.label, invoice.subtotal) == ("INV-000001", Decimal("2500.00"))
    client.login(username="finance@a.example", password=PASSWORD)
    page = client.get(f"/o/org-a/billing/items/{item.pk}/")
    assert page.status_code == 200
    assert "billed because the signed agreement says so" in page.content.decode()
    body = api_a.get(f"/api/v1/billable-items/{item.pk}").json()
    assert (body["deliverable"], body["clause"], body["status"]) == (None, "retainer", "invoiced")
