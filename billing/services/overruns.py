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

from django.db.models import Sum

from billing.models import BillableItem, BillingSettings, BillingTicketLink, ScopeAgreement
from billing.services import agreements
from billing.services.errors import BillingError
from billing.services.money import line_amount
from deliveries.models import Event, EventSource, ProcessingStatus
from deliveries.services import trail
from meshline import bulk

log = logging.getLogger(__name__)


def _count(events) -> Decimal:
    return Decimal(events.count())


def _one(event) -> Decimal:
    return Decimal(1)


def _logged_hours(value) -> Decimal:
    # Decimal(str(float)) keeps what the submitter wrote (1.1 stays 1.1).
    return Decimal(str(value)) if value else Decimal("0")


def _hours(events) -> Decimal:
    return sum(
        (_logged_hours(h) for h in events.values_list("payload__hours", flat=True)),
        Decimal("0"),
    )


def _event_hours(event) -> Decimal:
    payload = event.payload if isinstance(event.payload, dict) else {}
    return _logged_hours(payload.get("hours"))


@dataclass(frozen=True)
class Clause:
    """A limit an event type counts against, how usage is measured (over a set of events,
    and for one event: the two must agree), its default unit."""

    name: str
    event_type: str
    unit: str
    measure: Callable
    measure_one: Callable


