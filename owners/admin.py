"""Tenant-aware admin for the owner map, roles, rotas, calendars and escalation policies.

Configuration is versioned (history and revert per row). The owner map's changelist has a
"Who gets this?" dry run that shows the winning rule and why, plus the map's warnings.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django_scopes import scope

from deliveries.models import DeliverableType, Tier
from meshline.admin import (
    ReadOnlyTenantAdmin,
    TenantAdmin,
    TenantChoicesMixin,
    TenantHistoryAdmin,
    administered_organizations,
    is_tenant_admin,
)
from meshline.outbound import generate_secret, mask_secret
from owners.models import (
    BacklogIncident,
    BusinessCalendar,
    ChannelKind,
    EscalationPolicy,
    EscalationStep,
    Holiday,
    Notification,
    NotificationAttempt,
    NotificationChannel,
    OwnerRole,
    OwnerRule,
    Rota,
    RotaLayer,
    RotaOverride,
    Ticket,
    WebhookEndpoint,
)
from owners.services import owner_map
from owners.services.calendars import MAX_SEED_YEARS, HolidaySeedError, seed_holidays


class TenantInline(TenantChoicesMixin, admin.TabularInline):
    """Inline rows take their parent's organization; their choice lists are scoped too.

    Permissions follow TenantAdmin: organization admins hold no Django model permissions,
    so the inline defaults would hide every inline (steps, layers, holidays) from them.
    """

    extra = 0

    def has_view_permission(self, request, obj=None):
        return is_tenant_admin(request.user)

    def has_change_permission(self, request, obj=None):
        return is_tenant_admin(request.user)

    def has_add_permission(self, request, obj=None):
        return is_tenant_admin(request.user)

    def has_delete_permission(self, request, obj=None):
        return is_tenant_admin(request.user)

    def get_formset(self, request, obj=None, **kwargs):
        formset = super().get_formset(request, obj, **kwargs)
        if "organization" in formset.form.base_fields:
            formset.form.base_fields["organization"].required = False
        return formset


class InheritOrganizationMixin:
    def save_formset(self, request, form, formset, change):
        for inline_form in formset.forms:
            if hasattr(inline_form.instance, "organization_id"):
                inline_form.instance.organization_id = form.instance.organization_id
        super().save_formset(request, form, formset, change)


@admin.register(OwnerRole)
class OwnerRoleAdmin(TenantHistoryAdmin):
    list_display = ["name", "slug", "organization"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}


class DryRunForm(forms.Form):
    organization = forms.ModelChoiceField(queryset=None)
    event_type = forms.CharField(initial="page.published")
    client_tier = forms.ChoiceField(choices=Tier.choices)
    deliverable_type = forms.ChoiceField(choices=DeliverableType.choices)

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["organization"].queryset = administered_organizations(user)


@admin.register(OwnerRule)
class OwnerRuleAdmin(TenantHistoryAdmin):
    list_display = [
        "__str__",
        "event_type",
        "client_tier",
        "deliverable_type",
        "owner_role",
        "respond_minutes",
        "resolve_minutes",
        "escalation_policy",
        "position",
        "is_active",
    ]
    list_filter = ["is_active", "client_tier", "deliverable_type"]
    list_select_related = ["owner_role", "escalation_policy"]
    change_list_template = "admin/owners/ownerrule/change_list.html"

    def get_urls(self):
        return [
            path(
                "dry-run/",
                self.admin_site.admin_view(self.dry_run_view),
                name="owners_ownerrule_dry_run",
            ),
            *super().get_urls(),
        ]

    def dry_run_view(self, request):
        """Who gets this? The winning rule for three keys, why, and the map's warnings."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = DryRunForm(request.GET or None, user=request.user)
        resolution = problems = None
        if form.is_valid():
            organization = form.cleaned_data["organization"]
            with scope(organization=organization):
                resolution = owner_map.resolve(
                    organization,
                    form.cleaned_data["event_type"],
                    form.cleaned_data["client_tier"],
                    form.cleaned_data["deliverable_type"],
                )
                problems = owner_map.warnings(organization)
        context = {
            **self.admin_site.each_context(request),
            "title": "Who gets this? (owner map dry run)",
            "form": form,
            "resolution": resolution,
            "problems": problems,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/owners/ownerrule/dry_run.html", context)


class HolidayInline(TenantInline):
    model = Holiday
    fields = ["date", "name"]


class HolidaySeedForm(forms.Form):
    """Country, region and years for the "seed public holidays" action."""

    country = forms.CharField(max_length=2, help_text="ISO code, e.g. DE")
    subdivision = forms.CharField(required=False, max_length=10, help_text="Region, e.g. BE")
    years = forms.CharField(max_length=40, help_text="e.g. 2027 or 2027-2028")

    def clean_years(self) -> list[int]:
        text = self.cleaned_data["years"].replace(" ", "")
        try:
            if "-" in text:
                first, last = (int(part) for part in text.split("-", 1))
                years = list(range(first, last + 1))
            else:
                years = [int(part) for part in text.split(",") if part]
        except ValueError:
            raise forms.ValidationError(
                "Years must be like 2027, 2027,2028 or 2027-2029."
            ) from None
        if not years or len(years) > MAX_SEED_YEARS or not all(1900 <= y <= 2100 for y in years):
            raise forms.ValidationError(f"Give 1 to {MAX_SEED_YEARS} years between 1900 and 2100.")
        return years


class HolidaySeedActionForm(ActionForm):
    """The changelist's action bar with the seeding inputs; HolidaySeedForm validates them.

    Optional here: an invalid action form makes Django drop the action as "No action selected".
    """

    country = forms.CharField(required=False, max_length=2, label="Country")
    subdivision = forms.CharField(required=False, max_length=10, label="Region")
    years = forms.CharField(required=False, max_length=40, label="Years")


@admin.register(BusinessCalendar)
class BusinessCalendarAdmin(InheritOrganizationMixin, TenantHistoryAdmin):
    list_display = ["name", "timezone", "is_default", "client", "organization"]
    inlines = [HolidayInline]
    action_form = HolidaySeedActionForm
    actions = ["seed_public_holidays"]

    @admin.action(description="Seed public holidays (country, region, years)")
    def seed_public_holidays(self, request, queryset):
        """Add the public holidays the selected calendars lack; re-running adds nothing."""
        form = HolidaySeedForm(request.POST)
        if not form.is_valid():
            errors = "; ".join(f"{name}: {' '.join(e)}" for name, e in form.errors.items())
            self.message_user(request, errors, messages.ERROR)
            return
        data = form.cleaned_data
        added = 0
        try:
            with transaction.atomic():  # all selected calendars or none
                for calendar in queryset:  # the admin's queryset: own organizations only
                    added += seed_holidays(
                        calendar, data["country"], data["subdivision"], data["years"]
                    )
        except HolidaySeedError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(
            request, f"Added {added} holidays to {len(queryset)} calendar(s).", messages.SUCCESS
        )


class EscalationStepInline(TenantInline):
    model = EscalationStep
    fields = ["position", "wait_minutes", "wait_kind", "action", "target_role", "people", "webhook"]


@admin.register(EscalationPolicy)
class EscalationPolicyAdmin(InheritOrganizationMixin, TenantHistoryAdmin):
    list_display = ["name", "repeat", "organization"]
    inlines = [EscalationStepInline]


class RotaLayerInline(TenantInline):
    model = RotaLayer
    fields = [
        "name",
        "priority",
        "frequency",
        "interval",
        "handoff_time",
        "start_date",
        "until",
        "people",
        "windows",
    ]


class RotaOverrideInline(TenantInline):
    model = RotaOverride
    fields = ["person", "start", "end", "reason"]


@admin.register(Rota)
class RotaAdmin(InheritOrganizationMixin, TenantHistoryAdmin):
    list_display = ["role", "timezone", "organization", "handoffs_recorded_until"]
    list_select_related = ["role"]
    readonly_fields = ["handoffs_recorded_until"]
    inlines = [RotaLayerInline, RotaOverrideInline]


class SigningSecretAdmin:
    """A generated signing secret: shown once, on the page after creation or rotation, then
    only masked. The page is never cached and the secret never goes into a message or the
    session."""

    actions = ["rotate_secret"]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "signing_secret"]

    @admin.display(description="Signing secret")
    def signing_secret(self, obj) -> str:
        return mask_secret(obj.secret) if obj and obj.pk else "Generated when you save."

    def save_model(self, request, obj, form, change):
        had_secret = change and bool(obj.secret)
        super().save_model(request, obj, form, change)
        # New, or an email channel turned into a webhook: the secret was just generated.
        request._meshline_new_secret = bool(obj.secret) and not had_secret

    def response_add(self, request, obj, post_url_continue=None):
        if getattr(request, "_meshline_new_secret", False):
            return self._show_secrets(request, [obj], self._change_url(obj))
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request, obj):
        if getattr(request, "_meshline_new_secret", False):
            return self._show_secrets(request, [obj], self._change_url(obj))
        return super().response_change(request, obj)

    def _change_url(self, obj) -> str:
        opts = self.model._meta
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])

    @admin.action(description="Rotate the signing secret (the receiver needs the new one)")
    def rotate_secret(self, request, queryset):
        rotated = []
        for obj in queryset:  # the changelist's queryset: only the user's organizations
            if getattr(obj, "kind", ChannelKind.WEBHOOK) == ChannelKind.WEBHOOK:
                obj.secret = generate_secret()
                obj._change_reason = "Signing secret rotated"
                obj.save(update_fields=["secret"])
                rotated.append(obj)
        opts = self.model._meta
        return self._show_secrets(
            request, rotated, reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        )

    def _show_secrets(self, request, objs, continue_url):
        context = {
            **self.admin_site.each_context(request),
            "title": "Signing secret",
            "opts": self.model._meta,
            "rows": [(obj, getattr(obj, "url", None) or obj.address, obj.secret) for obj in objs],
            "continue_url": continue_url,
        }
        response = TemplateResponse(request, "admin/owners/signing_secrets.html", context)
        response["Cache-Control"] = "no-store"
        return response


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(SigningSecretAdmin, TenantHistoryAdmin):
    list_display = ["name", "url", "is_active", "organization"]
    # A URL typed without a scheme is sent over TLS (Django 6's default, opted into now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}


