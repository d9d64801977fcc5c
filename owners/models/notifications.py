"""Notification channels, webhook endpoints, and each notification with its attempts."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from simple_history.models import HistoricalRecords

from meshline import outbound
from meshline.models import TenantModel


class WebhookEndpoint(TenantModel):
    """An outbound webhook, signed per Standard Webhooks (meshline.outbound).

    The secret is generated, shown once at creation and then only masked; it is kept out of
    the history table and out of notification rows.
    """

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=1000)
    secret = models.CharField(max_length=200, default=outbound.generate_secret, editable=False)
    is_active = models.BooleanField(default=True)
    history = HistoricalRecords(excluded_fields=["secret"])

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # Only on save: a row stored before the guard still renders, and fails at send.
        if self.url:
            try:
                outbound.validate_url(self.url)
            except ValidationError as exc:
                raise ValidationError({"url": exc.messages}) from None


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class NotificationChannel(TenantModel):
    """How to reach a person. Without one, their account email is used."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    kind = models.CharField(max_length=10, choices=ChannelKind.choices, default=ChannelKind.EMAIL)
    address = models.CharField(max_length=1000, help_text="Email address or webhook URL.")
    # Generated for a webhook channel, shown once at creation (see WebhookEndpoint).
    secret = models.CharField(max_length=200, blank=True, editable=False)
    is_active = models.BooleanField(default=True)
    # Set when delivery keeps failing; a person with no working channel is flagged.
    failing_since = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.address}"

    def clean(self) -> None:
        if self.kind == ChannelKind.WEBHOOK and self.address:
            try:
                outbound.validate_url(self.address)
            except ValidationError as exc:
                raise ValidationError({"address": exc.messages}) from None

    def save(self, *args, **kwargs):
        # A webhook channel is always signed: it gets its secret when it becomes one.
        if self.kind == ChannelKind.WEBHOOK and not self.secret:
            self.secret = outbound.generate_secret()
        super().save(*args, **kwargs)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Notification(TenantModel):
    """One message to one recipient over one channel; every attempt is kept."""

    ticket = models.ForeignKey(
        "owners.Ticket",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="notifications",
        db_index=False,
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    address = models.CharField(max_length=1000)
    # Where a webhook's signing secret is read at send time (never copied here).
    channel = models.ForeignKey(
        NotificationChannel,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    subject = models.CharField(max_length=300)
    body = models.JSONField(default=dict)
    # Unique per organization: retried tasks never send the same step twice.
    dedupe_key = models.CharField(max_length=200)
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "dedupe_key"], name="notification_dedupe"
            )
        ]
        indexes = [models.Index(fields=["organization", "ticket"], name="notification_ticket")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.address}: {self.subject}"

    def signing_secret(self) -> str:
        """The current secret of the channel or endpoint this webhook goes to ("" if gone)."""
        source = self.channel or self.endpoint
        return source.secret if source is not None else ""


class NotificationAttempt(TenantModel):
    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="log", db_index=False
    )
    at = models.DateTimeField(auto_now_add=True)
    ok = models.BooleanField()
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["at"]
        indexes = [
            models.Index(fields=["organization", "notification"], name="notification_attempts")
        ]
