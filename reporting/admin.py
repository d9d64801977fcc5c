from django.contrib import admin

from meshline.admin import TenantAdmin
from reporting.models import AttributionMismatch, DailyExport, ReportingSettings


@admin.register(ReportingSettings)
class ReportingSettingsAdmin(TenantAdmin):
    list_display = ["organization", "attribution_model", "window_days"]


@admin.register(AttributionMismatch)
class AttributionMismatchAdmin(TenantAdmin):
    list_display = ["deliverable", "window_start", "detected_on", "impressions", "status"]
    list_filter = ["status"]
    readonly_fields = ["deliverable", "ticket", "resolved_by"]


@admin.register(DailyExport)
class DailyExportAdmin(TenantAdmin):
    list_display = ["organization", "date", "format", "rows", "size_bytes", "created_at"]
