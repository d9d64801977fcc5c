"""Billing API and portal: scopes, roles, 400/409 bodies, and 404 for another tenant."""

import pytest
from django.utils.html import escape
from django_scopes import scope

from billing.models import BillableItem, ItemStatus, ScopeAgreement
from billing.services import invoices
from meshline.models import ApiScope
from owners.services.tickets import Actor
from tests.billing.conftest import at, changes, scope_event
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


def test_agreement_api_lists_verifies_and_reports_tampering(api_a, billed):
    agreement, _ = billed
    listing = api_a.get("/api/v1/agreements").json()
    assert [a["id"] for a in listing["results"]] == [str(agreement.pk)]
    assert listing["results"][0]["public_key_pem"].startswith("-----BEGIN PUBLIC KEY-----")
    assert api_a.get(f"/api/v1/agreements/{agreement.pk}/verify").json()["valid"] is True
    with scope(organization=agreement.organization):
        ScopeAgreement.objects.filter(pk=agreement.pk).update(currency="USD")
    body = api_a.get(f"/api/v1/agreements/{agreement.pk}/verify").json()
    assert body["valid"] is False
    assert body["differences"] == [{"field": "currency", "signed": "EUR", "current": "USD"}]


def test_items_api_approve_and_reject(api_a, billed):
    _, (first, second) = billed
    response = api_a.post(f"/api/v1/billable-items/{first.pk}/approve")
    assert response.status_code == 200
    assert response.json()["status"] == ItemStatus.APPROVED
    again = api_a.post(f"/api/v1/billable-items/{first.pk}/approve")
    assert again.status_code == 409
    assert again.json()["errors"][0]["code"] == "already_decided"
    bad = api_a.post(f"/api/v1/billable-items/{second.pk}/reject", {}, format="json")
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "reason"
    ok = api_a.post(f"/api/v1/billable-items/{second.pk}/reject", {"reason": "no"}, format="json")
    assert ok.json()["rejection_reason"] == "no"


def test_items_api_needs_the_billing_write_scope(org_a, make_key, billed):
    _, (first, _second) = billed
    _key, reader = make_key(org_a, scopes=[ApiScope.BILLING_READ])
    assert reader.get(f"/api/v1/billable-items/{first.pk}").status_code == 200
    response = reader.post(f"/api/v1/billable-items/{first.pk}/approve")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "missing_scope"


def test_another_tenants_billing_rows_are_404_everywhere(
    org_a, owner, api_b, outsider, client, billed
):
    agreement, (first, _second) = billed
    for path in (
        f"/api/v1/agreements/{agreement.pk}",
        f"/api/v1/agreements/{agreement.pk}/verify",
        f"/api/v1/billable-items/{first.pk}",
    ):
        assert api_b.get(path).status_code == 404, path
    assert api_b.post(f"/api/v1/billable-items/{first.pk}/approve").status_code == 404
    assert api_b.get("/api/v1/billable-items").json()["results"] == []
    client.login(username="outsider@b.example", password=PASSWORD)
    for path in (
        "/o/org-a/billing/",
        f"/o/org-a/billing/items/{first.pk}/",
        f"/o/org-a/billing/agreements/{agreement.pk}/",
        "/o/org-a/billing/invoices/",
    ):
        assert client.get(path).status_code == 404, path
    # Organization B's own portal does not find A's rows either.
    assert client.get(f"/o/org-b/billing/items/{first.pk}/").status_code == 404
    assert client.get(f"/o/org-b/billing/agreements/{agreement.pk}/").status_code == 404


def test_invoice_api_and_other_tenant(api_a, api_b, org_a, billed):
    _, items = billed
    actor = Actor("user", "x")
    from billing.services import approvals

    with scope(organization=org_a):
        for item in items:
            approvals.approve(item, actor)
        invoice = invoices.finalize(
            invoices.draft_invoice(org_a, items[0].client, at(0), at(24), actor), actor
        )
    body = api_a.get(f"/api/v1/invoices/{invoice.pk}").json()
    assert (body["number"], body["total"], len(body["lines"])) == ("INV-000001", "285.60", 2)
    csv = api_a.get(f"/api/v1/invoices/{invoice.pk}/csv")
    assert csv["Content-Type"].startswith("text/csv")
    assert api_b.get(f"/api/v1/invoices/{invoice.pk}").status_code == 404
    assert api_b.get(f"/api/v1/invoices/{invoice.pk}/csv").status_code == 404


def test_finance_approves_in_the_portal_and_account_manager_cannot(
    client, org_a, member, finance, billed
):
    _, (first, _second) = billed
    client.login(username="member@a.example", password=PASSWORD)
    assert client.get("/o/org-a/billing/").status_code == 200  # sees what is pending
    assert client.post(f"/o/org-a/billing/items/{first.pk}/approve").status_code == 403
    client.login(username="finance@a.example", password=PASSWORD)
    page = client.get("/o/org-a/billing/")
    assert escape(first.description) in page.content.decode()
    response = client.post(f"/o/org-a/billing/items/{first.pk}/approve")
    assert response.status_code == 302
    with scope(organization=org_a):
        assert BillableItem.objects.get(pk=first.pk).status == ItemStatus.APPROVED
    bad = client.post(
        f"/o/org-a/billing/items/{_second.pk}/adjust", {"quantity": "-2", "reason": "x"}
    )
    assert bad.status_code == 400
    assert client.get(f"/o/org-a/billing/items/{first.pk}/").status_code == 200


def test_portal_invoice_form_reports_errors(client, org_a, finance, billed):
    client.login(username="finance@a.example", password=PASSWORD)
    response = client.post(
        "/o/org-a/billing/invoices/new",
        {"client": "acme", "period_start": "2026-03-02 00:00", "period_end": "2026-03-03 00:00"},
    )
    assert response.status_code == 400
    assert "No approved, uninvoiced items" in response.content.decode()


def test_queue_query_count_does_not_grow_with_rows(
    client, org_a, finance, publish, client_acme, django_assert_max_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client.login(username="finance@a.example", password=PASSWORD)
    publish(org_a, scope_event(), *changes(2))
    with CaptureQueriesContext(connection) as few:
        client.get("/o/org-a/billing/")
    publish(org_a, *changes(10, start=20))
    with CaptureQueriesContext(connection) as many:
        client.get("/o/org-a/billing/")
    assert len(many) == len(few)
