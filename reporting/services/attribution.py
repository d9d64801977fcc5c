"""Attribution: daily facts per deliverable under first-touch, last-touch and linear, and
attribution mismatches (impressions, no CRM touch in the window) with forensics tickets.

Definitions (what the tests compute by hand; days are the organization's local days):

- A revenue row dated R with contact C is credited to C's touches that occurred on days
  R - window .. R. First touch gives the whole amount to the earliest touch's deliverable,
  last touch to the latest, linear 1/n to each touch. A row with no such touch (or no
  contact) is credited wholly to the deliverable its event named, under every model.
- As of day X, a deliverable is an attribution mismatch when it had impressions on days
  X - window + 1 .. X and no touch on those days (nor since: a later touch resolves it).
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from deliveries.models import Deliverable
from meshline import bulk
from owners.models import TicketSource
from owners.services import tickets
from reporting.models import (
    AttributionFact,
    AttributionMismatch,
    AttributionModel,
    AttributionShare,
    CrmTouch,
    MismatchStatus,
    ReportingSettings,
    RevenueRow,
    SearchPerformance,
)

PLAYBOOK = (
    "The page has search impressions but no CRM touch within the attribution window.\n"
    "1. Missing tag firing: open the page and check the CRM/analytics tag fires "
    "(tag manager preview) on the landing URL.\n"
    "2. Correlation ids: check the CRM sends deliverable_id (or the landing URL) with each "
    "touch, and that the connector maps it.\n"
    "3. URL mismatch: compare the deliverable's URL with the landing URLs the CRM records "
    "(scheme, host, trailing slash, redirects).\n"
    "The ticket resolves itself when a touch for the deliverable arrives."
)
FOUR = Decimal("0.0001")
EIGHT = Decimal("0.00000001")


def settings_for(organization) -> ReportingSettings:
    """The organization's reporting settings (the defaults, unsaved, if it has none)."""
    found = ReportingSettings.objects.filter(organization=organization).first()
    return found or ReportingSettings(organization=organization)


def day_start(organization, day: date) -> datetime:
    """Midnight at the start of ``day`` in the organization's time zone."""
    return datetime.combine(day, time(), tzinfo=organization.zone)


def local_day(organization, at: datetime) -> date:
    return timezone.localtime(at, organization.zone).date()


def shares_for(touches: list[CrmTouch], fallback_deliverable_id: int) -> dict[str, dict]:
    """model -> {deliverable pk: (share, touches)} for one revenue row's candidate touches."""
    if not touches:
        whole = {fallback_deliverable_id: (Decimal(1), 0)}
        return {model: whole for model in AttributionModel.values}
    ordered = sorted(touches, key=lambda t: (t.occurred_at, t.touch_id))
    linear: dict[int, list] = defaultdict(lambda: [Decimal(0), 0])
    for touch in ordered:
        linear[touch.deliverable_id][0] += Decimal(1) / len(ordered)
        linear[touch.deliverable_id][1] += 1
    return {
        AttributionModel.FIRST_TOUCH: {ordered[0].deliverable_id: (Decimal(1), 1)},
        AttributionModel.LAST_TOUCH: {ordered[-1].deliverable_id: (Decimal(1), 1)},
        AttributionModel.LINEAR: {pk: (share, n) for pk, (share, n) in linear.items()},
    }


@dataclass
class DayResult:
    day: date
    facts: int
    shares: int
    mismatches_opened: int
    mismatches_resolved: int


