"""Admin of the flows app. Edits of governed rows (flows with billing, privacy or SLA flags,
owner rules, gates in enforce mode, billing settings, escalation policies, the approval
policy itself, as the organization's approval policy says) become proposals here instead of
saves: four-eyes holds in the admin too. A governed row cannot be added live or deleted
while it acts: it is created inactive (a gate in monitor mode), and switching it on, or
off before deleting it, is a proposal."""

from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from billing.admin import BillingSettingsAdmin
from billing.models import BillingSettings
from flows.models import (
    ApprovalPolicy,
    AssuranceCheck,
    Change,
    Flow,
    FlowRun,
    Incident,
    IncidentRule,
    Review,
)
from flows.services import changes, policy_steps
from gates.admin import GateAdmin
from gates.models import Gate, GateMode
from meshline.admin import ReadOnlyTenantAdmin, TenantAdmin, TenantHistoryAdmin
from owners.admin import EscalationPolicyAdmin, OwnerRuleAdmin
from owners.models import EscalationPolicy, OwnerRule


def _acting(obj) -> bool:
    """Whether a governed row is switched on: active, or a gate not off."""
    if isinstance(obj, Gate):
        return obj.mode != GateMode.OFF
    return getattr(obj, "is_active", True)


def _propose(request, stored, edited: dict) -> None:
    """Propose an admin's edit of a governed row and say so; nothing is saved."""
    try:
        proposal = changes.propose(stored, edited, request.user, reason="Edited in the admin")
    except changes.ChangeError as exc:
        messages.error(request, f"Not saved: {exc}")
        return None
    url = reverse("change-detail", args=[stored.organization.slug, proposal.pk])
    messages.warning(
        request,
        format_html(
            'Not applied yet: <a href="{}">proposed</a>; a second admin must approve it.', url
        ),
    )
    return None


class GovernedAdminMixin:
    """``save_model`` for an existing governed row proposes the edit instead of saving it;
    a new one is saved switched off; one that acts cannot be deleted (nor, in a bulk
    delete, anything selected with it: Django's action checks each object)."""

    def _guarded(self, obj) -> bool:
        return changes.needs_approval(obj, obj) and _acting(obj)

    def has_delete_permission(self, request, obj=None):
        if obj is not None and self._guarded(obj):
            return False
        return super().has_delete_permission(request, obj)

    def _add_switched_off(self, request, obj, form) -> None:
        if isinstance(obj, Gate):
            obj.mode, what = GateMode.MONITOR, "in monitor mode"
        else:
            obj.is_active, what = False, "inactive"
        super().save_model(request, obj, form, False)
        messages.warning(
            request,
            f"Created {what}: it is governed, so switching it on is a change a second admin "
            "approves (edit it to propose that).",
        )

    def save_model(self, request, obj, form, change):
        if not change:
            if self._guarded(obj) and (isinstance(obj, Gate) or hasattr(obj, "is_active")):
                return self._add_switched_off(request, obj, form)
            return super().save_model(request, obj, form, change)
        stored = type(obj).objects.get(pk=obj.pk)
        names = changes.FIELDS[changes.kind_of(obj)]
        edited = {
            name: value
            for name, value in changes.values(obj, names).items()
            if changes.values(stored, [name])[name] != value
        }
        governed = changes.needs_approval(stored, obj)
        if not governed:
            return super().save_model(request, obj, form, change)
        if not edited:
            return None
        return _propose(request, stored, edited)


@admin.register(Flow)
class FlowAdmin(GovernedAdminMixin, TenantHistoryAdmin):
    list_display = [
        "name",
        "trigger_event_type",
        "outcome_event_type",
        "owner_role",
        "affects_billing",
        "affects_privacy",
        "affects_client_sla",
        "essential",
        "is_active",
        "organization",
    ]
    list_filter = ["is_active", "affects_billing", "affects_privacy", "affects_client_sla"]
    list_select_related = ["owner_role", "organization"]


@admin.register(FlowRun)
class FlowRunAdmin(ReadOnlyTenantAdmin):
    list_display = ["flow", "deliverable", "state", "started_at", "due_at", "breached_at"]
    list_filter = ["state"]
    list_select_related = ["flow", "deliverable"]
    deletable = False


