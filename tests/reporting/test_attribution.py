"""Attribution against hand-computed values, window edges, mismatches and their tickets."""

import csv
import io
from datetime import date
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope

from deliveries.models import Event
from owners.models import Ticket, TicketSource, TicketStatus
from reporting.models import AttributionFact, AttributionMismatch, MismatchStatus
from reporting.services import attribution, exports, roi
from tests.reporting.conftest import NOW, revenue, search, touch

R = date(2026, 4, 1)


def revenue_by_model(org, day=R):
    with scope(organization=org):
        facts = AttributionFact.objects.filter(organization=org, date=day)
        return {
            (f.model, f.deliverable.deliverable_id): f.attributed_revenue
            for f in facts
            if f.attributed_revenue
        }


@pytest.fixture
def journey(org_a, pages, publish):
    """Contact c-1 touches LP-1 (on R-30, the window's first day), LP-2 and LP-3, and once
    LP-3 on R-31 (outside); then INV-1 of 900 EUR is recognised on R (recorded on LP-2)."""
    publish(
        org_a,
        touch("LP-3", "T-out", "2026-03-01T23:59:00Z"),
        touch("LP-1", "T-1", "2026-03-02T00:00:00Z"),
        touch("LP-2", "T-2", "2026-03-20T10:00:00Z"),
        touch("LP-3", "T-3", "2026-03-25T10:00:00Z"),
        revenue("LP-2", "INV-1", 900, "2026-04-01"),
    )


def test_first_last_and_linear_against_hand_computed_values(org_a, journey):
    with scope(organization=org_a):
        attribution.compute_day(org_a, R, now=NOW)
    assert revenue_by_model(org_a) == {
        ("first_touch", "LP-1"): Decimal("900.0000"),
        ("last_touch", "LP-3"): Decimal("900.0000"),
        ("linear", "LP-1"): Decimal("300.0000"),
        ("linear", "LP-2"): Decimal("300.0000"),
        ("linear", "LP-3"): Decimal("300.0000"),
    }


def test_shorter_window_drops_the_early_touch(org_a, journey):
    from reporting.models import ReportingSettings

    with scope(organization=org_a):
        ReportingSettings.objects.create(organization=org_a, window_days=12)  # from 03-20
        attribution.compute_day(org_a, R, now=NOW)
    assert revenue_by_model(org_a) == {
        ("first_touch", "LP-2"): Decimal("900.0000"),
        ("last_touch", "LP-3"): Decimal("900.0000"),
        ("linear", "LP-2"): Decimal("450.0000"),
        ("linear", "LP-3"): Decimal("450.0000"),
    }


def test_revenue_without_touches_goes_to_its_own_deliverable(org_a, pages, publish):
    publish(org_a, revenue("LP-2", "INV-9", 120, "2026-04-01", contact="nobody"))
    with scope(organization=org_a):
        attribution.compute_day(org_a, R, now=NOW)
    assert revenue_by_model(org_a) == {
        (model, "LP-2"): Decimal("120.0000") for model in ("first_touch", "last_touch", "linear")
    }


def test_recomputing_a_day_replaces_it(org_a, journey):
    with scope(organization=org_a):
        for _ in range(3):
            attribution.compute_day(org_a, R, now=NOW)
        assert AttributionFact.objects.filter(organization=org_a, date=R).count() == 5


def mismatches(org):
    with scope(organization=org):
        return [
            (m.deliverable.deliverable_id, m.status, m.ticket.status if m.ticket else None)
            for m in AttributionMismatch.objects.filter(organization=org).order_by("detected_on")
        ]


def test_mismatch_opens_one_ticket_and_a_touch_resolves_it(org_a, pages, publish, owner_map):
    publish(org_a, search("LP-1", "2026-03-05", 100, 3))
    with scope(organization=org_a):
        attribution.compute_day(org_a, date(2026, 3, 5), now=NOW)
        attribution.compute_day(org_a, date(2026, 3, 6), now=NOW)  # still one mismatch
        ticket = Ticket.objects.get(organization=org_a)
        assert ticket.source == TicketSource.ATTRIBUTION
        assert ticket.owner_role.slug == "account-manager"
        assert ticket.opened_by()["kind"] == "attribution_mismatch"
        assert "Missing tag firing" in ticket.context["remediation"]
    assert mismatches(org_a) == [("LP-1", MismatchStatus.OPEN, TicketStatus.OPEN)]
    publish(org_a, touch("LP-1", "T-late", "2026-03-07T10:00:00Z"))
    assert mismatches(org_a) == [("LP-1", MismatchStatus.RESOLVED, TicketStatus.RESOLVED)]


