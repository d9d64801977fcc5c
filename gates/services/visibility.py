"""What people see of gates: pass rates, and evaluations in the trail and the portal."""

from datetime import datetime

from django.db.models import Count, Prefetch, Q
from django.http import HttpResponse

from deliveries.models import Deliverable
from gates.api.serializers import EvaluationSerializer
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


def evaluation_data(e: GateEvaluation) -> dict:
    """An evaluation as the API shows it, in the trail and on its own: one serializer."""
    return EvaluationSerializer(e).data


def trail_section(deliverable: Deliverable) -> list[dict]:
    """Gate evaluations for the deliverable trail API."""
    return [evaluation_data(e) for e in evaluations_for(deliverable)]


def find_artifact(organization, evaluation_id, name: str) -> Artifact | None:
    """An evaluation's artifact by name (the first, should a check ever name two alike)."""
    return (
        Artifact.objects.filter(organization=organization, evaluation_id=evaluation_id, name=name)
        .order_by("pk")
        .first()
    )


# Artifacts are made by Meshline's own checks (the screenshot difference is a PNG). Only
# images are shown in the browser; anything else is downloaded, never rendered.
INLINE_TYPES = {"image/png", "image/jpeg", "image/webp"}


def artifact_response(item: Artifact) -> HttpResponse:
    """The artifact's bytes, safe to open from the portal or fetch from the API."""
    inline = item.content_type in INLINE_TYPES
    response = HttpResponse(
        bytes(item.data), content_type=item.content_type if inline else "application/octet-stream"
    )
    filename = "".join(c if c.isalnum() or c in "._-" else "_" for c in item.name)[:100]
    disposition = "inline" if inline else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="{filename or "artifact"}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


def portal_section(request, deliverable: Deliverable) -> dict:
    return {"evaluations": list(evaluations_for(deliverable))}
