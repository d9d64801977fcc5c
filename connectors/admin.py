from django.contrib import admin
from django.db import models

from connectors.models import (
    CrmLink,
    InboundDelivery,
    InboundEndpoint,
    OutboundAttempt,
    OutboundDelivery,
    RejectedDelivery,
    Subscription,
)
from meshline.admin import ReadOnlyTenantAdmin, TenantAdmin


@admin.register(InboundEndpoint)
class InboundEndpointAdmin(TenantAdmin):
    """Endpoints are created in the portal (Connections), which shows the secret once;
    here an admin renames, disables or re-points them."""

    list_display = ["name", "kind", "client", "enabled", "organization", "created_at"]
    list_filter = ["kind", "enabled"]
    readonly_fields = ["public_id", "kind", "previous_secret_expires_at"]
    fields = ["organization", "name", "kind", "client", "mapping", "enabled", "public_id"]

    def has_add_permission(self, request):
        return False


@admin.register(Subscription)
class SubscriptionAdmin(TenantAdmin):
    """Subscriptions are created in the portal (the secret is shown once there)."""

    list_display = ["name", "url", "paused", "breaker_state", "organization"]
    list_filter = ["paused", "breaker_state"]
    readonly_fields = ["public_id", "breaker_state", "consecutive_failures", "breaker_until"]
    fields = ["organization", "name", "url", "event_types", "client", "paused", *readonly_fields]
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def has_add_permission(self, request):
        return False


@admin.register(InboundDelivery)
class InboundDeliveryAdmin(ReadOnlyTenantAdmin):
    list_display = ["vendor_delivery_id", "endpoint", "state", "received_at"]
    list_filter = ["state"]
    search_fields = ["vendor_delivery_id"]
    deletable = False


@admin.register(RejectedDelivery)
class RejectedDeliveryAdmin(ReadOnlyTenantAdmin):
    list_display = ["endpoint", "reason", "received_at", "size"]
    list_filter = ["reason"]


@admin.register(OutboundDelivery)
class OutboundDeliveryAdmin(ReadOnlyTenantAdmin):
    list_display = ["subscription", "event", "status", "attempts", "next_attempt_at"]
    list_filter = ["status"]


@admin.register(OutboundAttempt)
class OutboundAttemptAdmin(ReadOnlyTenantAdmin):
    list_display = ["delivery", "attempted_at", "status_code", "error", "latency_ms"]


@admin.register(CrmLink)
class CrmLinkAdmin(ReadOnlyTenantAdmin):
    """Which deliverable each HubSpot contact or deal came through (learnt from webhooks)."""

    list_display = ["object_key", "deliverable_id", "endpoint", "linked_at"]
    search_fields = ["object_key", "deliverable_id"]
