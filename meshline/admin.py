"""Tenant-aware Django admin.

The admin runs with django-scopes disabled (TenantMiddleware), so every admin class for a
tenant-owned model derives from TenantAdmin, which limits rows and every foreign-key choice
list to the organizations the user administers (and user choices to their members).
Superusers (Meshline operators) see all.
"""

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied
from django.http import Http404
from simple_history.admin import SimpleHistoryAdmin

from meshline.models import ApiKey, Membership, Organization, Role


def administered_organizations(user):
    if user.is_superuser:
        return Organization.objects.all()
    return Organization.objects.filter(memberships__user=user, memberships__role=Role.ADMIN)


def tenant_choices(related, user):
    """The rows of ``related`` a user may pick in a form, or None for the default (all)."""
    if related is Organization:
        return administered_organizations(user)
    if user.is_superuser:
        return None
    if related is get_user_model():
        # Users are not tenant rows, but listing all of them would show every
        # organization admin the people of every other tenant.
        return related.objects.filter(
            memberships__organization__in=administered_organizations(user)
        ).distinct()
    if hasattr(related, "organization"):
        return related.objects.filter(organization__in=administered_organizations(user))
    return None


def is_tenant_admin(user) -> bool:
    """Asked by every permission check of every model admin (the index page alone asks it
    over 150 times): answered once per user object, that is once per request."""
    answer = getattr(user, "_meshline_is_tenant_admin", None)
    if answer is None:
        answer = user.is_active and (user.is_superuser or administered_organizations(user).exists())
        user._meshline_is_tenant_admin = answer
    return answer


class TenantChoicesMixin:
    """Every foreign-key and many-to-many choice list scoped with ``tenant_choices``."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        queryset = tenant_choices(db_field.related_model, request.user)
        if queryset is not None:
            kwargs["queryset"] = queryset
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        queryset = tenant_choices(db_field.related_model, request.user)
        if queryset is not None:
            kwargs["queryset"] = queryset
        return super().formfield_for_manytomany(db_field, request, **kwargs)


class TenantAdmin(TenantChoicesMixin, admin.ModelAdmin):
    """Rows and choices limited to the user's administered organizations."""

    organization_field = "organization"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(
            **{f"{self.organization_field}__in": administered_organizations(request.user)}
        )

    def save_model(self, request, obj, form, change):
        organization_id = getattr(obj, f"{self.organization_field}_id", None)
        if (
            not request.user.is_superuser
            and not administered_organizations(request.user).filter(pk=organization_id).exists()
        ):
            raise PermissionDenied
        super().save_model(request, obj, form, change)

    def has_module_permission(self, request):
        return is_tenant_admin(request.user)

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_change_permission(self, request, obj=None):
        return self.has_module_permission(request)

    def has_add_permission(self, request):
        return self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None):
        return self.has_module_permission(request)


@admin.register(Organization)
class OrganizationAdmin(TenantAdmin):
    organization_field = "pk"
    list_display = ["name", "slug", "timezone", "created_at"]
    search_fields = ["name", "slug"]
    readonly_fields = ["event_types_version"]

    def get_queryset(self, request):
        return administered_organizations(request.user)

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if not request.user.is_superuser and not (
            change and administered_organizations(request.user).filter(pk=obj.pk).exists()
        ):
            raise PermissionDenied
        obj.save()


@admin.register(Membership)
class MembershipAdmin(TenantAdmin):
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role"]
    list_select_related = ["user", "organization"]
    autocomplete_fields = []


@admin.register(ApiKey)
class ApiKeyAdmin(TenantAdmin):
    """Keys are created with `manage.py create_api_key` (shown once); here they are revoked."""

    list_display = ["name", "organization", "prefix", "created_at", "last_used_at", "revoked_at"]
    list_select_related = ["organization"]
    # revoked_at is set by the action alone: typed in a form it could be cleared again.
    readonly_fields = ["prefix", "digest", "created_at", "created_by", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        """A revoked key is history: shown, never edited (its scopes no longer matter)."""
        if obj is not None and not obj.is_active:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.action(description="Revoke the selected API keys")
    def revoke(self, request, queryset):
        for api_key in queryset:
            api_key.revoke()
        self.message_user(request, f"Revoked {queryset.count()} key(s).")


class ReadOnlyTenantAdmin(TenantAdmin):
    """Rows Meshline writes itself (the trail, verdicts, timers, notifications): looked at
    in the admin, never added or edited there; ``deletable = False`` refuses deletion too."""

    deletable = True

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return self.deletable and super().has_delete_permission(request, obj)


class TenantHistoryAdmin(SimpleHistoryAdmin, TenantAdmin):
    """TenantAdmin with django-simple-history's history and revert views.

    simple-history loads a version by primary key alone; check first that the object is
    one of the user's, so another tenant's history answers 404.
    """

    def history_view(self, request, object_id, extra_context=None):
        self._get_own_or_404(request, object_id)
        return super().history_view(request, object_id, extra_context)

    def history_form_view(self, request, object_id, version_id, extra_context=None):
        self._get_own_or_404(request, object_id)
        return super().history_form_view(request, object_id, version_id, extra_context)

    def _get_own_or_404(self, request, object_id):
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            raise Http404("No such object")
        return obj