def compute_day(organization, day: date, *, now: datetime | None = None) -> DayResult:
    """Rebuild one day's facts and shares (all three models), then reconcile mismatches.

    Idempotent per day: the day's rows are replaced in one transaction, so the nightly job
    and a re-run for a past day give the same rows.
    """
    now = now or timezone.now()
    window = settings_for(organization).window_days
    start, end = day_start(organization, day), day_start(organization, day + timedelta(days=1))
    org = {"organization": organization}
    facts: dict[tuple[int, str], AttributionFact] = {}

    def fact(deliverable_id: int, model: str) -> AttributionFact:
        key = (deliverable_id, model)
        if key not in facts:
            facts[key] = AttributionFact(
                organization=organization, deliverable_id=deliverable_id, date=day, model=model
            )
        return facts[key]

    search = (
        SearchPerformance.objects.filter(**org, date=day, deliverable__isnull=False)
        .values("deliverable_id")
        .annotate(
            day_impressions=Sum("impressions"),
            day_clicks=Sum("clicks"),
            weighted=Sum(F("position") * F("impressions")),
            positioned=Sum("impressions", filter=Q(position__isnull=False)),
        )
    )
    for row in search:
        position = row["weighted"] / row["positioned"] if row["positioned"] else None
        for model in AttributionModel.values:
            f = fact(row["deliverable_id"], model)
            f.impressions, f.clicks = row["day_impressions"], row["day_clicks"]
            f.position = position
    touches = CrmTouch.objects.filter(**org, occurred_at__gte=start, occurred_at__lt=end)
    for row in touches.values("deliverable_id", "touch_type").annotate(n=Count("pk")):
        for model in AttributionModel.values:
            f = fact(row["deliverable_id"], model)
            setattr(f, f"touches_{row['touch_type']}", row["n"])
    shares = _revenue_shares(organization, day, window)
    for share in shares:
        f = fact(share.deliverable_id, share.model)
        f.attributed_revenue += share.amount
    with transaction.atomic():
        AttributionFact.objects.filter(**org, date=day).delete()
        AttributionShare.objects.filter(**org, revenue__date=day).delete()
        bulk.insert(list(facts.values()))
        bulk.insert(shares)
        opened, resolved = reconcile_mismatches(organization, day, window, now=now)
    return DayResult(day, len(facts), len(shares), opened, resolved)


def _revenue_shares(organization, day: date, window: int) -> list[AttributionShare]:
    revenue = list(RevenueRow.objects.filter(organization=organization, date=day))
    contacts = {row.contact_id for row in revenue if row.contact_id}
    by_contact: dict[str, list[CrmTouch]] = defaultdict(list)
    if contacts:
        for touch in CrmTouch.objects.filter(
            organization=organization,
            contact_id__in=contacts,
            occurred_at__gte=day_start(organization, day - timedelta(days=window)),
            occurred_at__lt=day_start(organization, day + timedelta(days=1)),
        ):
            by_contact[touch.contact_id].append(touch)
    rows = []
    for revenue_row in revenue:
        candidates = by_contact.get(revenue_row.contact_id, []) if revenue_row.contact_id else []
        for model, credited in shares_for(candidates, revenue_row.deliverable_id).items():
            for deliverable_id, (share, n) in credited.items():
                rows.append(
                    AttributionShare(
                        organization=organization,
                        revenue=revenue_row,
                        deliverable_id=deliverable_id,
                        model=model,
                        share=share.quantize(EIGHT, ROUND_HALF_UP),
                        amount=(revenue_row.amount * share).quantize(FOUR, ROUND_HALF_UP),
                        touches=n,
                    )
                )
    return rows


def reconcile_mismatches(organization, day: date, window: int, *, now: datetime) -> tuple:
    """Open a mismatch (and its forensics ticket) for each deliverable with impressions and
    no touch in the window ending ``day``; resolve open ones that have a touch by now."""
    window_start = day - timedelta(days=window - 1)
    with_impressions = dict(
        SearchPerformance.objects.filter(
            organization=organization,
            date__gte=window_start,
            date__lte=day,
            deliverable__isnull=False,
            impressions__gt=0,
        )
        .values("deliverable_id")
        .annotate(n=Sum("impressions"))
        .values_list("deliverable_id", "n")
    )
    touched = set(
        CrmTouch.objects.filter(
            organization=organization,
            deliverable_id__in=with_impressions,
            # No upper bound: a touch that arrived after ``day`` would resolve the mismatch at
            # once, so re-running a past day must not open (and close) it again.
            occurred_at__gte=day_start(organization, window_start),
        ).values_list("deliverable_id", flat=True)
    )
    open_now = {
        m.deliverable_id: m
        for m in AttributionMismatch.objects.filter(
            organization=organization, status=MismatchStatus.OPEN
        ).select_related("deliverable__client", "ticket")
    }
    unexplained = {
        deliverable_id: impressions
        for deliverable_id, impressions in with_impressions.items()
        if deliverable_id not in touched and deliverable_id not in open_now
    }
    opened = len(open_mismatches(organization, unexplained, day, window_start, now=now))
    resolved = 0
    for deliverable_id in touched & open_now.keys():
        touch = (
            CrmTouch.objects.filter(organization=organization, deliverable_id=deliverable_id)
            .order_by("-occurred_at")
            .first()
        )
        _resolve(open_now[deliverable_id], touch)
        resolved += 1
    return opened, resolved


