"""Finance's decisions on proposed items: approve (twice above the threshold, by two
different people), reject with a reason, adjust with a reason. Each step is in the trail."""

from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from billing.models import OPEN_ITEM_STATUSES, BillableItem, BillingSettings, ItemStatus
from billing.services.errors import BillingError
from billing.services.money import line_amount, parse_decimal
from deliveries.services import trail
from owners.services.tickets import Actor


def actor_for_api_key(api_key) -> Actor:
    """A key acts as the person who issued it, so one person cannot be both approvers
    by using the portal once and their key once."""
    if api_key.created_by_id is not None:
        return Actor.for_user(api_key.created_by)
    return Actor.for_api_key(api_key)


def _locked(item: BillableItem) -> BillableItem:
    return (
        BillableItem.objects.select_for_update(of=("self",))
        .select_related("deliverable")
        .get(pk=item.pk)
    )


def _require_open(item: BillableItem) -> None:
    if item.invoice_id is not None or item.status == ItemStatus.INVOICED:
        raise BillingError("already_invoiced", "This item is on an invoice.", conflict=True)
    if item.status not in OPEN_ITEM_STATUSES:
        raise BillingError(
            "already_decided",
            f"This item is already {item.get_status_display().lower()}.",
            conflict=True,
        )


def _record(item: BillableItem, step: str, actor: Actor, at: datetime, **payload) -> None:
    trail.record(
        item.organization,
        f"billing.item_{step}",
        key=f"billing:item:{item.pk}:{step}:{len(item.adjustments)}:{item.status}",
        deliverable=item.deliverable,
        actor_role=actor.role,
        actor_id=actor.id,
        occurred_at=at,
        payload={
            "item_id": str(item.pk),
            "status": item.status,
            "amount": str(item.amount),
            "currency": item.currency,
            **payload,
        },
    )


def approve(item: BillableItem, actor: Actor, at: datetime | None = None) -> BillableItem:
    """Approve; above the organization's threshold the first approval waits for a second
    from someone else."""
    at = at or timezone.now()
    with transaction.atomic():
        item = _locked(item)
        _require_open(item)
        threshold = BillingSettings.for_organization(item.organization).second_approval_above
        needs_two = item.amount > threshold
        if item.status == ItemStatus.AWAITING_SECOND:
            if actor.id == item.first_approver:
                raise BillingError(
                    "same_approver",
                    "The second approval must come from someone other than the first approver.",
                    conflict=True,
                )
            item.approver, item.approved_at, item.status = actor.id, at, ItemStatus.APPROVED
        elif needs_two:
            item.first_approver, item.first_approved_at = actor.id, at
            item.status = ItemStatus.AWAITING_SECOND
        else:
            item.approver, item.approved_at, item.status = actor.id, at, ItemStatus.APPROVED
        item.save()
        _record(item, "approved", actor, at, threshold=str(threshold))
    return item


def reject(item: BillableItem, actor: Actor, reason: str, at: datetime | None = None):
    """Reject with a reason (kept on the item and in the trail)."""
    at = at or timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise BillingError("required", "Say why the item is rejected.", "reason")
    with transaction.atomic():
        item = _locked(item)
        _require_open(item)
        item.status, item.rejected_by, item.rejection_reason = ItemStatus.REJECTED, actor.id, reason
        item.save()
        _record(item, "rejected", actor, at, reason=reason)
    return item


def adjust(
    item: BillableItem,
    actor: Actor,
    *,
    quantity,
    reason: str,
    rate=None,
    at: datetime | None = None,
) -> BillableItem:
    """Change quantity (and optionally rate) with a reason; any first approval is void,
    since it approved another amount."""
    at = at or timezone.now()
    reason = (reason or "").strip()
    if not reason:
        raise BillingError("required", "Say why the item is adjusted.", "reason")
    quantity = parse_decimal(quantity, "quantity")
    with transaction.atomic():
        item = _locked(item)
        _require_open(item)
        new_rate = (
            item.rate
            if rate in (None, "")
            else parse_decimal(rate, "rate", maximum=Decimal("1000000"))
        )
        before = {
            "quantity": str(item.quantity),
            "rate": str(item.rate),
            "amount": str(item.amount),
        }
        item.quantity, item.rate = quantity, new_rate
        item.amount = line_amount(quantity, new_rate)
        item.status, item.first_approver, item.first_approved_at = ItemStatus.PROPOSED, "", None
        item.adjustments = [
            *item.adjustments,
            {
                "by": actor.id,
                "at": at.isoformat(),
                "reason": reason,
                "before": before,
                "after": {
                    "quantity": str(quantity),
                    "rate": str(new_rate),
                    "amount": str(item.amount),
                },
            },
        ]
        item.save()
        _record(item, "adjusted", actor, at, reason=reason, before=before)
    return item
