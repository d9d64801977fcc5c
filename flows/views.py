"""Portal pages of the flows app: catalog, one flow (funnel, runs, propose a change),
changes (diff, dry run, approve / reject / roll back)."""

from urllib.parse import quote

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.dateparse import parse_datetime
from django.views.decorators.http import require_POST

from deliveries.models import Client
from flows.catalog import TEMPLATES
from flows.filters import ChangeFilter, FlowRunFilter
from flows.forms import ApprovalPolicyForm, DecisionForm, FlowChangeForm, IncidentForm
from flows.models import (
    ApprovalPolicy,
    AssuranceCheck,
    Change,
    ChangeStatus,
    Flow,
    FlowRun,
    Incident,
    Review,
)
from flows.services import assurance, changes, incidents, measures, runs
from meshline.ids import uuid_or_404
from meshline.models import Role

PAGE_SIZE = 50


def _require_admin(request) -> None:
    if request.membership.role != Role.ADMIN:
        raise PermissionDenied("Only admins change flows.")


def flow_list(request, org_slug):
    """The catalog: every flow with its measures, and templates not installed yet."""
    flows = list(
        Flow.objects.filter(organization=request.organization).select_related("owner_role")
    )
    by_flow = measures.per_flow(request.organization)
    installed = {flow.template for flow in flows}
    return render(
        request,
        "flows/flow_list.html",
        {
            "rows": [(flow, by_flow.get(flow.pk, measures.Measures())) for flow in flows],
            "templates": {k: v for k, v in TEMPLATES.items() if k not in installed},
            "is_admin": request.membership.role == Role.ADMIN,
        },
    )


@require_POST
def flow_install(request, org_slug):
    _require_admin(request)
    template = request.POST.get("template", "")
    if template not in TEMPLATES:
        messages.error(request, f"No template named '{template}'.")
        return redirect("flow-list", org_slug=org_slug)
    try:
        flow = runs.install(request.organization, template)
    except IntegrityError:
        messages.error(request, "A flow with that slug exists already.")
        return redirect("flow-list", org_slug=org_slug)
    messages.success(request, f"Installed {flow.name}.")
    return redirect("flow-detail", org_slug=org_slug, flow_slug=flow.slug)


def _flow(request, flow_slug) -> Flow:
    return get_object_or_404(
        Flow.objects.select_related("owner_role"), organization=request.organization, slug=flow_slug
    )