CLAUSES = [
    Clause("revisions", "change.requested", "revision", _count, _one),
    Clause("assets", "asset.uploaded", "asset", _count, _one),
    Clause("approved_assets", "asset.approved", "approved asset", _count, _one),
    Clause("pages", "page.published", "page", _count, _one),
    Clause("hours", "time.logged", "hour", _hours, _event_hours),
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
    work = []
    for event, deliverable in billable:
        agreement = agreements.pick_in_force(candidates, deliverable, event.occurred_at)
        if agreement is None:
            unscoped.flag(event, deliverable)
        work.append((event, deliverable, agreement))
    unscoped.open_tickets()
    if any(agreement is not None for _e, _d, agreement in work):
        Detection(batch.organization, work).run()


def _record_scope(event: Event, deliverable) -> None:
    try:
        agreements.agreement_from_event(event, deliverable)
    except BillingError as exc:
        log.warning("scope.accepted %s not recorded: %s", event.pk, exc)
        flag_exception(event, deliverable, f"The scope could not be recorded: {exc}")


class _Unscoped:
    """Billable work with no agreement in force: one exception per deliverable, the
    batch's tickets opened together at the end (``open_tickets``)."""

    def __init__(self, organization, deliverables):
        self.organization = organization
        self.deliverables = deliverables
        self.flagged: set[int] | None = None
        self.settings = None
        self.exceptions: list[tuple[Event, object, str]] = []

    def flag(self, event: Event, deliverable) -> None:
        if self.flagged is None:
            self.settings = BillingSettings.objects.filter(organization=self.organization).first()
            self.flagged = self._flagged_before()
        if deliverable.pk in self.flagged:
            return
        self.flagged.add(deliverable.pk)
        if self.settings is not None and self.settings.flag_unscoped_work:
            self.exceptions.append(
                (event, deliverable, "No scope agreement was in force when this happened.")
            )

    def open_tickets(self) -> None:
        _open_exceptions(self.organization, self.exceptions)

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


def _governed(agreement: ScopeAgreement, event_type: str, end=None):
    events = Event.objects.filter(
        organization=agreement.organization_id,
        client=agreement.client_id,
        event_type=event_type,
        occurred_at__gte=agreement.valid_from,
    ).exclude(source=EventSource.MESHLINE)
    if agreement.deliverable_id:
        events = events.filter(deliverable=agreement.deliverable_id)
    if end is not None:
        events = events.filter(occurred_at__lt=end)
    return events


class Detection:
    """Propose what a batch's billable work pushed beyond the agreements in force.

    ``work`` is the batch's billable events in processing order, each with the agreement
    in force when it happened (None: unscoped, still counted). Each clause is counted as
    if the events were processed one by one: the processed events its agreement governs,
    plus the batch's events handled so far; the excess over what is already proposed for
    the clause becomes an item named after the event that tipped it. The agreements are
    locked for the batch (in key order), which serialises detection per agreement across
    workers; the counts, the proposed sums and the items' keys are read once per batch,
    and the new items, their events and their ``billing.item_proposed`` entries are
    written in three INSERTs.
    """

    def __init__(self, organization, work):
        self.organization = organization
        self.work = work
        picked = sorted({agreement.pk for _e, _d, agreement in work if agreement is not None})
        # Locked, and read again under the lock: what the batch counts against is current.
        self.agreements = {
            agreement.pk: agreement
            for agreement in ScopeAgreement.objects.select_for_update()
            .filter(organization=organization, pk__in=picked)
            .order_by("pk")
        }
        self.ends = {pk: agreements.window_end(a) for pk, a in self.agreements.items()}
        self.clauses = {
            (agreement.pk, clause.name): clause
            for agreement in self.agreements.values()
            for clause in CLAUSES
            if clause.name in agreement.limits
            and any(e.event_type == clause.event_type for e, _d, _a in work)
        }
        self.usage = {
            (pk, name): clause.measure(
                _governed(self.agreements[pk], clause.event_type, self.ends[pk]).filter(
                    processing__status=ProcessingStatus.PROCESSED
                )
            )
            for (pk, name), clause in self.clauses.items()
        }
        self.proposed = dict.fromkeys(self.clauses, Decimal("0"))
        for pk, name, quantity in (
            BillableItem.objects.filter(organization=organization, agreement__in=picked)
            .values_list("agreement_id", "clause")
            .annotate(q=Sum("proposed_quantity"))
        ):
            if (pk, name) in self.proposed:
                self.proposed[(pk, name)] = quantity or Decimal("0")
        keys = [
            _item_key(agreement, clause, event)
            for event, _d, agreement in work
            if agreement is not None
            for clause in [*(c.name for c in CLAUSES), "asset_size_mb"]
        ]
        self.taken = set(
            BillableItem.objects.filter(
                organization=organization, idempotency_key__in=keys
            ).values_list("idempotency_key", flat=True)
        )
        self.items: list[tuple[BillableItem, Event, dict]] = []

    def run(self) -> list[BillableItem]:
        for event, deliverable, agreement in self.work:
            for (pk, name), clause in self.clauses.items():
                if clause.event_type == event.event_type and self._governs(pk, event):
                    self.usage[(pk, name)] += clause.measure_one(event)
            if agreement is not None:
                self._detect(self.agreements[agreement.pk], event, deliverable)
        return self._save()

    def _governs(self, pk, event: Event) -> bool:
        agreement, end = self.agreements[pk], self.ends[pk]
        return (
            event.client_id == agreement.client_id
            and (not agreement.deliverable_id or event.deliverable_id == agreement.deliverable_id)
            and event.occurred_at >= agreement.valid_from
            and (end is None or event.occurred_at < end)
        )

    def _detect(self, agreement: ScopeAgreement, event: Event, deliverable) -> None:
        for clause in CLAUSES:
            pair = (agreement.pk, clause.name)
            if clause.event_type != event.event_type or pair not in self.clauses:
                continue
            limit = Decimal(str(agreement.limits[clause.name]))
            excess = self.usage[pair] - limit
            proposed = self.proposed[pair]
            if excess > proposed:
                evidence = {
                    "limit": str(limit),
                    "used": str(limit + excess),
                    "already_proposed": str(proposed),
                }
                added = self._propose(
                    agreement,
                    event,
                    deliverable,
                    clause.name,
                    clause.unit,
                    excess - proposed,
                    evidence,
                )
                self.proposed[pair] = proposed + added
        if event.event_type == "asset.uploaded" and "asset_size_mb" in agreement.limits:
            size_mb = Decimal(str(event.payload.get("size_bytes") or 0)) / Decimal(1_000_000)
            limit = Decimal(str(agreement.limits["asset_size_mb"]))
            if size_mb > limit:
                evidence = {
                    "limit_mb": str(limit),
                    "size_mb": str(size_mb.quantize(Decimal("0.01"))),
                }
                self._propose(
                    agreement,
                    event,
                    deliverable,
                    "asset_size_mb",
                    "oversize asset",
                    Decimal(1),
                    evidence,
                )

    def _propose(self, agreement, event, deliverable, clause, unit, quantity, evidence):
        """The quantity proposed now (0 if this event's item exists: a replay)."""
        key = _item_key(agreement, clause, event)
        if key in self.taken:
            return Decimal("0")  # proposed when this event was processed before (a replay)
        self.taken.add(key)
        card = agreement.rates.get(clause) or {}
        rate = Decimal(card.get("rate", "0"))
        unit = card.get("unit") or unit
        quantity = quantity.quantize(Decimal("0.01"))
        item = BillableItem(
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
        self.items.append((item, event, deliverable))
        return quantity

    def _save(self) -> list[BillableItem]:
        if not self.items:
            return []
        BillableItem.objects.bulk_create([item for item, _e, _d in self.items])
        through = BillableItem.events.through
        through.objects.bulk_create(
            [through(billableitem_id=item.pk, event_id=event.pk) for item, event, _d in self.items]
        )
        trail.record_many(
            self.organization,
            [
                trail.Entry(
                    "billing.item_proposed",
                    f"billing:item:{item.pk}:proposed",
                    {
                        "item_id": str(item.pk),
                        "agreement_id": str(item.agreement.pk),
                        "agreement_digest": item.agreement.digest,
                        "clause": item.clause,
                        "quantity": str(item.quantity),
                        "amount": str(item.amount),
                        "currency": item.currency,
                        "event_ids": [str(event.pk)],
                    },
                    deliverable=deliverable,
                    occurred_at=event.occurred_at,
                )
                for item, event, deliverable in self.items
            ],
        )
        return [item for item, _e, _d in self.items]


def _item_key(agreement, clause: str, event: Event) -> str:
    return f"{agreement.pk}:{clause}:{event.pk}"


def flag_exception(event: Event, deliverable, reason: str) -> None:
    """Billable work nobody agreed to: a ticket through the owner map (once per deliverable),
    when the organization has billing configured and wants these flagged."""
    settings = BillingSettings.objects.filter(organization=event.organization_id).first()
    if settings is None or not settings.flag_unscoped_work:
        return
    _open_exceptions(event.organization, [(event, deliverable, reason)])


def _open_exceptions(organization, exceptions: list[tuple[Event, object, str]]) -> None:
    """The exception tickets of (event, deliverable, reason) triples, opened together, each
    at its event's time, and linked to the event that opened it."""
    from owners.models import TicketSource
    from owners.services.tickets import TicketRequest, open_tickets

    if not exceptions:
        return
    opened = open_tickets(
        organization,
        [
            TicketRequest(
                source=TicketSource.BILLING,
                source_key=unscoped_key(deliverable),
                title=f"Billable work without a scope agreement on {deliverable.deliverable_id}",
                event_type=event.event_type,
                deliverable=deliverable,
                context={"reason": reason, "event_id": str(event.pk)},
                at=event.occurred_at,
            )
            for event, deliverable, reason in exceptions
        ],
    )
    links = []
    for (event, deliverable, _reason), result in zip(exceptions, opened, strict=True):
        if result.ticket is None:
            log.warning("billing exception for %s has no owner: %s", deliverable, result.no_owner)
        elif result.created:
            links.append(
                BillingTicketLink(
                    organization=organization,
                    ticket=result.ticket,
                    event=event,
                    deliverable=deliverable,
                )
            )
    bulk.insert(links)
