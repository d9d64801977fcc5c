"""Overruns, approvals and invoices through the real pipeline."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope
from hypothesis import given, settings
from hypothesis import strategies as st

from billing.models import (
    BillableItem,
    BillingSettings,
    BillingTicketLink,
    ImmutableError,
    Invoice,
    ItemStatus,
)
from billing.services import BillingError, approvals, invoices
from billing.services.money import totals
from deliveries.models import Event
from deliveries.services import ingest_events
from deliveries.services.processing import process_batch, process_event
from owners.models import Ticket
from owners.services.tickets import Actor
from tests.billing.conftest import at, changes, scope_event
from tests.gates.conftest import event
from tests.owners.factories import make_calendar, make_role, make_rule

pytestmark = pytest.mark.django_db
ANNA, BEN = Actor("user", "anna@a.example"), Actor("user", "ben@a.example")


def items(org):
    with scope(organization=org):
        return list(BillableItem.objects.filter(organization=org).order_by("occurred_at", "id"))


def test_revisions_beyond_the_limit_are_proposed_once_however_often_replayed(
    org_a, client_acme, publish
):
    bodies = [scope_event(), *changes(3)]
    results = publish(org_a, *bodies)
    proposed = items(org_a)
    assert [(i.clause, i.quantity, i.amount) for i in proposed] == [
        ("revisions", Decimal("1.00"), Decimal("120.00")),
        ("revisions", Decimal("1.00"), Decimal("120.00")),
    ]
    assert proposed[0].status == ItemStatus.PROPOSED
    with scope(organization=org_a):  # the second change tipped over the limit of one
        assert [str(e.pk) for e in proposed[0].events.all()] == [results[2].event_id]
        assert [str(e.pk) for e in proposed[1].events.all()] == [results[3].event_id]
    # Replays: the same bodies again (duplicates), and processing forced to run again.
    publish(org_a, *bodies)
    with scope(organization=org_a):
        from deliveries.models import EventProcessing

        EventProcessing.objects.filter(organization=org_a).update(status="pending")
        for r in results:
            process_event(r.event_id)
    assert len(items(org_a)) == 2


def test_hours_are_billed_by_the_excess_only(org_a, client_acme, publish):
    publish(
        org_a,
        scope_event(),
        event("time.logged", "LP-1", {"hours": 6}, at=at(1)),
        event("time.logged", "LP-1", {"hours": 6.5}, at=at(2)),
        event("time.logged", "LP-1", {"hours": 1}, at=at(3)),
    )
    assert [(i.quantity, i.rate, i.amount) for i in items(org_a)] == [
        (Decimal("2.50"), Decimal("95.50"), Decimal("238.75")),
        (Decimal("1.00"), Decimal("95.50"), Decimal("95.50")),
    ]


def test_late_event_counts_against_the_agreement_in_force_when_it_happened(
    org_a, client_acme, publish
):
    # v1 (1 revision) from hour 0, v2 (5 revisions) from hour 10. Two changes happened
    # under v1 but arrive after v2 was signed: the second is billable under v1.
    publish(org_a, scope_event(hours=0), scope_event(hours=10, limits={"revisions": 5}))
    publish(org_a, *changes(2, start=1))
    publish(org_a, *changes(2, start=11))
    proposed = items(org_a)
    assert len(proposed) == 1
    assert proposed[0].agreement.version == 1
    assert proposed[0].occurred_at == at(2)


def test_oversize_asset_is_billable(org_a, client_acme, publish):
    publish(
        org_a,
        scope_event(),
        event("asset.uploaded", "LP-1", {"asset_id": "a", "size_bytes": 7_000_000}, at=at(1)),
        event("asset.uploaded", "LP-1", {"asset_id": "b", "size_bytes": 1_000_000}, at=at(2)),
    )
    assert [(i.clause, i.amount) for i in items(org_a)] == [("asset_size_mb", Decimal("40.00"))]


def test_work_without_an_agreement_opens_an_exception_ticket(org_a, client_acme, owner, publish):
    with scope(organization=org_a):
        make_calendar(org_a)
        make_rule(org_a, make_role(org_a, people=[owner]))
        BillingSettings.objects.create(organization=org_a)
    results = publish(org_a, *changes(2, ref="LP-9"))
    with scope(organization=org_a):
        ticket = Ticket.objects.get(organization=org_a, source="billing")
        assert ticket.assignee == owner
        assert ticket.opened_at == at(1)
        assert str(ticket.billing_link.event_id) == results[0].event_id
        assert BillingTicketLink.objects.filter(organization=org_a).count() == 1
        assert ticket.opened_by() == {
            "kind": "billing_exception",
            "event_id": results[0].event_id,
            "deliverable_id": "LP-9",
        }
    assert items(org_a) == []


def test_unscoped_work_on_many_deliverables_opens_their_tickets_together(
    org_a, client_acme, owner, publish
):
    with scope(organization=org_a):
        make_calendar(org_a)
        make_rule(org_a, make_role(org_a, people=[owner]))
        BillingSettings.objects.create(organization=org_a)

    def statements(refs, start) -> tuple[list, int]:
        """Store the changes, then count the statements of processing them (one batch)."""
        bodies = [e for n, ref in enumerate(refs) for e in changes(2, start=start + n, ref=ref)]
        with scope(organization=org_a):
            results = ingest_events(org_a, bodies)  # its after-commit dispatch never runs
            with CaptureQueriesContext(connection) as queries:
                done = process_batch(org_a, [r.event_id for r in results])
        assert done.processed == len(bodies)
        return results, len(queries.captured_queries)

    (few, few_statements) = statements(["LP-1", "LP-2"], 1)
    (many, many_statements) = statements([f"LP-{n}" for n in range(3, 9)], 10)

    assert few_statements == many_statements
    with scope(organization=org_a):
        tickets = {
            t.deliverable.deliverable_id: t
            for t in Ticket.objects.filter(organization=org_a, source="billing").select_related(
                "deliverable", "billing_link"
            )
        }
    assert sorted(tickets) == sorted(f"LP-{n}" for n in range(1, 9))
    # Each opened at its deliverable's first unscoped work, linked to that event.
    firsts = [r.event_id for r in few[::2] + many[::2]]
    assert sorted(str(t.billing_link.event_id) for t in tickets.values()) == sorted(firsts)
    assert tickets["LP-2"].opened_at == at(2) and tickets["LP-8"].opened_at == at(15)
    assert {t.assignee for t in tickets.values()} == {owner}


def test_without_billing_settings_unscoped_work_is_left_alone(org_a, client_acme, publish):
    publish(org_a, *changes(2))
    with scope(organization=org_a):
        assert not Ticket.objects.filter(organization=org_a).exists()


@pytest.fixture
def two_items(org_a, client_acme, publish):
    publish(org_a, scope_event(), *changes(3))
    return items(org_a)


def test_approve_reject_adjust_are_in_the_trail(org_a, two_items):
    first, second = two_items
    with scope(organization=org_a):
        approvals.approve(first, ANNA, at=at(20))
        with pytest.raises(BillingError, match="why"):
            approvals.reject(second, ANNA, "  ")
        approvals.adjust(second, ANNA, quantity="0.5", reason="goodwill", at=at(21))
        second = approvals.reject(second, BEN, "not agreed with client", at=at(22))
        assert second.status == ItemStatus.REJECTED
        assert second.amount == Decimal("60.00")
        assert second.proposed_quantity == Decimal("1.00")
        steps = list(
            Event.objects.filter(organization=org_a, event_type__startswith="billing.item_")
            .exclude(event_type="billing.item_proposed")
            .order_by("occurred_at")
            .values_list("event_type", "actor_id")
        )
        assert steps == [
            ("billing.item_approved", "anna@a.example"),
            ("billing.item_adjusted", "anna@a.example"),
            ("billing.item_rejected", "ben@a.example"),
        ]
        with pytest.raises(BillingError) as err:
            approvals.approve(second, ANNA)
        assert err.value.code == "already_decided"


@pytest.mark.parametrize("quantity", ["-1", "1e9", "abc", "0.001"])
def test_adjust_refuses_bad_quantities(org_a, two_items, quantity):
    with scope(organization=org_a), pytest.raises(BillingError):
        approvals.adjust(two_items[0], ANNA, quantity=quantity, reason="x")
    with scope(organization=org_a):
        assert BillableItem.objects.get(pk=two_items[0].pk).adjustments == []


def test_above_threshold_needs_a_second_different_approver(org_a, two_items):
    with scope(organization=org_a):
        BillingSettings.objects.create(organization=org_a, second_approval_above=Decimal("100"))
        item = approvals.approve(two_items[0], ANNA)
        assert item.status == ItemStatus.AWAITING_SECOND
        with pytest.raises(BillingError) as err:
            approvals.approve(item, ANNA)
        assert err.value.code == "same_approver"
        item = approvals.approve(item, BEN)
        assert (item.status, item.first_approver, item.approver) == (
            ItemStatus.APPROVED,
            "anna@a.example",
            "ben@a.example",
        )


def test_invoice_numbers_totals_trail_and_immutability(org_a, client_acme, two_items):
    with scope(organization=org_a):
        BillingSettings.objects.create(organization=org_a, tax_rate=Decimal("0.19"))
        for item in two_items:
            approvals.approve(item, ANNA)
        draft = invoices.draft_invoice(org_a, client_acme, at(0), at(24), ANNA, at=at(30))
        assert draft.number is None
        invoice = invoices.finalize(draft, ANNA, at=at(31))
        assert (invoice.label, invoice.subtotal, invoice.tax, invoice.total) == (
            "INV-000001",
            Decimal("240.00"),
            Decimal("45.60"),
            Decimal("285.60"),
        )
        with pytest.raises(BillingError) as err:
            approvals.approve(BillableItem.objects.get(pk=two_items[0].pk), BEN)
        assert err.value.code == "already_invoiced"
        invoice.total = Decimal("1")
        with pytest.raises(ImmutableError):
            invoice.save()
        generated = Event.objects.get(organization=org_a, event_type="invoice.generated")
        assert generated.client == client_acme
        assert generated.occurred_at == at(31)
        assert generated.payload["digest"] == invoice.digest
        line = generated.payload["lines"][0]
        assert line["agreement_digest"] == two_items[0].agreement.digest
        assert line["event_ids"] == [str(e.pk) for e in two_items[0].events.all()]
        # The document is stable: digested again, the final invoice gives its digest.
        import hashlib
        import json

        again = invoices.document(Invoice.objects.get(pk=invoice.pk))
        canonical = json.dumps(again, sort_keys=True, separators=(",", ":")).encode()
        assert hashlib.sha256(canonical).hexdigest() == invoice.digest
        assert [ln["position"] for ln in again["lines"]] == [1, 2]
        note = invoices.credit_note(invoice, [two_items[1]], "duplicate change", BEN, at=at(40))
        assert (note.label, note.total) == ("CN-000002", Decimal("-142.80"))
        with pytest.raises(BillingError, match="credited already"):
            invoices.credit_note(invoice, [two_items[1]], "again", BEN)
        assert (
            Event.objects.filter(organization=org_a, event_type="credit_note.issued").count() == 1
        )
        csv = invoices.to_csv(Invoice.objects.get(pk=invoice.pk))
        assert "INV-000001,,total,,,,285.60,EUR" in csv


def test_invoice_refuses_mixed_currencies_and_empty_periods(org_a, client_acme, publish):
    publish(org_a, scope_event(), *changes(2))
    publish(org_a, scope_event("LP-2", currency="USD"), *changes(2, ref="LP-2"))
    with scope(organization=org_a):
        for item in BillableItem.objects.filter(organization=org_a):
            approvals.approve(item, ANNA)
        with pytest.raises(BillingError) as err:
            invoices.draft_invoice(org_a, client_acme, at(0), at(24), ANNA)
        assert err.value.code == "currency_mismatch"
        with pytest.raises(BillingError) as err:
            invoices.draft_invoice(org_a, client_acme, at(100), at(124), ANNA)
        assert err.value.code == "nothing_to_invoice"
        assert not Invoice.objects.filter(organization=org_a).exists()
        assert not BillableItem.objects.filter(organization=org_a, invoice__isnull=False).exists()


money = st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False, allow_infinity=False)


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(money, max_size=50),
    rate=st.decimals(min_value=0, max_value=1, places=4, allow_nan=False),
)
def test_invoice_total_is_sum_of_lines_plus_tax_rounded_once(lines, rate):
    subtotal, tax, total = totals(lines, rate)
    assert subtotal == sum(lines, Decimal(0))
    assert abs(tax - subtotal * rate) <= Decimal("0.005")
    assert tax == tax.quantize(Decimal("0.01"))
    assert total == subtotal + tax


def _work(ref: str) -> list[dict]:
    """Revisions and hours beyond LP scope_event's limits (1 revision, 10 hours), mixed."""
    return [
        event("change.requested", ref, {"summary": "c1"}, at=at(1)),
        event("time.logged", ref, {"hours": 6}, at=at(2)),
        event("change.requested", ref, {"summary": "c2"}, at=at(3)),
        event("time.logged", ref, {"hours": 6.5}, at=at(4)),
        event("change.requested", ref, {"summary": "c3"}, at=at(5)),
        event("time.logged", ref, {"hours": 1.25}, at=at(6)),
    ]