def test_window_edges_for_mismatches(org_a, pages, publish, owner_map):
    # LP-1: impressions on X-30 only (outside the 30-day window ending X): no mismatch.
    # LP-2: impressions on X, touch on X-29 (the window's first day): no mismatch.
    # LP-3: impressions on X-29, touch on X-30 (outside): a mismatch.
    x = "2026-03-31"
    publish(
        org_a,
        search("LP-1", "2026-03-01", 50, 1),
        search("LP-2", x, 50, 1),
        touch("LP-2", "T-2", "2026-03-02T00:00:00Z"),
        search("LP-3", "2026-03-02", 50, 1),
        touch("LP-3", "T-3", "2026-03-01T23:59:59Z"),
    )
    with scope(organization=org_a):
        result = attribution.compute_day(org_a, date(2026, 3, 31), now=NOW)
    assert result.mismatches_opened == 1
    assert mismatches(org_a) == [("LP-3", MismatchStatus.OPEN, TicketStatus.OPEN)]


def test_export_rows_equal_the_portal_numbers(org_a, journey, publish, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    publish(org_a, search("LP-1", "2026-04-01", 400, 20), search("LP-3", "2026-04-01", 10, 0))
    with scope(organization=org_a):
        attribution.compute_day(org_a, R, now=NOW)
        csv_export = exports.run_export(org_a, R, "csv")
        parquet_export = exports.run_export(org_a, R, "parquet")
        portal = {
            row.deliverable_id: (row.impressions, row.clicks, row.touches, row.attributed_revenue)
            for row in roi.roi_queryset(org_a, "last_touch", R, R, active_only=False)
        }
        with csv_export.file.open("rb") as f:
            lines = list(csv.DictReader(io.TextIOWrapper(f, encoding="utf-8")))
        table = pq.read_table(parquet_export.file.path)
    assert csv_export.rows == parquet_export.rows == 3
    exported = {
        r["deliverable_id"]: (
            int(r["impressions"]),
            int(r["clicks"]),
            sum(int(r[name]) for name in roi.TOUCH_FIELDS),
            Decimal(r["attributed_revenue"]),
        )
        for r in lines
    }
    assert exported == portal
    assert portal["LP-1"] == (400, 20, 0, Decimal(0))
    assert portal["LP-3"] == (10, 0, 0, Decimal("900"))
    assert lines[0]["ctr"] == "0.05"
    assert table.schema == exports.parquet_schema()
    assert table.column("impressions").to_pylist() == [400, 0, 10]
    # Re-running the day replaces the file and the row, never adds one.
    with scope(organization=org_a):
        again = exports.run_export(org_a, R, "csv")
        assert again.pk == csv_export.pk


def test_each_export_is_announced_once_per_content_to_subscribers(
    org_a, journey, publish, settings, tmp_path
):
    """export.generated carries the file's address and digest; an outbound subscription to
    it gets one delivery; a re-run with the same content announces nothing new."""
    import hashlib

    from connectors.models import OutboundDelivery, Subscription

    settings.MEDIA_ROOT = tmp_path
    with scope(organization=org_a):
        Subscription.objects.create(
            organization=org_a,
            name="Data warehouse",
            url="https://warehouse.example/hooks/meshline",
            event_types=["export.generated"],
        )
        attribution.compute_day(org_a, R, now=NOW)
        export = exports.run_export(org_a, R, "csv")
        exports.run_export(org_a, R, "csv")  # the same rows: the same file
        [announced] = Event.objects.filter(organization=org_a, event_type="export.generated")
        with export.file.open("rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        deliveries = OutboundDelivery.objects.filter(organization=org_a, event=announced).count()
    assert announced.payload == {
        "export_id": str(export.pk),
        "date": R.isoformat(),
        "format": "csv",
        "rows": export.rows,
        "size_bytes": export.size_bytes,
        "sha256": digest,
        "download": f"/api/v1/exports/{export.pk}/download",
    }
    assert deliveries == 1


def test_a_replayed_old_touch_leaves_a_mismatch_opened_since_open(
    org_a, pages, publish, owner_map, replay_events
):
    """The touch fell out of the window before the mismatch was opened: replaying it must
    not resolve the mismatch (the first processing of a touch resolves, not a replay)."""
    publish(org_a, search("LP-3", "2026-03-02", 50, 1))
    touch_ids = publish(org_a, touch("LP-3", "T-3", "2026-03-01T23:59:59Z"))
    with scope(organization=org_a):
        attribution.compute_day(org_a, date(2026, 3, 31), now=NOW)
    assert mismatches(org_a) == [("LP-3", MismatchStatus.OPEN, TicketStatus.OPEN)]
    assert replay_events(org_a, touch_ids).replayed == 1
    assert mismatches(org_a) == [("LP-3", MismatchStatus.OPEN, TicketStatus.OPEN)]


def test_period_totals_count_only_that_periods_facts_of_that_model(org_a, pages):
    """The ROI join keeps a deliverable's facts of the period under the model asked for:
    other days and other models never add to it, and a deliverable whose only facts are
    outside the period is listed with zeros by the export and left out by the portal."""
    with scope(organization=org_a):
        by_id = {d.deliverable_id: d for d in org_a.deliverables.all()}

        def fact(key, day, model="last_touch", **numbers):
            AttributionFact.objects.create(
                organization=org_a, deliverable=by_id[key], date=day, model=model, **numbers
            )

        fact("LP-1", R, impressions=100, clicks=5, position=2.0, touches_visit=1)
        fact("LP-1", date(2026, 4, 2), impressions=50, clicks=5, position=4.0)
        fact("LP-1", date(2026, 3, 31), impressions=7000, clicks=70)
        fact("LP-1", R, model="linear", impressions=9000, clicks=90)
        fact("LP-2", date(2026, 3, 1), impressions=30, clicks=3)
        day = {
            r.deliverable_id: r
            for r in roi.roi_queryset(org_a, "last_touch", R, R, active_only=False)
        }
        two_days = {
            r.deliverable_id: r for r in roi.roi_queryset(org_a, "last_touch", R, date(2026, 4, 2))
        }
    assert (day["LP-1"].impressions, day["LP-1"].clicks, day["LP-1"].touches) == (100, 5, 1)
    assert day["LP-1"].fact_days == 1
    assert (day["LP-2"].impressions, day["LP-2"].fact_days) == (0, 0)
    assert set(day) == {"LP-1", "LP-2", "LP-3"}
    assert set(two_days) == {"LP-1"}
    assert (two_days["LP-1"].impressions, two_days["LP-1"].clicks) == (150, 10)
    assert two_days["LP-1"].fact_days == 2
    # Impression-weighted over the period's days only: (100 x 2 + 50 x 4) / 150.
    assert roi.ratios(two_days["LP-1"]) == (round(10 / 150, 6), round(400 / 150, 3))


def test_mass_mismatches_cost_the_same_statements_for_three_or_nine(
    org_a, pages, publish, owner_map
):
    first, later = [f"LP-{n}" for n in range(10, 13)], [f"LP-{n}" for n in range(13, 22)]
    publish(org_a, *[search(ref, "2026-03-05", 100, 3) for ref in first])
    publish(org_a, *[search(ref, "2026-03-06", 100, 3) for ref in later])

    def reconcile(day) -> tuple[int, int]:
        with scope(organization=org_a), CaptureQueriesContext(connection) as queries:
            opened, _resolved = attribution.reconcile_mismatches(org_a, day, 30, now=NOW)
        return opened, len(queries.captured_queries)

    few, many = reconcile(date(2026, 3, 5)), reconcile(date(2026, 3, 6))

    assert (few[0], many[0]) == (3, 9)  # the first three are open already on the 6th
    assert few[1] == many[1]
    with scope(organization=org_a):
        opened = list(
            AttributionMismatch.objects.filter(organization=org_a).select_related(
                "ticket", "deliverable"
            )
        )
        assert Event.objects.filter(organization=org_a, event_type="ticket.opened").count() == 12
    assert sorted(m.deliverable.deliverable_id for m in opened) == sorted(first + later)
    for mismatch in opened:
        assert mismatch.ticket.source_key == f"attribution:{mismatch.pk}"
        assert mismatch.ticket.deliverable_id == mismatch.deliverable_id
        assert mismatch.ticket.context["impressions"] == 100
        assert mismatch.ticket.owner_role.slug == "account-manager"


def test_mismatches_nobody_owns_open_without_a_ticket(org_a, pages, publish):
    publish(org_a, search("LP-1", "2026-03-05", 100, 3), search("LP-2", "2026-03-05", 7, 0))
    with scope(organization=org_a):
        result = attribution.compute_day(org_a, date(2026, 3, 5), now=NOW)
        assert not Ticket.objects.filter(organization=org_a).exists()
    assert result.mismatches_opened == 2
    assert sorted(mismatches(org_a)) == [
        ("LP-1", MismatchStatus.OPEN, None),
        ("LP-2", MismatchStatus.OPEN, None),
    ]
