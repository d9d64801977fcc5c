"""Portal pages of the gates app."""

from datetime import timedelta

from django.http import Http404
from django.shortcuts import render
from django.utils import timezone

from gates import services
from gates.filters import GateFilter
from gates.models import Gate


def gate_list(request, org_slug):
    """Each gate's mode and pass rate over 24 hours and 7 days."""
    now = timezone.now()
    filterset = GateFilter(
        request.GET, queryset=Gate.objects.filter(organization=request.organization)
    )
    rates_24h = services.pass_rates(request.organization, now - timedelta(hours=24))
    rates_7d = services.pass_rates(request.organization, now - timedelta(days=7))
    gates = [
        {"gate": gate, "day": rates_24h.get(gate.pk, {}), "week": rates_7d.get(gate.pk, {})}
        for gate in filterset.qs.order_by("name")
    ]
    return render(request, "gates/gate_list.html", {"gates": gates, "filter": filterset})


def artifact(request, org_slug, evaluation_id, name: str):
    """A failing artifact of an evaluation, e.g. the screenshot difference image.

    Addressed by the evaluation's UUID and the artifact's name, never by a sequential id
    that would tell one tenant how many artifacts all of them have.
    """
    item = services.find_artifact(request.organization, evaluation_id, name)
    if item is None:
        raise Http404("No such artifact.")
    return services.artifact_response(item)


def gates_panel(request, scope) -> dict:
    from django.db.models import Count, Q
    from django.urls import reverse

    from gates.models import GateEvaluation, Outcome

    evaluations = GateEvaluation.objects.filter(
        organization=scope.organization, evaluated_at__gte=scope.since
    )
    if scope.client:
        # Naming the deliverables' organization lets the join use deliverable_client_state.
        evaluations = evaluations.filter(
            deliverable__organization=scope.organization, deliverable__client=scope.client
        )

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