def _proposed(org, ref: str) -> list[tuple]:
    with scope(organization=org):
        return [
            (i.clause, i.quantity, i.amount, [e.occurred_at for e in i.events.all()])
            for i in BillableItem.objects.filter(
                organization=org, deliverable__deliverable_id=ref
            ).order_by("occurred_at", "clause")
        ]


def test_a_batch_proposes_what_the_same_events_one_by_one_propose(org_a, client_acme, publish):
    publish(org_a, scope_event("LP-1"), scope_event("LP-2"))
    publish(org_a, *_work("LP-1"))  # one batch
    for body in _work("LP-2"):
        publish(org_a, body)  # one at a time
    together, alone = _proposed(org_a, "LP-1"), _proposed(org_a, "LP-2")
    assert together == alone
    assert together == [
        ("revisions", Decimal("1.00"), Decimal("120.00"), [at(3)]),
        ("hours", Decimal("2.50"), Decimal("238.75"), [at(4)]),
        ("revisions", Decimal("1.00"), Decimal("120.00"), [at(5)]),
        ("hours", Decimal("1.25"), Decimal("119.38"), [at(6)]),
    ]
    with scope(organization=org_a):
        proposed = Event.objects.filter(organization=org_a, event_type="billing.item_proposed")
        assert proposed.count() == 8


def test_a_batch_with_many_overruns_costs_the_statements_of_one_with_few(
    org_a, client_acme, publish
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    publish(org_a, scope_event("LP-1"), scope_event("LP-2"), scope_event("LP-3"))
    publish(org_a, *changes(2, start=1, ref="LP-3"))  # warm the caches

    def statements(bodies) -> int:
        with CaptureQueriesContext(connection) as queries:
            publish(org_a, *bodies)
        return len(queries)

    few = statements(changes(3, start=1, ref="LP-1"))  # 2 items
    many = statements(changes(12, start=1, ref="LP-2"))  # 11 items
    assert many == few
    assert len(_proposed(org_a, "LP-2")) == 11
