"""Overrun detection, a processing step: work beyond the agreement in force becomes a
proposed billable item, exactly once however often events are replayed.

Each clause is counted over the processed events its agreement governed (from its start to
its expiry or amendment, by ``occurred_at``), plus the event being processed. Under the agreement's row lock the step compares
the excess with what was already proposed for that clause and proposes only the
difference, keyed by (agreement, clause, event): a replay finds its key taken, and an
event that arrives late cannot make the same excess billed twice.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Q, Sum

from billing.models import BillableItem, BillingSettings, BillingTicketLink, ScopeAgreement
from billing.services import agreements
from billing.services.errors import BillingError
from billing.services.money import line_amount
from deliveries.models import Event, EventSource, ProcessingStatus
from deliveries.services import trail

log = logging.getLogger(__name__)


def _count(events) -> Decimal:
    return Decimal(events.count())


def _hours(events) -> Decimal:
    # Decimal(str(float)) keeps what the submitter wrote (1.1 stays 1.1).
    return sum(
        (Decimal(str(h)) for h in events.values_list("payload__hours", flat=True) if h),
        Decimal("0"),
    )


@dataclass(frozen=True)
class Clause:
    """A limit an event type counts against, how usage is measured, its default unit."""

    name: str
    event_type: str
    unit: str
    measure: Callable


CLAUSES = [
    Clause("revisions", "change.requested", "revision", _count),
    Clause("assets", "asset.uploaded", "asset", _count),
    Clause("approved_assets", "asset.approved", "approved asset", _count),
    Clause("pages", "page.published", "page", _count),
    Clause("hours", "time.logged", "hour", _hours),
]
BILLABLE_EVENT_TYPES = frozenset(c.event_type for c in CLAUSES)


def on_batch_processed(batch) -> None:
    """Processing step: ``scope.accepted`` signs an agreement; billable work is counted.

    Agreements are read once for the batch, after the batch's own (and any waiting)
    ``scope.accepted`` events are recorded, so work counts against the agreement that was
    in force when it happened, whatever order the events were processed in.
    """
    submitted = [(e, d) for e, d in batch.items if e.source != EventSource.MESHLINE]
    for event, deliverable in submitted:
        if event.event_type == "scope.accepted":
            _record_scope(event, deliverable)
    billable = [(e, d) for e, d in submitted if e.event_type in BILLABLE_EVENT_TYPES]
    if not billable:
        return
    _sign_earlier_scopes(batch.organization, billable)
    candidates = agreements.candidates_for(batch.organization, [d for _e, d in billable])
    unscoped = _Unscoped(batch.organization, [d for _e, d in billable])
    counted: list = []  # the batch's events handled so far: not marked processed until commit
    for event, deliverable in billable:
        counted.append(event.pk)
        agreement = agreements.pick_in_force(candidates, deliverable, event.occurred_at)
        if agreement is None:
            unscoped.flag(event, deliverable)
        else:
            detect(agreement, event, deliverable, counted)


def _record_scope(event: Event, deliverable) -> None:
    try:
        agreements.agreement_from_event(event, deliverable)
    except BillingError as exc:
        log.warning("scope.accepted %s not recorded: %s", event.pk, exc)
        flag_exception(event, deliverable, f"The scope could not be recorded: {exc}")


class _Unscoped:
    """Billable work with no agreement in force: one exception per deliverable and batch
    (``flag_exception`` is idempotent per deliverable; this saves asking again)."""

    def __init__(self, organization, deliverables):
        self.organization = organization
        self.deliverables = deliverables
        self.flagged: set[int] | None = None
        self.settings = None

    def flag(self, event: Event, deliverable) -> None:
        if self.flagged is None:
            self.settings = BillingSettings.objects.filter(organization=self.organization).first()
            self.flagged = self._flagged_before()
        if deliverable.pk in self.flagged:
            return
        self.flagged.add(deliverable.pk)
        if self.settings is not None and self.settings.flag_unscoped_work:
            flag_exception(
                event, deliverable, "No scope agreement was in force when this happened."
            )

    def _flagged_before(self) -> set[int]:
        """Deliverables whose exception ticket exists already: one query for the batch."""
        from owners.models import Ticket, TicketSource

        keys = {unscoped_key(d): d.pk for d in self.deliverables}
        return {
            keys[key]
            for key in Ticket.objects.filter(
                organization=self.organization, source=TicketSource.BILLING, source_key__in=keys
            ).values_list("source_key", flat=True)
        }


def unscoped_key(deliverable) -> str:
    """The idempotency key of a deliverable's unscoped-work ticket."""
    return f"billing:unscoped:{deliverable.pk}"


