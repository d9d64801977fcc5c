"""Disputes of invoiced lines: recorded, decided (upheld -> credit note), evidenced."""

import hashlib
import io
import json
import zipfile

import pytest
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from django_scopes import scope

from billing.models import BillableItem, Dispute, DisputeStatus, InvoiceKind
from billing.services import BillingError, disputes
from deliveries.models import Event
from owners.services.tickets import Actor
from tests.billing.conftest import at
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db
AM = Actor("user", "member@a.example")
FIN = Actor("user", "finance@a.example")


def invoiced_items(org):
    with scope(organization=org):
        return list(
            BillableItem.objects.filter(organization=org, invoice__isnull=False).order_by(
                "occurred_at"
            )
        )


def trail(org, event_type):
    with scope(organization=org):
        return list(Event.objects.filter(organization=org, event_type=event_type))


def test_an_upheld_dispute_credits_the_line_once_and_is_in_the_trail(org_a, issued):
    first, second = invoiced_items(org_a)
    with scope(organization=org_a):
        dispute = disputes.open_dispute(first, AM, "We never asked for this revision.", at(40))
        with pytest.raises(BillingError) as twice:
            disputes.open_dispute(first, AM, "again", at(41))
        assert twice.value.code == "dispute_open"
        decided = disputes.decide(dispute, FIN, "upheld", "The brief covered it.", at(48))
        with pytest.raises(BillingError) as again:
            disputes.decide(decided, FIN, "rejected", "changed my mind", at(49))
        assert again.value.code == "already_decided"
        note = decided.credit_note
        assert (note.kind, note.label, note.total) == (
            InvoiceKind.CREDIT_NOTE,
            "CN-000002",
            -first.amount - (first.amount * issued.tax_rate).quantize(first.amount),
        )
        assert list(note.lines.values_list("item_id", flat=True)) == [first.pk]
        # Credited: it cannot be disputed again; the other line still can.
        with pytest.raises(BillingError) as credited:
            disputes.open_dispute(first, AM, "and again", at(50))
        assert credited.value.code == "already_credited"
        disputes.open_dispute(second, AM, "Also this one.", at(50))
    (opened, _) = sorted(trail(org_a, "dispute.opened"), key=lambda e: e.occurred_at)
    (resolved,) = trail(org_a, "dispute.resolved")
    assert opened.payload["reason"] == "We never asked for this revision."
    assert opened.occurred_at == at(40)  # when it happened, not when the code ran
    assert (resolved.payload["outcome"], resolved.payload["credit_note"]) == ("upheld", "CN-000002")
    assert resolved.client_id == issued.client_id
    assert len(trail(org_a, "credit_note.issued")) == 1


def test_a_rejected_dispute_leaves_the_invoice_standing(org_a, issued):
    first, _ = invoiced_items(org_a)
    with scope(organization=org_a):
        dispute = disputes.open_dispute(first, AM, "Too expensive.", at(40))
        with pytest.raises(BillingError) as no_note:
            disputes.decide(dispute, FIN, "rejected", "  ", at(41))
        assert no_note.value.field == "note"
        with pytest.raises(BillingError) as bad_outcome:
            disputes.decide(dispute, FIN, "maybe", "hm", at(41))
        assert bad_outcome.value.field == "outcome"
        decided = disputes.decide(dispute, FIN, "rejected", "Rate card v1, clause revisions.")
        assert decided.status == DisputeStatus.REJECTED and decided.credit_note is None
    assert trail(org_a, "credit_note.issued") == []


def test_only_a_line_of_an_issued_invoice_can_be_disputed(org_a, billed):
    _, (first, _second) = billed
    with scope(organization=org_a), pytest.raises(BillingError) as caught:
        disputes.open_dispute(first, AM, "not invoiced yet", at(40))
    assert caught.value.code == "not_invoiced"
    with scope(organization=org_a):
        assert not Dispute.objects.exists()