@admin.register(NotificationChannel)
class NotificationChannelAdmin(SigningSecretAdmin, TenantAdmin):
    list_display = ["user", "kind", "address", "is_active", "failing_since"]


class NotificationAttemptInline(TenantInline):
    model = NotificationAttempt
    fields = ["at", "ok", "detail"]
    readonly_fields = fields
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Notification)
class NotificationAdmin(ReadOnlyTenantAdmin):
    """Every notification and each delivery attempt, read-only."""

    list_display = ["subject", "kind", "address", "status", "attempts", "created_at", "sent_at"]
    list_filter = ["status", "kind"]
    inlines = [NotificationAttemptInline]


@admin.register(BacklogIncident)
class BacklogIncidentAdmin(ReadOnlyTenantAdmin):
    """Processing backlog incidents, opened and closed by the backlog check, read-only: an
    incident without a ticket says why here (no owner rule for processing.lagging)."""

    deletable = False
    list_display = [
        "opened_at",
        "closed_at",
        "pending",
        "lag_seconds",
        "peak_pending",
        "peak_lag_seconds",
        "ticket",
        "ticket_error",
    ]
    list_select_related = ["ticket"]


@admin.register(Ticket)
class TicketAdmin(TenantAdmin):
    list_display = [
        "title",
        "status",
        "priority",
        "owner_role",
        "assignee",
        "resolve_due_at",
        "escalation_level",
    ]
    list_filter = ["status", "priority", "source"]
    list_select_related = ["owner_role", "assignee"]
    search_fields = ["title", "source_key"]
    readonly_fields = [
        "source",
        "source_key",
        "rule_snapshot",
        "policy_snapshot",
        "opened_at",
        "escalation_level",
        "next_escalation_at",
    ]

    def has_add_permission(self, request):
        return False
