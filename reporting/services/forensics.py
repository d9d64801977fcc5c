"""The forensic report of one deliverable: from its events to its revenue rows, every line
carrying the id of the row it comes from (event ids with digests, evaluation ids, ticket
ids, touch ids, revenue references)."""

from collections import defaultdict
from decimal import Decimal

from deliveries.models import Event
from gates import services as gates
from owners.services import tickets
from reporting.models import AttributionModel, AttributionShare, CrmTouch, SearchPerformance
from reporting.services.attribution import settings_for


def report(deliverable) -> dict:
    """The whole report as plain data: the JSON API returns it, the portal renders it."""
    organization = deliverable.organization
    settings = settings_for(organization)
    events = Event.objects.filter(organization=organization, deliverable=deliverable).order_by(
        "occurred_at", "id"
    )
    search = SearchPerformance.objects.filter(
        organization=organization, deliverable=deliverable
    ).order_by("date", "url")
    touches = CrmTouch.objects.filter(organization=organization, deliverable=deliverable)
    shares = (
        AttributionShare.objects.filter(organization=organization, deliverable=deliverable)
        .select_related("revenue", "revenue__deliverable")
        .order_by("revenue__date", "revenue__reference", "model")
    )
    revenue: dict[str, dict] = {}
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for share in shares:
        row = share.revenue
        entry = revenue.setdefault(
            row.reference,
            {
                "reference": row.reference,
                "date": row.date.isoformat(),
                "amount": str(row.amount),
                "currency": row.currency,
                "contact_id": row.contact_id,
                "event_id": str(row.event_id),
                "recorded_for": row.deliverable.deliverable_id,
                "shares": {},
            },
        )
        entry["shares"][share.model] = {
            "share": str(share.share),
            "amount": str(share.amount),
            "touches": share.touches,
        }
        totals[share.model] += share.amount
    ticket_rows = tickets.trail_section(deliverable)
    closed = {
        str(pk): (resolved_at, due)
        for pk, resolved_at, due in tickets.for_deliverable(deliverable).values_list(
            "pk", "resolved_at", "resolve_due_at"
        )
    }
    for row in ticket_rows:
        resolved_at, due = closed[row["id"]]
        row["resolved_at"] = resolved_at.isoformat() if resolved_at else None
        # SLA outcome: met if closed by its resolve deadline; None while still open.
        row["sla_met"] = None if resolved_at is None or due is None else resolved_at <= due
    return {
        "deliverable": {
            "deliverable_id": deliverable.deliverable_id,
            "title": deliverable.title,
            "client_id": deliverable.client.client_id,
            "client": deliverable.client.name,
            "type": deliverable.type,
            "state": deliverable.state,
            "url": deliverable.url,
        },
        "attribution_model": settings.attribution_model,
        "window_days": settings.window_days,
        "events": [
            {
                "id": str(e.id),
                "event_type": e.event_type,
                "occurred_at": e.occurred_at.isoformat(),
                "actor": f"{e.actor_role}:{e.actor_id}",
                "idempotency_key": e.idempotency_key,
                "correlation_id": e.correlation_id,
                "content_digest": e.content_digest,
            }
            for e in events.iterator(chunk_size=1000)
        ],
        "gate_evaluations": gates.trail_section(deliverable),
        "tickets": ticket_rows,
        "search_performance": [
            {
                "date": s.date.isoformat(),
                "site": s.site,
                "url": s.url,
                "impressions": s.impressions,
                "clicks": s.clicks,
                "ctr": round(s.ctr, 6),
                "position": s.position,
            }
            for s in search
        ],
        "crm_touches": [
            {
                "touch_id": t.touch_id,
                "touch_type": t.touch_type,
                "occurred_at": t.occurred_at.isoformat(),
                "contact_id": t.contact_id,
                "landing_url": t.landing_url,
                "utm": t.utm,
                "amount": str(t.amount) if t.amount is not None else None,
                "event_id": str(t.event_id),
            }
            for t in touches
        ],
        "revenue": list(revenue.values()),
        "attributed_revenue": {
            model: str(totals.get(model, Decimal(0)).quantize(Decimal("0.0001")))
            for model in AttributionModel.values
        },
    }
