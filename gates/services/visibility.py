"""What people see of gates: pass rates, and evaluations in the trail and the portal."""

from datetime import datetime

from django.db.models import Count, Prefetch, Q

from deliveries.models import Deliverable
from gates.models import (
    Artifact,
    GateEvaluation,
    Outcome,
)


def pass_rates(organization, since: datetime) -> dict[int, dict]:
    """Per gate: evaluations and failures since ``since`` (monitor counts as a failure)."""
    rows = (
        GateEvaluation.objects.filter(organization=organization, evaluated_at__gte=since)
        .exclude(outcome=Outcome.ERROR)
        .values("gate")
        .annotate(total=Count("pk"), failed=Count("pk", filter=~Q(outcome=Outcome.PASS)))
    )
    return {
        row["gate"]: {
            "total": row["total"],
            "failed": row["failed"],
            "pass_rate": (row["total"] - row["failed"]) / row["total"] if row["total"] else None,
        }
        for row in rows
    }


def evaluations_for(deliverable: Deliverable):
    return (
        GateEvaluation.objects.filter(
            organization=deliverable.organization_id, deliverable=deliverable
        )
        .select_related("gate")
        # Names and links only: the image bytes are served by their own view.
        .prefetch_related(Prefetch("artifacts", queryset=Artifact.objects.defer("data")))
        .order_by("evaluated_at")
    )


def trail_section(deliverable: Deliverable) -> list[dict]:
    """Gate evaluations for the deliverable trail API."""
    return [
        {
            "id": str(e.pk),
            "gate": e.gate.slug,
            "check": e.gate.check_name,
            "event_id": str(e.event_id),
            "outcome": e.outcome,
            "mode": e.mode,
            "reasons": e.reasons,
            "billing_flag": e.billing_flag,
            "duration_ms": e.duration_ms,
            "evaluated_at": e.evaluated_at.isoformat(),
            "ticket_id": str(e.ticket_id) if e.ticket_id else None,
            "artifacts": [a.name for a in e.artifacts.all()],
        }
        for e in evaluations_for(deliverable)
    ]


def portal_section(request, deliverable: Deliverable) -> dict:
    return {"evaluations": list(evaluations_for(deliverable))}
