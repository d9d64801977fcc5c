from django.contrib import admin

from deliveries.models import Client, Deliverable, Event, EventType
from meshline.admin import ReadOnlyTenantAdmin, TenantAdmin, administered_organizations


@admin.register(Client)
class ClientAdmin(TenantAdmin):
    list_display = ["name", "client_id", "tier", "organization"]
    list_filter = ["tier"]
    list_select_related = ["organization"]
    search_fields = ["name", "client_id"]


@admin.register(Deliverable)
class DeliverableAdmin(TenantAdmin):
    list_display = ["deliverable_id", "client", "type", "state", "last_event_at"]
    list_filter = ["type", "state"]
    list_select_related = ["client"]
    search_fields = ["deliverable_id", "title"]
    readonly_fields = ["state", "state_changed_at", "last_event_at"]


@admin.register(Event)
class EventAdmin(ReadOnlyTenantAdmin):
    """Read-only: the trail is append-only."""

    list_display = ["event_type", "deliverable", "occurred_at", "received_at", "source"]
    list_filter = ["event_type", "source"]
    list_select_related = ["deliverable"]
    search_fields = ["idempotency_key", "deliverable__deliverable_id", "correlation_id"]

    deletable = False


@admin.register(EventType)
class EventTypeAdmin(TenantAdmin):
    list_display = ["name", "version", "organization", "advances_to", "internal"]
    list_filter = ["internal"]

    def get_queryset(self, request):
        from django.db.models import Q

        queryset = admin.ModelAdmin.get_queryset(self, request)
        if request.user.is_superuser:
            return queryset
        return queryset.filter(
            Q(organization__isnull=True)
            | Q(organization__in=administered_organizations(request.user))
        )

    def has_change_permission(self, request, obj=None):
        # Versions are immutable once registered; register a new version instead.
        return obj is None and self.has_module_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False
