"""Deliverable ROI over a period, from the stored daily facts: what the Reporting page
lists and what the daily export writes, from one queryset so the two always agree."""

from datetime import date
from decimal import Decimal

from django.db.models import (
    Count,
    DecimalField,
    F,
    FilteredRelation,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Sum,
    Value,
)
from django.db.models.functions import Coalesce

from deliveries.models import Deliverable
from owners.models import ACTIVE_STATUSES, Ticket
from reporting.models import AttributionFact, TouchType

TOUCH_FIELDS = [f"touches_{value}" for value in TouchType.values]
SORTS = {
    "impressions": "impressions",
    "clicks": "clicks",
    "touches": "touches",
    "revenue": "attributed_revenue",
    "deliverable": "deliverable_id",
}


def roi_queryset(
    organization,
    model: str,
    since: date,
    until: date,
    *,
    client=None,
    deliverable_type: str = "",
    active_only: bool = True,
):
    """Deliverables annotated with their period totals under ``model``.

    ``active_only`` keeps deliverables with at least one fact in the period (the portal);
    the export passes False to write every deliverable, zeros included.
    """
    # The period's facts are joined on their model and dates (LEFT JOIN ... ON), so each
    # deliverable meets only its own facts of the period rather than every day it ever
    # had: a day's export over 90 days of history joined all 90 before grouping
    # (bench/reporting.py).
    in_period = FilteredRelation(
        "attribution_facts",
        condition=Q(
            # organization first, so the join can use the facts' (organization, model,
            # date) index.
            attribution_facts__organization=organization,
            attribution_facts__model=model,
            attribution_facts__date__gte=since,
            attribution_facts__date__lte=until,
        ),
    )

    def total(name, output=None):
        return Coalesce(
            Sum(f"period_facts__{name}"),
            Value(0),
            output_field=output or IntegerField(),
        )

    queryset = Deliverable.objects.filter(organization=organization)
    if client is not None:
        queryset = queryset.filter(client=client)
    if deliverable_type:
        queryset = queryset.filter(type=deliverable_type)
    queryset = (
        queryset.annotate(period_facts=in_period)
        .annotate(
            fact_days=Count("period_facts"),
            impressions=total("impressions"),
            clicks=total("clicks"),
            weighted_position=Sum(
                F("period_facts__position") * F("period_facts__impressions"),
                filter=Q(period_facts__position__isnull=False),
                output_field=FloatField(),
            ),
            positioned=Sum(
                "period_facts__impressions",
                filter=Q(period_facts__position__isnull=False),
            ),
            attributed_revenue=total(
                "attributed_revenue", DecimalField(max_digits=18, decimal_places=4)
            ),
            **{name: total(name) for name in TOUCH_FIELDS},
        )
        .annotate(touches=sum((F(name) for name in TOUCH_FIELDS[1:]), F(TOUCH_FIELDS[0])))
    )
    if active_only:
        queryset = queryset.filter(fact_days__gt=0)
    return queryset.select_related("client")


def daily_totals(
    organization, model: str, since: date, until: date, *, client=None, deliverable_type=""
) -> dict:
    """{day: (impressions, clicks)} of the period, over the same deliverables as
    ``roi_queryset`` (one grouped query: the Reporting page's chart)."""
    facts = AttributionFact.objects.filter(
        organization=organization, model=model, date__gte=since, date__lte=until
    )
    if client is not None:
        facts = facts.filter(deliverable__client=client)
    if deliverable_type:
        facts = facts.filter(deliverable__type=deliverable_type)
    rows = facts.values("date").annotate(i=Sum("impressions"), c=Sum("clicks")).order_by()
    return {row["date"]: (row["i"] or 0, row["c"] or 0) for row in rows}


def with_status(queryset):
    """Adds the open ticket count and the latest gate outcome (export columns)."""
    from gates.models import GateEvaluation

    open_tickets = (
        # organization first: the indexes lead with it (ticket_deliverable).
        Ticket.objects.filter(
            organization=OuterRef("organization"),
            deliverable=OuterRef("pk"),
            status__in=ACTIVE_STATUSES,
        )
        .order_by()
        .values("deliverable")
        .annotate(n=Count("pk"))
        .values("n")
    )
    latest_gate = (
        GateEvaluation.objects.filter(
            organization=OuterRef("organization"), deliverable=OuterRef("pk")
        )
        .order_by("-evaluated_at")
        .values("outcome")[:1]
    )
    return queryset.annotate(
        open_tickets=Coalesce(Subquery(open_tickets, output_field=IntegerField()), Value(0)),
        gate_status=Coalesce(Subquery(latest_gate), Value("")),
    )


def with_billed(queryset, start, end):
    """Adds what was billed for each deliverable by invoices and credit notes issued in
    [start, end): ``billed_amount`` (net: credit lines are negative) and
    ``billed_currency`` (the invoices' currency; a deliverable billed in two currencies on
    one day reports the sum under the first, which does not happen while an agreement has
    one currency per client)."""
    from billing.models import InvoiceLine, InvoiceStatus

    issued = InvoiceLine.objects.filter(
        organization=OuterRef("organization"),
        item__organization=OuterRef("organization"),
        item__deliverable=OuterRef("pk"),
        invoice__status=InvoiceStatus.FINAL,
        invoice__finalized_at__gte=start,
        invoice__finalized_at__lt=end,
    ).order_by()
    amount = issued.values("item__deliverable").annotate(total=Sum("amount")).values("total")
    currency = issued.order_by("invoice__currency").values("invoice__currency")[:1]
    return queryset.annotate(
        billed_amount=Coalesce(
            Subquery(amount, output_field=DecimalField(max_digits=18, decimal_places=2)),
            Value(Decimal("0.00")),
            output_field=DecimalField(max_digits=18, decimal_places=2),
        ),
        billed_currency=Coalesce(Subquery(currency), Value("")),
    )


def ratios(row) -> tuple[float, float | None]:
    """(CTR, impression-weighted position) of an annotated row."""
    ctr = row.clicks / row.impressions if row.impressions else 0.0
    position = row.weighted_position / row.positioned if row.positioned else None
    return round(ctr, 6), (round(position, 3) if position is not None else None)