def flow_detail(request, org_slug, flow_slug, form=None, status=200):
    """One flow: measures, funnel (each step links to its runs), runs, propose a change."""
    flow = _flow(request, flow_slug)
    filterset = FlowRunFilter(
        request.GET,
        queryset=FlowRun.objects.filter(organization=request.organization, flow=flow)
        .select_related("deliverable", "client")
        .order_by("-started_at"),
    )
    page = Paginator(filterset.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    runs_url = reverse("flow-detail", args=[org_slug, flow.slug])
    # ?client=: the measures and the funnel of that client's runs, like the list below.
    client = None
    if request.GET.get("client"):
        client = Client.objects.filter(
            organization=request.organization, client_id=request.GET["client"]
        ).first()
    return render(
        request,
        "flows/flow_detail.html",
        {
            "flow": flow,
            "measures": measures.per_flow(request.organization, client).get(
                flow.pk, measures.Measures()
            ),
            "funnel": measures.funnel(flow, client),
            "client": client,
            "client_q": f"&client={quote(client.client_id)}" if client else "",
            "filter": filterset,
            "page": page,
            "runs_url": runs_url,
            "is_admin": request.membership.role == Role.ADMIN,
            "form": form
            or FlowChangeForm(
                initial={
                    "owner_role": flow.owner_role,
                    "due_minutes": flow.due_minutes,
                    "due_kind": flow.due_kind,
                    "runbook": flow.runbook,
                },
                organization=request.organization,
            ),
            "pending": Change.objects.filter(
                organization=request.organization,
                kind="flow",
                target_id=flow.pk,
                status=ChangeStatus.PROPOSED,
            ),
        },
        status=status,
    )


@require_POST
def flow_propose(request, org_slug, flow_slug):
    _require_admin(request)
    flow = _flow(request, flow_slug)
    form = FlowChangeForm(request.POST, organization=request.organization)
    if not form.is_valid():
        return flow_detail(request, org_slug, flow_slug, form=form, status=400)
    data = dict(form.cleaned_data)
    reason = data.pop("reason")
    data["owner_role"] = data["owner_role"].pk if data["owner_role"] else None
    proposed = {k: v for k, v in data.items() if changes.values(flow, [k])[k] != v}
    try:
        change = changes.propose(flow, proposed, request.user, reason=reason)
    except changes.ChangeError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return flow_detail(request, org_slug, flow_slug, form=form, status=400)
    if change.status == ChangeStatus.APPLIED:
        messages.success(request, "Applied (this flow needs no second approval).")
    else:
        messages.success(request, "Proposed: a second admin must approve it before it applies.")
    return redirect("change-detail", org_slug=org_slug, change_id=change.pk)


def change_list(request, org_slug, policy_form=None, status=200):
    """Every proposed change (filterable), and the approval policy (admins edit it)."""
    filterset = ChangeFilter(
        request.GET,
        queryset=Change.objects.filter(organization=request.organization).select_related(
            "proposed_by", "decided_by"
        ),
    )
    page = Paginator(filterset.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    policy = changes.policy_of(request.organization.pk)
    context = {
        "filter": filterset,
        "page": page,
        "policy": policy,
        "policy_form": policy_form or ApprovalPolicyForm(instance=policy),
        "is_admin": request.membership.role == Role.ADMIN,
    }
    return render(request, "flows/change_list.html", context, status=status)


@require_POST
def approval_policy(request, org_slug):
    """Propose the approval policy as edited: turning requirements on applies at once,
    lifting one waits for a second admin."""
    _require_admin(request)
    policy = ApprovalPolicy.for_organization(request.organization)
    form = ApprovalPolicyForm(
        request.POST,
        instance=ApprovalPolicy(
            **{name: getattr(policy, name) for name in ApprovalPolicy.REQUIREMENTS}
        ),
    )
    if not form.is_valid():
        return change_list(request, org_slug, policy_form=form, status=400)
    edited = {
        name: form.cleaned_data[name]
        for name in ApprovalPolicy.REQUIREMENTS
        if form.cleaned_data[name] != getattr(policy, name)
    }
    try:
        change = changes.propose(policy, edited, request.user, reason=form.cleaned_data["reason"])
    except changes.ChangeError as exc:
        form.add_error(None, str(exc))
        return change_list(request, org_slug, policy_form=form, status=400)
    if change.status == ChangeStatus.APPLIED:
        messages.success(request, "Applied: adding a requirement needs no second approval.")
    else:
        messages.success(
            request, "Proposed: lifting a requirement waits for a second admin's approval."
        )
    return redirect("change-detail", org_slug=org_slug, change_id=change.pk)


def _change(request, change_id) -> Change:
    return get_object_or_404(
        Change.objects.select_related("proposed_by", "decided_by", "rolled_back_by"),
        organization=request.organization,
        pk=uuid_or_404(change_id),
    )


def change_detail(request, org_slug, change_id, form=None, status=200):
    change = _change(request, change_id)
    return render(
        request,
        "flows/change_detail.html",
        {
            "change": change,
            "form": form or DecisionForm(),
            "is_admin": request.membership.role == Role.ADMIN,
            "is_proposer": change.proposed_by_id == request.user.pk,
        },
        status=status,
    )


def _decide(action):
    @require_POST
    def view(request, org_slug, change_id):
        _require_admin(request)
        change = _change(request, change_id)
        form = DecisionForm(request.POST)
        if not form.is_valid():  # pragma: no cover - every field is optional
            return change_detail(request, org_slug, change_id, form=form, status=400)
        try:
            if action == "rollback":
                changes.rollback(change, request.user)
            else:
                getattr(changes, action)(change, request.user, note=form.cleaned_data["note"])
        except changes.ChangeError as exc:
            form.add_error(None, str(exc))
            return change_detail(request, org_slug, change_id, form=form, status=400)
        messages.success(
            request,
            {"approve": "Approved and applied.", "reject": "Rejected.", "rollback": "Rolled back."}[
                action
            ],
        )
        return redirect("change-detail", org_slug=org_slug, change_id=change.pk)

    view.__name__ = f"change_{action}"
    return view


change_approve = _decide("approve")
change_reject = _decide("reject")
change_rollback = _decide("rollback")


def flows_panel(request, scope) -> dict:
    """Dashboard: flow completion rate and mean time to outcome for the scope."""
    total = measures.overall(scope.organization, scope.client, scope.since)
    return {
        "measures": total,
        "flows_url": reverse("flow-list", args=[scope.organization.slug]),
    }


def incident_list(request, org_slug, form=None, status=200):
    """Incidents, newest first; admins declare one (pausing non-essential flows) or end it."""
    rows = Incident.objects.filter(organization=request.organization).select_related(
        "declared_by", "ended_by"
    )
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "flows/incident_list.html",
        {
            "page": page,
            "form": form or IncidentForm(),
            "is_admin": request.membership.role == Role.ADMIN,
            "open_incident": Incident.objects.filter(
                organization=request.organization, ended_at__isnull=True
            ).first(),
        },
        status=status,
    )


@require_POST
def incident_declare(request, org_slug):
    _require_admin(request)
    form = IncidentForm(request.POST)
    if not form.is_valid():
        return incident_list(request, org_slug, form=form, status=400)
    try:
        incident = incidents.declare(request.organization, request.user, form.cleaned_data["title"])
    except changes.ChangeError as exc:
        form.add_error(exc.field if exc.field in form.fields else None, str(exc))
        return incident_list(request, org_slug, form=form, status=400)
    messages.warning(request, f"Incident declared: {incident.paused_runs.count()} run(s) paused.")
    return redirect("incident-list", org_slug=org_slug)


@require_POST
def incident_end(request, org_slug, incident_id):
    _require_admin(request)
    incident = get_object_or_404(
        Incident, organization=request.organization, pk=uuid_or_404(incident_id)
    )
    try:
        incidents.end(incident, request.user)
    except changes.ChangeError as exc:
        messages.error(request, str(exc))
        return redirect("incident-list", org_slug=org_slug)
    messages.success(request, "Incident ended: paused runs resumed with the time credited.")
    return redirect("incident-list", org_slug=org_slug)


# --- reviews and assurance (on each person's queue) ---------------------------------------

STATUS_LABELS = {"breached": "Breached", "due_soon": "Due within a day", "on_track": "On track"}


def queue_section(request, now) -> dict:
    """The reviews a person's roles owe and their assurance check of the week."""
    organization = request.organization
    reviews = assurance.due_for(organization, request.user, now)
    slugs = dict(
        Flow.objects.filter(
            organization=organization, pk__in=[r.target_id for r in reviews if r.kind == "flow"]
        ).values_list("pk", "slug")
    )
    for review in reviews:
        if review.kind == "flow" and review.target_id in slugs:
            review.link = reverse("flow-detail", args=[organization.slug, slugs[review.target_id]])
    check = assurance.current_check(organization, request.user, now)
    items = [
        {
            **item,
            "status_label": STATUS_LABELS.get(item["status"], item["status"]),
            "resolve_by": parse_datetime(item["resolve_due_at"])
            if item["resolve_due_at"]
            else None,
        }
        for item in (check.items if check else [])
    ]
    return {"reviews": reviews, "check": check, "items": items, "organization": organization}


@require_POST
def review_complete(request, org_slug, review_id: int):
    review = get_object_or_404(Review, organization=request.organization, pk=review_id)
    note = request.POST.get("note", "").strip()[:2000]
    assurance.complete(review, request.user, note=note)
    messages.success(
        request, f"Reviewed: {review.target_label}. Due again in {review.interval_days} days."
    )
    return redirect("my-queue", org_slug=org_slug)


@require_POST
def assurance_confirm(request, org_slug, check_id):
    check = get_object_or_404(
        AssuranceCheck, organization=request.organization, pk=uuid_or_404(check_id)
    )
    ticket = request.POST.get("ticket")
    check = assurance.confirm(check, request.user, ticket_ids=[ticket] if ticket else None)
    if check.confirmed_at:
        messages.success(request, "Assurance confirmed for this week.")
    else:
        messages.success(request, f"Confirmed; {len(check.pending_items)} item(s) left.")
    return redirect("my-queue", org_slug=org_slug)