def _sign_earlier_scopes(organization, billable) -> None:
    """Events are not processed in ``occurred_at`` order: a ``scope.accepted`` that happened
    before this work may still be waiting. Record it now (idempotent by source event), so
    the work counts against it instead of looking unscoped. One query for the batch."""
    latest: dict[int, object] = {}
    deliverables = {}
    for event, deliverable in billable:
        deliverables[deliverable.pk] = deliverable
        if deliverable.pk not in latest or event.occurred_at > latest[deliverable.pk]:
            latest[deliverable.pk] = event.occurred_at
    # One bound for the batch (an OR of every deliverable's costs more to build than to
    # run); each deliverable's own is applied below.
    waiting = (
        Event.objects.filter(
            organization=organization,
            event_type="scope.accepted",
            deliverable__in=list(latest),
            occurred_at__lte=max(latest.values()),
        )
        .exclude(source=EventSource.MESHLINE)
        .exclude(
            pk__in=ScopeAgreement.objects.filter(
                organization=organization, deliverable__in=list(latest)
            )
            .exclude(source_event=None)
            .values("source_event")
        )
        .order_by("occurred_at", "id")
    )
    for scope_event in waiting:
        if scope_event.occurred_at > latest[scope_event.deliverable_id]:
            continue  # after this deliverable's work: not in force for it yet
        try:
            agreements.agreement_from_event(scope_event, deliverables[scope_event.deliverable_id])
        except BillingError as exc:
            log.warning("scope.accepted %s not recorded: %s", scope_event.pk, exc)


def _governed(agreement: ScopeAgreement, event_type: str):
    events = Event.objects.filter(
        organization=agreement.organization_id,
        client=agreement.client_id,
        event_type=event_type,
        occurred_at__gte=agreement.valid_from,
    ).exclude(source=EventSource.MESHLINE)
    if agreement.deliverable_id:
        events = events.filter(deliverable=agreement.deliverable_id)
    end = agreements.window_end(agreement)
    if end is not None:
        events = events.filter(occurred_at__lt=end)
    return events


def detect(
    agreement: ScopeAgreement, event: Event, deliverable, counted=None
) -> list[BillableItem]:
    """Propose what ``event`` pushed beyond ``agreement``; returns the new items.

    ``counted``: the ids of this batch's events handled up to and including ``event``
    (still pending until the batch commits); by default ``event`` alone."""
    counted = counted if counted is not None else [event.pk]
    # The lock serialises detection per agreement: two events of one client-wide agreement
    # processed at once would otherwise both see the same excess as unbilled.
    agreement = ScopeAgreement.objects.select_for_update().get(pk=agreement.pk)
    created = []
    for clause in CLAUSES:
        if clause.event_type != event.event_type or clause.name not in agreement.limits:
            continue
        limit = Decimal(str(agreement.limits[clause.name]))
        # Counted: the events already processed, and this one. Each event is counted when it
        # is processed (serialised by the lock above), so the item that tips over the limit
        # names the event that did it, and an event arriving late still adds its share.
        usage = _governed(agreement, clause.event_type).filter(
            Q(processing__status=ProcessingStatus.PROCESSED) | Q(pk__in=counted)
        )
        excess = clause.measure(usage) - limit
        proposed = BillableItem.objects.filter(
            organization=agreement.organization_id, agreement=agreement, clause=clause.name
        ).aggregate(q=Sum("proposed_quantity"))["q"] or Decimal("0")
        if excess > proposed:
            item = _propose(
                agreement,
                event,
                deliverable,
                clause.name,
                clause.unit,
                excess - proposed,
                {
                    "limit": str(limit),
                    "used": str(limit + excess),
                    "already_proposed": str(proposed),
                },
            )
            if item is not None:
                created.append(item)
    if event.event_type == "asset.uploaded" and "asset_size_mb" in agreement.limits:
        size_mb = Decimal(str(event.payload.get("size_bytes") or 0)) / Decimal(1_000_000)
        limit = Decimal(str(agreement.limits["asset_size_mb"]))
        if size_mb > limit:
            item = _propose(
                agreement,
                event,
                deliverable,
                "asset_size_mb",
                "oversize asset",
                Decimal(1),
                {"limit_mb": str(limit), "size_mb": str(size_mb.quantize(Decimal("0.01")))},
            )
            if item is not None:
                created.append(item)
    return created


