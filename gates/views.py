"""Portal pages of the gates app."""

from datetime import timedelta

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from gates import services
from gates.models import Artifact, Gate

# Artifacts are made by Meshline's own checks (the screenshot difference is a PNG). Only
# images are shown in the browser; anything else is downloaded, never rendered.
INLINE_TYPES = {"image/png", "image/jpeg", "image/webp"}


def gate_list(request, org_slug):
    """Each gate's mode and pass rate over 24 hours and 7 days."""
    now = timezone.now()
    rates_24h = services.pass_rates(request.organization, now - timedelta(hours=24))
    rates_7d = services.pass_rates(request.organization, now - timedelta(days=7))
    gates = [
        {"gate": gate, "day": rates_24h.get(gate.pk, {}), "week": rates_7d.get(gate.pk, {})}
        for gate in Gate.objects.filter(organization=request.organization).order_by("name")
    ]
    return render(request, "gates/gate_list.html", {"gates": gates})


def artifact(request, org_slug, evaluation_id, name: str):
    """A failing artifact of an evaluation, e.g. the screenshot difference image.

    Addressed by the evaluation's UUID and the artifact's name, never by a sequential id
    that would tell one tenant how many artifacts all of them have.
    """
    item = (
        Artifact.objects.filter(
            organization=request.organization, evaluation_id=evaluation_id, name=name
        )
        .order_by("pk")
        .first()
    )
    if item is None:
        raise Http404("No such artifact.")
    inline = item.content_type in INLINE_TYPES
    response = HttpResponse(
        bytes(item.data), content_type=item.content_type if inline else "application/octet-stream"
    )
    disposition = "inline" if inline else "attachment"
    response["Content-Disposition"] = f'{disposition}; filename="{_safe_filename(item.name)}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox"
    response["Cache-Control"] = "private, max-age=3600"
    return response


def _safe_filename(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:100] or "artifact"


def gates_panel(request, scope) -> dict:
    from django.db.models import Count, Q
    from django.urls import reverse

    from gates.models import GateEvaluation, Outcome

    evaluations = GateEvaluation.objects.filter(
        organization=scope.organization, evaluated_at__gte=scope.since
    )
    if scope.client:
        evaluations = evaluations.filter(deliverable__client=scope.client)
    totals = evaluations.aggregate(
        total=Count("pk"),
        passed=Count("pk", filter=Q(outcome=Outcome.PASS)),
        failed=Count("pk", filter=Q(outcome=Outcome.FAIL)),
        monitored=Count("pk", filter=Q(outcome=Outcome.MONITOR)),
        errors=Count("pk", filter=Q(outcome=Outcome.ERROR)),
    )
    decided = totals["passed"] + totals["failed"] + totals["monitored"]
    return {
        **totals,
        "pass_rate": round(100 * totals["passed"] / decided, 1) if decided else None,
        "gates_url": reverse("gate-list", args=[scope.organization.slug]),
    }
