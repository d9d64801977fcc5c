"""The quarterly finance review, per client: what was billed beyond scope, how fast finance
approved it, how often it was disputed and credited, and how the client's tickets kept their
SLAs. A fixed number of grouped queries, whatever the number of clients."""

import csv
import io
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.utils import timezone

from billing.models import (
    OPEN_ITEM_STATUSES,
    BillableItem,
    Dispute,
    DisputeStatus,
    Invoice,
    InvoiceKind,
    InvoiceLine,
    InvoiceStatus,
)
from billing.services.errors import BillingError
from billing.services.money import CENT
from deliveries.models import Client
from owners.dashboard import duration_text, resolution_stats_by
from owners.models import ACTIVE_STATUSES, Ticket, TicketStatus, overdue_q

QUARTER = re.compile(r"\A(\d{4})-Q([1-4])\Z")


@dataclass(frozen=True)
class Quarter:
    year: int
    number: int

    @classmethod
    def parse(cls, text: str) -> "Quarter":
        match = QUARTER.match((text or "").strip().upper())
        if not match or not 2000 <= int(match[1]) <= 2999:
            raise BillingError(
                "invalid_quarter", "Give a quarter as YYYY-Qn, e.g. 2026-Q3.", "quarter"
            )
        return cls(int(match[1]), int(match[2]))

    @classmethod
    def containing(cls, day: date) -> "Quarter":
        return cls(day.year, (day.month - 1) // 3 + 1)

    def __str__(self) -> str:
        return f"{self.year}-Q{self.number}"

    def previous(self) -> "Quarter":
        return (
            Quarter(self.year - 1, 4) if self.number == 1 else Quarter(self.year, self.number - 1)
        )

    def bounds(self, zone) -> tuple[datetime, datetime]:
        """[start, end) in the organization's zone: a quarter is its local calendar's."""
        start = datetime(self.year, 3 * self.number - 2, 1, tzinfo=zone)
        nxt = Quarter(self.year + 1, 1) if self.number == 4 else Quarter(self.year, self.number + 1)
        return start, datetime(nxt.year, 3 * nxt.number - 2, 1, tzinfo=zone)


def _exact(amount) -> Decimal:
    """A database SUM as money: SQLite sums decimals as floats (142.800000000000)."""
    return Decimal(amount).quantize(CENT)


def _money() -> defaultdict:
    return defaultdict(lambda: Decimal("0.00"))


@dataclass
class ClientRow:
    """A client's quarter. Money is per currency (an amendment may change it); counts and
    the SLA scorecard are the client's."""

    client_id: str
    name: str
    billed: defaultdict = field(default_factory=_money)
    billed_items: int = 0
    credited: defaultdict = field(default_factory=_money)
    credit_notes: int = 0
    approval_hours: list = field(default_factory=list)
    disputes: int = 0
    upheld: int = 0
    pending: defaultdict = field(default_factory=_money)
    tickets_opened: int = 0
    tickets_resolved: int = 0
    within_sla: int = 0
    mttr_seconds: float | None = None
    overdue_now: int = 0

    @property
    def median_approval_hours(self) -> float | None:
        return round(statistics.median(self.approval_hours), 1) if self.approval_hours else None

    @property
    def dispute_rate(self) -> float | None:
        """Disputes raised per invoiced item, in percent."""
        return round(100 * self.disputes / self.billed_items, 1) if self.billed_items else None

    @property
    def sla_percent(self) -> float | None:
        return (
            round(100 * self.within_sla / self.tickets_resolved, 1)
            if self.tickets_resolved
            else None
        )

    @property
    def currencies(self) -> list[str]:
        return sorted(set(self.billed) | set(self.credited) | set(self.pending))

    def money(self) -> list[dict]:
        """Per currency: billed, credited, pending (what the portal table shows per line)."""
        return [
            {
                "currency": c,
                "billed": self.billed.get(c, Decimal("0.00")),
                "credited": self.credited.get(c, Decimal("0.00")),
                "pending": self.pending.get(c, Decimal("0.00")),
            }
            for c in self.currencies
        ]

    @property
    def mttr(self) -> str:
        return duration_text(self.mttr_seconds)

    def is_empty(self) -> bool:
        return not (
            self.billed_items
            or self.credit_notes
            or self.approval_hours
            or self.disputes
            or self.pending
            or self.tickets_opened
            or self.tickets_resolved
            or self.overdue_now
        )


def finance_report(organization, quarter: Quarter, now=None) -> list[ClientRow]:
    """One row per client with any activity in the quarter (or overdue tickets now)."""
    now = now or timezone.now()
    start, end = quarter.bounds(organization.zone)
    org = {"organization": organization}
    rows: dict = {}

    def row(client_pk) -> ClientRow:
        if client_pk not in rows:
            rows[client_pk] = ClientRow("", "")
        return rows[client_pk]

    issued = {
        **org,
        "invoice__status": InvoiceStatus.FINAL,
        "invoice__finalized_at__gte": start,
        "invoice__finalized_at__lt": end,
    }
    for r in (
        InvoiceLine.objects.filter(**issued, invoice__kind=InvoiceKind.INVOICE)
        .values("invoice__client", "invoice__currency")
        .annotate(amount=Sum("amount"), items=Count("pk"))
        .order_by()
    ):
        target = row(r["invoice__client"])
        target.billed[r["invoice__currency"]] += _exact(r["amount"])
        target.billed_items += r["items"]
    for r in (
        Invoice.objects.filter(
            **org,
            kind=InvoiceKind.CREDIT_NOTE,
            status=InvoiceStatus.FINAL,
            finalized_at__gte=start,
            finalized_at__lt=end,
        )
        .values("client", "currency")
        .annotate(amount=Sum("total"), notes=Count("pk"))
        .order_by()
    ):
        target = row(r["client"])
        target.credited[r["currency"]] += -_exact(r["amount"])
        target.credit_notes += r["notes"]
    for client_pk, proposed, approved in BillableItem.objects.filter(
        **org, approved_at__gte=start, approved_at__lt=end
    ).values_list("client", "proposed_at", "approved_at"):
        row(client_pk).approval_hours.append((approved - proposed).total_seconds() / 3600)
    for r in (
        Dispute.objects.filter(**org, raised_at__gte=start, raised_at__lt=end)
        .values("client")
        .annotate(
            count=Count("pk"),
            upheld=Count("pk", filter=Q(status=DisputeStatus.UPHELD)),
        )
        .order_by()
    ):
        target = row(r["client"])
        target.disputes += r["count"]
        target.upheld += r["upheld"]
    for r in (
        BillableItem.objects.filter(**org, status__in=OPEN_ITEM_STATUSES)
        .values("client", "currency")
        .annotate(amount=Sum("amount"))
        .order_by()
    ):
        row(r["client"]).pending[r["currency"]] += _exact(r["amount"])

    tickets = Ticket.objects.filter(**org, deliverable__isnull=False)
    client_of = "deliverable__client"
    for r in (
        tickets.filter(opened_at__gte=start, opened_at__lt=end)
        .values(client_of)
        .annotate(count=Count("pk"))
        .order_by()
    ):
        row(r[client_of]).tickets_opened = r["count"]
    resolved = resolution_stats_by(
        tickets.filter(status=TicketStatus.RESOLVED, resolved_at__gte=start, resolved_at__lt=end),
        client_of,
    )
    for client_pk, stats in resolved.items():
        target = row(client_pk)
        target.tickets_resolved = stats.count
        target.within_sla = stats.in_time
        target.mttr_seconds = stats.mean_seconds
    for r in (
        tickets.filter(status__in=ACTIVE_STATUSES)
        .filter(overdue_q(now))
        .values(client_of)
        .annotate(count=Count("pk"))
        .order_by()
    ):
        row(r[client_of]).overdue_now = r["count"]

    names = dict(
        (pk, (client_id, name))
        for pk, client_id, name in Client.objects.filter(**org, pk__in=list(rows)).values_list(
            "pk", "client_id", "name"
        )
    )
    result = []
    for client_pk, target in rows.items():
        if client_pk not in names or target.is_empty():
            continue
        target.client_id, target.name = names[client_pk]
        result.append(target)
    return sorted(result, key=lambda r: r.name.lower())


MONEY_COLUMNS = ["currency", "billed_overruns", "credited", "pending_approval"]
CSV_COLUMNS = [
    ("billed_items", "billed_items"),
    ("credit_notes", "credit_notes"),
    ("median_approval_hours", "median_approval_hours"),
    ("disputes", "disputes"),
    ("disputes_upheld", "upheld"),
    ("dispute_rate_percent", "dispute_rate"),
    ("tickets_opened", "tickets_opened"),
    ("tickets_resolved", "tickets_resolved"),
    ("resolved_within_sla_percent", "sla_percent"),
    ("mttr_hours", "mttr_hours"),
    ("overdue_now", "overdue_now"),
]


def to_csv(quarter: Quarter, rows: list[ClientRow]) -> str:
    """One line per client and currency. A client billed in two currencies has two lines;
    its counts and SLA columns are on the first only, so a column sum never counts twice."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["quarter", "client", "client_name", *MONEY_COLUMNS, *(n for n, _ in CSV_COLUMNS)]
    )
    for r in rows:
        counts = []
        for _name, attr in CSV_COLUMNS:
            if attr == "mttr_hours":
                value = round(r.mttr_seconds / 3600, 2) if r.mttr_seconds is not None else None
            else:
                value = getattr(r, attr)
            counts.append("" if value is None else value)
        money = r.money() or [{"currency": "", "billed": "", "credited": "", "pending": ""}]
        for index, m in enumerate(money):
            writer.writerow(
                [
                    str(quarter),
                    r.client_id,
                    r.name,
                    m["currency"],
                    m["billed"],
                    m["credited"],
                    m["pending"],
                    *(counts if index == 0 else [""] * len(counts)),
                ]
            )
    return out.getvalue()