def _propose(agreement, event, deliverable, clause, unit, quantity, evidence):
    key = f"{agreement.pk}:{clause}:{event.pk}"
    if BillableItem.objects.filter(
        organization=agreement.organization_id, idempotency_key=key
    ).exists():
        return None
    card = agreement.rates.get(clause) or {}
    rate = Decimal(card.get("rate", "0"))
    unit = card.get("unit") or unit
    quantity = quantity.quantize(Decimal("0.01"))
    item = BillableItem.objects.create(
        organization_id=agreement.organization_id,
        agreement=agreement,
        client_id=agreement.client_id,
        deliverable=deliverable,
        clause=clause,
        description=f"{deliverable.deliverable_id}: {quantity:g} {unit} beyond '{clause}' "
        f"(agreement v{agreement.version})",
        quantity=quantity,
        proposed_quantity=quantity,
        unit=unit,
        rate=rate,
        amount=line_amount(quantity, rate),
        currency=agreement.currency,
        evidence={**evidence, "rate_missing": not card},
        occurred_at=event.occurred_at,
        proposed_at=event.occurred_at,
        idempotency_key=key,
    )
    item.events.add(event)
    trail.record(
        agreement.organization,
        "billing.item_proposed",
        key=f"billing:item:{item.pk}:proposed",
        deliverable=deliverable,
        occurred_at=event.occurred_at,
        payload={
            "item_id": str(item.pk),
            "agreement_id": str(agreement.pk),
            "agreement_digest": agreement.digest,
            "clause": clause,
            "quantity": str(item.quantity),
            "amount": str(item.amount),
            "currency": item.currency,
            "event_ids": [str(event.pk)],
        },
    )
    return item


def flag_exception(event: Event, deliverable, reason: str) -> None:
    """Billable work nobody agreed to: a ticket through the owner map (once per deliverable),
    when the organization has billing configured and wants these flagged."""
    from owners.models import TicketSource
    from owners.services.tickets import NoOwnerError, open_ticket

    settings = BillingSettings.objects.filter(organization=event.organization_id).first()
    if settings is None or not settings.flag_unscoped_work:
        return
    try:
        ticket, opened = open_ticket(
            event.organization,
            source=TicketSource.BILLING,
            source_key=unscoped_key(deliverable),
            title=f"Billable work without a scope agreement on {deliverable.deliverable_id}",
            event_type=event.event_type,
            deliverable=deliverable,
            context={"reason": reason, "event_id": str(event.pk)},
            at=event.occurred_at,
        )
    except NoOwnerError as exc:
        log.warning("billing exception for %s has no owner: %s", deliverable, exc)
        return
    if opened:
        BillingTicketLink.objects.create(
            organization=event.organization, ticket=ticket, event=event, deliverable=deliverable
        )