@admin.register(Change)
class ChangeAdmin(ReadOnlyTenantAdmin):
    list_display = ["__str__", "status", "proposed_by", "proposed_at", "decided_by"]
    list_filter = ["status", "kind"]
    deletable = False


@admin.register(Incident)
class IncidentAdmin(ReadOnlyTenantAdmin):
    list_display = ["title", "started_at", "ended_at", "declared_by", "declared_by_rule"]
    deletable = False


@admin.register(IncidentRule)
class IncidentRuleAdmin(TenantHistoryAdmin):
    """Declare an incident by rule (e.g. when processing falls behind), with history."""

    list_display = ["on", "title", "enabled", "organization"]


admin.site.unregister(OwnerRule)


@admin.register(OwnerRule)
class GovernedOwnerRuleAdmin(GovernedAdminMixin, OwnerRuleAdmin):
    pass


admin.site.unregister(Gate)


@admin.register(Gate)
class GovernedGateAdmin(GovernedAdminMixin, GateAdmin):
    pass


admin.site.unregister(BillingSettings)


@admin.register(BillingSettings)
class GovernedBillingSettingsAdmin(GovernedAdminMixin, BillingSettingsAdmin):
    pass


@admin.register(ApprovalPolicy)
class ApprovalPolicyAdmin(GovernedAdminMixin, TenantHistoryAdmin):
    """Which changes wait for a second admin; lifting a requirement waits for one too."""

    list_display = ["__str__", *ApprovalPolicy.REQUIREMENTS, "organization"]


@admin.register(Review)
class ReviewAdmin(TenantAdmin):
    """Review intervals are set here; people mark reviews done on their queue."""

    list_display = ["__str__", "owner_role", "interval_days", "due_at", "last_reviewed_at"]
    list_filter = ["kind"]
    fields = ["interval_days", "due_at", "owner_role", "last_reviewed_at", "last_note"]
    readonly_fields = ["owner_role", "last_reviewed_at", "last_note"]

    def has_add_permission(self, request):
        return False


@admin.register(AssuranceCheck)
class AssuranceCheckAdmin(ReadOnlyTenantAdmin):
    list_display = ["__str__", "person", "requested_at", "confirmed_at", "escalated_at"]
    deletable = False


admin.site.unregister(EscalationPolicy)


@admin.register(EscalationPolicy)
class GovernedEscalationPolicyAdmin(EscalationPolicyAdmin):
    """An edit of a governed policy (its name, repeat and inline steps together) becomes
    one proposal; nothing is saved until a second admin approves it."""

    EDITABLE = ("name", "repeat")

    def save_model(self, request, obj, form, change):
        request._governed_policy = None
        if change:
            stored = EscalationPolicy.objects.get(pk=obj.pk)
            if changes.needs_approval(stored, obj):
                edited = {
                    name: value
                    for name, value in changes.values(obj, self.EDITABLE).items()
                    if changes.values(stored, [name])[name] != value
                }
                request._governed_policy = (stored, edited)
                return None
        return super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        governed = getattr(request, "_governed_policy", None)
        if governed is None:
            return super().save_related(request, form, formsets, change)
        stored, edited = governed
        for formset in formsets:  # not saved; the admin's change message reads these
            formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        steps = sorted(
            (
                _step(data)
                for formset in formsets
                for data in (f.cleaned_data for f in formset.forms)
                if data and not data.get("DELETE")
            ),
            key=lambda step: step["position"],
        )
        if steps != policy_steps.current(stored):
            edited[changes.STEPS] = steps
        if not edited:
            return None
        return _propose(request, stored, edited)


def _step(data: dict) -> dict:
    """An inline step form's values in the shape of EscalationStep.snapshot()."""
    return {
        "position": data["position"],
        "wait_minutes": data["wait_minutes"],
        "wait_kind": data["wait_kind"],
        "action": data["action"],
        "target_role": data["target_role"].pk if data.get("target_role") else None,
        "people": sorted(person.pk for person in data.get("people") or []),
        "webhook": data["webhook"].pk if data.get("webhook") else None,
    }
