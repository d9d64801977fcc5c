from django.contrib import admin

from meshline.admin import ReadOnlyTenantAdmin, TenantAdmin
from reporting.models import (
    AttributionMismatch,
    DailyExport,
    ReportingSettings,
    SampleAudit,
    SampleAuditItem,
)


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


@admin.register(SampleAudit)
class SampleAuditAdmin(ReadOnlyTenantAdmin):
    """Drawn by the nightly job (or reporting.services.audits.draw); reviewed in the portal."""

    list_display = ["__str__", "population", "seed", "drawn_at", "organization"]


@admin.register(SampleAuditItem)
class SampleAuditItemAdmin(ReadOnlyTenantAdmin):
    list_display = ["__str__", "deliverable", "finding", "reviewed_by", "reviewed_at"]
    list_filter = ["finding"]