# Mismatches opened together: a first nightly run over a new search export opens thousands.
MISMATCH_CHUNK = 500


def open_mismatches(
    organization, impressions: dict, day, window_start, *, now
) -> list[AttributionMismatch]:
    """A mismatch row for each deliverable id in ``impressions`` (id -> impressions in the
    window) and one forensics ticket each through the owner map (none if nobody owns
    ``crm.touch``: the mismatch still shows in the portal). Rows, tickets and their links
    are written a chunk at a time (``tickets.open_tickets``), not one by one."""
    ids = list(impressions)
    opened = []
    for start in range(0, len(ids), MISMATCH_CHUNK):
        chunk = ids[start : start + MISMATCH_CHUNK]
        deliverables = (
            Deliverable.objects.filter(organization=organization)
            .select_related("client")
            .in_bulk(chunk)
        )
        mismatches = bulk.insert(
            [
                AttributionMismatch(
                    organization=organization,
                    deliverable=deliverables[deliverable_id],
                    detected_on=day,
                    window_start=window_start,
                    impressions=impressions[deliverable_id],
                )
                for deliverable_id in chunk
            ]
        )
        results = tickets.open_tickets(
            organization, [_forensics_ticket(m, day, window_start) for m in mismatches], at=now
        )
        routed = []
        for mismatch, result in zip(mismatches, results, strict=True):
            if result.ticket is not None:
                mismatch.ticket = result.ticket
                routed.append(mismatch)
        AttributionMismatch.objects.bulk_update(routed, ["ticket"])
        opened += mismatches
    return opened


def _forensics_ticket(mismatch: AttributionMismatch, day, window_start) -> tickets.TicketRequest:
    deliverable = mismatch.deliverable
    return tickets.TicketRequest(
        source=TicketSource.ATTRIBUTION,
        source_key=f"attribution:{mismatch.pk}",
        title=f"Attribution mismatch: {deliverable.deliverable_id} has impressions "
        "but no CRM touch",
        event_type="crm.touch",
        deliverable=deliverable,
        context={
            "window": f"{window_start.isoformat()} .. {day.isoformat()}",
            "impressions": mismatch.impressions,
            "url": deliverable.url,
            "remediation": PLAYBOOK,
        },
    )


def resolve_mismatches(touch: CrmTouch) -> int:
    """A touch arrived: resolve its deliverable's open mismatch and the forensics ticket."""
    found = 0
    for mismatch in AttributionMismatch.objects.filter(
        organization=touch.organization_id,
        deliverable_id=touch.deliverable_id,
        status=MismatchStatus.OPEN,
    ).select_related("ticket"):
        _resolve(mismatch, touch)
        found += 1
    return found


def _resolve(mismatch: AttributionMismatch, touch: CrmTouch | None) -> None:
    mismatch.status = MismatchStatus.RESOLVED
    mismatch.resolved_at = timezone.now()
    mismatch.resolved_by = touch
    mismatch.save(update_fields=["status", "resolved_at", "resolved_by"])
    if mismatch.ticket is not None and mismatch.ticket.is_active:
        note = f"CRM touch {touch.touch_id} arrived." if touch else "A CRM touch arrived."
        tickets.resolve(mismatch.ticket, tickets.MESHLINE, note=note)


def mismatch_rate(organization) -> dict:
    """Open mismatches over deliverables with impressions in the current window."""
    window = settings_for(organization).window_days
    latest = (
        SearchPerformance.objects.filter(organization=organization)
        .order_by("-date")
        .values_list("date", flat=True)
        .first()
    )
    open_count = AttributionMismatch.objects.filter(
        organization=organization, status=MismatchStatus.OPEN
    ).count()
    # Always the same queries (the dashboard's query budget): no data counts from today.
    latest = latest or local_day(organization, timezone.now())
    with_impressions = (
        SearchPerformance.objects.filter(
            organization=organization,
            date__gt=latest - timedelta(days=window),
            deliverable__isnull=False,
            impressions__gt=0,
        )
        .values("deliverable_id")
        .distinct()
        .count()
    )
    rate = round(100 * open_count / with_impressions, 1) if with_impressions else None
    return {"open": open_count, "with_impressions": with_impressions, "rate": rate}
