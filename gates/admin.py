from django.contrib import admin

from gates import services
from gates.models import Gate, GateEvaluation, GateMode, SitemapTimer
from meshline.admin import ReadOnlyTenantAdmin, TenantHistoryAdmin


@admin.register(Gate)
class GateAdmin(TenantHistoryAdmin):
    list_display = [
        "name",
        "check_name",
        "mode",
        "event_types",
        "auto_monitored_at",
        "organization",
    ]
    list_filter = ["mode", "check_name"]
    readonly_fields = ["auto_monitored_at", "auto_monitor_reason"]
    actions = ["restore_enforce"]

    @admin.action(description="Restore the selected gates to enforce")
    def restore_enforce(self, request, queryset):
        restored = 0
        for gate in queryset.exclude(mode=GateMode.ENFORCE):
            services.restore_gate(gate)
            restored += 1
        self.message_user(request, f"Restored {restored} gate(s) to enforce.")


@admin.register(GateEvaluation)
class GateEvaluationAdmin(ReadOnlyTenantAdmin):
    list_display = ["gate", "deliverable", "outcome", "mode", "duration_ms", "evaluated_at"]
    list_filter = ["outcome", "mode"]
    list_select_related = ["gate", "deliverable"]

    deletable = False


@admin.register(SitemapTimer)
class SitemapTimerAdmin(ReadOnlyTenantAdmin):
    list_display = ["url", "deliverable", "due_at", "status"]
    list_filter = ["status"]