def test_the_evidence_pack_proves_the_line_offline(org_a, issued):
    first, _ = invoiced_items(org_a)
    with scope(organization=org_a):
        dispute = disputes.open_dispute(first, AM, "Prove it.", at(40))
        bundle = disputes.evidence_bundle(Dispute.objects.get(pk=dispute.pk))
        event_digests = {str(e.pk): e.content_digest for e in first.events.all()}
    archive = zipfile.ZipFile(io.BytesIO(bundle))
    files = {name.removeprefix("evidence/"): archive.read(name) for name in archive.namelist()}
    manifest = json.loads(files.pop("manifest.json"))
    assert manifest == {name: hashlib.sha256(body).hexdigest() for name, body in files.items()}
    # The agreement verifies with nothing but the bundle.
    key = load_pem_public_key(files["agreement/public_key.pem"])
    import base64

    key.verify(
        base64.b64decode(files["agreement/signature.b64"]), files["agreement/canonical.json"]
    )
    assert json.loads(files["agreement/verification.json"])["valid"] is True
    events = json.loads(files["events.json"])
    assert {e["id"]: e["content_digest"] for e in events} == event_digests
    approvals = json.loads(files["approvals.json"])
    assert approvals["approver"] == "finance@a.example"
    assert [e["event_type"] for e in approvals["trail"]][:2] == [
        "billing.item_proposed",
        "billing.item_approved",
    ]
    stored, computed = (
        line.split()[1] for line in files["invoice/digest.txt"].decode().splitlines()[:2]
    )
    assert stored == computed == issued.digest
    assert files["invoice/invoice.pdf"].startswith(b"%PDF")
    assert json.loads(files["dispute.json"])["reason"] == "Prove it."


