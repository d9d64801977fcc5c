from django.contrib import admin, messages
from django_scopes import scope

from deliveries.models import Client, Deliverable, Event, EventType, ProcessingStatus
from deliveries.services import replay
from meshline.admin import ReadOnlyTenantAdmin, TenantAdmin, administered_organizations
from meshline.models import Organization


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
    """Read-only: the trail is append-only. Its processing can be replayed (queued)."""

    list_display = [
        "event_type",
        "deliverable",
        "occurred_at",
        "received_at",
        "source",
        "processing_status",
    ]
    list_filter = ["event_type", "source", "processing__status"]
    list_select_related = ["deliverable", "processing"]
    search_fields = ["idempotency_key", "deliverable__deliverable_id", "correlation_id"]
    actions = ["replay_processing", "retry_failed_processing"]

    deletable = False

    @admin.display(description="Processing", ordering="processing__status")
    def processing_status(self, event):
        processing = getattr(event, "processing", None)
        if processing is None:
            return "-"
        if processing.status == ProcessingStatus.PENDING and processing.last_error:
            return f"{processing.get_status_display()} (error, {processing.attempts} attempts)"
        return processing.get_status_display()

    @admin.action(description="Replay processing of the selected events")
    def replay_processing(self, request, queryset):
        self._queue_replay(request, queryset, "replay")

    @admin.action(description="Retry failed processing of the selected events")
    def retry_failed_processing(self, request, queryset):
        self._queue_replay(request, queryset.filter(replay.failed_condition()), "retry")

    def _queue_replay(self, request, queryset, verb: str) -> None:
        """Reset and queue per organization (the queryset is already limited to the ones
        the user administers); the workers do the processing, not this request."""
        organization_ids = queryset.order_by().values_list("organization_id", flat=True)
        total, unqueued = 0, 0
        for organization in Organization.objects.filter(pk__in=organization_ids.distinct()):
            with scope(organization=organization):
                count, queued = replay.queue_replay(organization, queryset)
            total += count
            unqueued += 0 if queued else count
        if not total:
            self.message_user(
                request,
                "Nothing to "
                + verb
                + ": no submitted event"
                + (" whose processing failed" if verb == "retry" else "")
                + " was selected (Meshline's own entries are never replayed).",
                messages.WARNING,
            )
        elif unqueued:
            self.message_user(
                request,
                f"{total} event(s) set to be processed again, but the queue could not be "
                f"reached for {unqueued}: the sweeper will process them once it is back.",
                messages.WARNING,
            )
        else:
            self.message_user(request, f"Queued {total} event(s) for processing ({verb}).")


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