def test_portal_dispute_from_the_line_to_the_credit_note(
    client, org_a, member, finance, viewer, issued
):
    first, _ = invoiced_items(org_a)
    client.login(username="viewer@a.example", password=PASSWORD)
    assert client.post(f"/o/org-a/billing/items/{first.pk}/dispute", {}).status_code == 403
    client.login(username="member@a.example", password=PASSWORD)
    page = client.get(f"/o/org-a/billing/items/{first.pk}/").content.decode()
    assert "The client disputes this line" in page
    empty = client.post(f"/o/org-a/billing/items/{first.pk}/dispute", {"dispute-reason": ""})
    assert empty.status_code == 400
    assert "This field is required" in empty.content.decode()
    response = client.post(
        f"/o/org-a/billing/items/{first.pk}/dispute", {"dispute-reason": "Not ours."}
    )
    with scope(organization=org_a):
        dispute = Dispute.objects.get()
    assert response.url == f"/o/org-a/billing/disputes/{dispute.pk}/"
    assert "1 open dispute</a> waiting" in client.get("/o/org-a/billing/").content.decode()
    assert "Not ours." in client.get("/o/org-a/billing/disputes/").content.decode()
    # Account managers record disputes; finance decides them.
    assert (
        client.post(
            f"/o/org-a/billing/disputes/{dispute.pk}/decide", {"outcome": "upheld", "note": "x"}
        ).status_code
        == 403
    )
    client.login(username="finance@a.example", password=PASSWORD)
    bad = client.post(f"/o/org-a/billing/disputes/{dispute.pk}/decide", {"outcome": "upheld"})
    assert bad.status_code == 400
    detail = client.get(f"/o/org-a/billing/disputes/{dispute.pk}/").content.decode()
    assert "verifies (unaltered since signed)" in detail
    client.post(
        f"/o/org-a/billing/disputes/{dispute.pk}/decide",
        {"outcome": "upheld", "note": "Brief covered it."},
    )
    with scope(organization=org_a):
        dispute.refresh_from_db()
    assert dispute.status == DisputeStatus.UPHELD
    assert dispute.credit_note.label in client.get("/o/org-a/billing/disputes/").content.decode()
    zipped = client.get(f"/o/org-a/billing/disputes/{dispute.pk}/evidence.zip")
    assert zipped["Content-Type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(zipped.content)).testzip() is None


def test_another_tenants_disputes_are_404(client, org_a, outsider, issued):
    first, _ = invoiced_items(org_a)
    with scope(organization=org_a):
        dispute = disputes.open_dispute(first, AM, "Not ours.", at(40))
    client.login(username="outsider@b.example", password=PASSWORD)
    for slug in ("org-a", "org-b"):
        for path in (
            f"/o/{slug}/billing/disputes/{dispute.pk}/",
            f"/o/{slug}/billing/disputes/{dispute.pk}/evidence.zip",
        ):
            assert client.get(path).status_code == 404, path
        decide = client.post(
            f"/o/{slug}/billing/disputes/{dispute.pk}/decide", {"outcome": "upheld", "note": "x"}
        )
        assert decide.status_code == 404
        assert (
            client.post(
                f"/o/{slug}/billing/items/{first.pk}/dispute", {"dispute-reason": "x"}
            ).status_code
            == 404
        )
    assert "Not ours." not in client.get("/o/org-b/billing/disputes/").content.decode()
    with scope(organization=org_a):
        assert Dispute.objects.get().status == DisputeStatus.OPEN


def test_api_records_decides_and_evidences_a_dispute(api_a, org_a, make_key, issued):
    from meshline.models import ApiScope

    first, _second = invoiced_items(org_a)
    empty = api_a.post(f"/api/v1/billable-items/{first.pk}/dispute", {}, format="json")
    assert empty.status_code == 400
    assert empty.json()["errors"][0]["field"] == "reason"
    created = api_a.post(
        f"/api/v1/billable-items/{first.pk}/dispute", {"reason": "Not ours."}, format="json"
    )
    assert created.status_code == 201
    dispute = created.json()
    assert (dispute["status"], dispute["invoice_number"]) == ("open", "INV-000001")
    again = api_a.post(
        f"/api/v1/billable-items/{first.pk}/dispute", {"reason": "Again."}, format="json"
    )
    assert (again.status_code, again.json()["errors"][0]["code"]) == (409, "dispute_open")
    _key, reader = make_key(org_a, scopes=[ApiScope.BILLING_READ])
    assert reader.get("/api/v1/disputes?status=open").json()["results"][0]["id"] == dispute["id"]
    forbidden = reader.post(
        f"/api/v1/disputes/{dispute['id']}/decide", {"outcome": "upheld", "note": "x"}
    )
    assert forbidden.status_code == 403
    bad = api_a.post(
        f"/api/v1/disputes/{dispute['id']}/decide", {"outcome": "maybe", "note": "x"}, format="json"
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "outcome"
    decided = api_a.post(
        f"/api/v1/disputes/{dispute['id']}/decide",
        {"outcome": "upheld", "note": "Fair."},
        format="json",
    ).json()
    assert (decided["status"], decided["credit_note_number"]) == ("upheld", "CN-000002")
    twice = api_a.post(
        f"/api/v1/disputes/{dispute['id']}/decide",
        {"outcome": "rejected", "note": "No."},
        format="json",
    )
    assert twice.status_code == 409
    evidence = api_a.get(f"/api/v1/disputes/{dispute['id']}/evidence")
    assert evidence["Content-Type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(evidence.content)).namelist()
    assert "evidence/agreement/canonical.json" in names and "evidence/manifest.json" in names
    with scope(organization=org_a):
        assert Dispute.objects.count() == 1  # the refused second one stored nothing


def test_api_disputes_of_another_tenant_are_404(api_a, api_b, org_a, issued):
    first, _ = invoiced_items(org_a)
    dispute = api_a.post(
        f"/api/v1/billable-items/{first.pk}/dispute", {"reason": "Not ours."}, format="json"
    ).json()
    for path in (f"/api/v1/disputes/{dispute['id']}", f"/api/v1/disputes/{dispute['id']}/evidence"):
        assert api_b.get(path).status_code == 404, path
    assert api_b.get("/api/v1/disputes").json()["results"] == []
    decide = api_b.post(
        f"/api/v1/disputes/{dispute['id']}/decide",
        {"outcome": "upheld", "note": "x"},
        format="json",
    )
    assert decide.status_code == 404
    steal = api_b.post(f"/api/v1/billable-items/{first.pk}/dispute", {"reason": "x"}, format="json")
    assert steal.status_code == 404
    with scope(organization=org_a):
        assert Dispute.objects.get().status == DisputeStatus.OPEN
