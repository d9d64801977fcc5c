"""Connectors: inbound webhook endpoints with their raw inbox, outbound subscriptions with
their deliveries and attempts.

Inbound: a vendor posts to ``/hooks/<endpoint.public_id>``; a verified request is stored as
an ``InboundDelivery`` (raw body and the headers that matter, never changed afterwards)
before the answer, and mapped to canonical events by a worker. A refused request leaves a
``RejectedDelivery`` (rate-limited) and nothing else.

Outbound: a ``Subscription`` names a URL and event types; every matching trail entry gets
one ``OutboundDelivery`` (unique per subscription and event), sent with retries, each
try an ``OutboundAttempt``. The subscription's circuit breaker holds deliveries while its
receiver keeps failing.
"""

import random
import secrets
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from deliveries.models import Client, Event
from meshline import outbound
from meshline.ids import uuid7
from meshline.models import TenantModel

# How long the previous secret keeps verifying after a rotation, so that a sender can be
# switched to the new secret without losing deliveries in between.
ROTATION_OVERLAP = timedelta(hours=24)


class ConnectorKind(models.TextChoices):
    STANDARD = "standard", "Generic (Standard Webhooks, JSON mapping)"
    WORDPRESS = "wordpress", "WordPress (post published/updated)"
    CONTENTFUL = "contentful", "Contentful (Entry.publish)"
    JIRA = "jira", "Jira (issue created / status changed, mapped as configured)"
    CLOUDINARY = "cloudinary", "Cloudinary (asset uploaded / approved)"
    WEBFLOW = "webflow", "Webflow (CMS item published, form submission)"
    SEARCH_CONSOLE = "search_console", "Search Console rows (a scheduled job's searchanalytics)"
    HUBSPOT = "hubspot", "HubSpot (contact and deal stages as CRM touches)"


# Kinds whose sender signs with a secret of its own (Cloudinary: the account's API
# secret; Webflow and HubSpot: the app's client secret): the admin enters it, Meshline
# cannot issue one.
VENDOR_SECRET_KINDS = frozenset(
    {ConnectorKind.CLOUDINARY, ConnectorKind.WEBFLOW, ConnectorKind.HUBSPOT}
)


class InboundEndpoint(TenantModel):
    """Where one tool of one client posts its webhooks, and how they are verified and mapped.

    ``mapping`` configures the kind's mapping: for WordPress the path of the deliverable
    reference in the payload (``deliverable_path``); for the generic kind the field paths
    from the vendor payload to the event contract (see connectors.mapping).
    """

    public_id = models.UUIDField(default=uuid7, unique=True, editable=False)
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=20, choices=ConnectorKind.choices)
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="+", db_index=False)
    mapping = models.JSONField(default=dict, blank=True)
    secret = models.CharField(max_length=100, editable=False)
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def clean(self) -> None:
        if (
            self.client_id
            and self.organization_id
            and self.client.organization_id != (self.organization_id)
        ):
            raise ValidationError({"client": "Choose a client of this organization."})

    def secrets_at(self, now: datetime) -> list[str]:
        """The secrets that verify at ``now``: the current one, and the previous one during
        the overlap window after a rotation."""
        found = [self.secret]
        if (
            self.previous_secret
            and self.previous_secret_expires_at
            and now < (self.previous_secret_expires_at)
        ):
            found.append(self.previous_secret)
        return found

    @staticmethod
    def new_secret(kind: str) -> str:
        """A signing secret the sender of ``kind`` accepts: Contentful takes exactly 64
        characters of [0-9a-zA-Z+/=_-]; everyone else a Standard Webhooks ``whsec_``."""
        if kind == ConnectorKind.CONTENTFUL:
            return secrets.token_hex(32)
        return outbound.generate_secret()

    def rotate_secret(
        self, now: datetime, overlap: timedelta = ROTATION_OVERLAP, new: str = ""
    ) -> str:
        """A new secret (``new``, for a kind whose sender has its own, else one made here);
        the old one keeps verifying for ``overlap``. Returns the new one."""
        self.previous_secret = self.secret
        self.previous_secret_expires_at = now + overlap
        self.secret = new or self.new_secret(self.kind)
        self.save(update_fields=["secret", "previous_secret", "previous_secret_expires_at"])
        return self.secret


class InboxState(models.TextChoices):
    RECEIVED = "received", "Received (waiting to be mapped)"
    MAPPED = "mapped", "Mapped"
    DEAD = "dead", "Dead letter (mapping failed)"


class InboundDelivery(TenantModel):
    """One verified webhook, raw, committed before the sender got its 2xx.

    The raw columns (body, headers, vendor id, received_at) are written once and never
    changed; only the mapping state moves: received -> mapped, or -> dead and, after a
    replay, mapped. ``vendor_delivery_id`` is unique per endpoint: a sender's retry of the
    same delivery is answered as a duplicate and stored once.
    """

    # Unique per organization (inbound_public_id_unique): always looked up with it.
    public_id = models.UUIDField(default=uuid7, editable=False)
    endpoint = models.ForeignKey(
        InboundEndpoint, on_delete=models.PROTECT, related_name="deliveries", db_index=False
    )
    vendor_delivery_id = models.CharField(max_length=200)
    received_at = models.DateTimeField()
    headers = models.JSONField(default=dict)
    body = models.TextField()
    state = models.CharField(max_length=20, choices=InboxState.choices, default=InboxState.RECEIVED)
    error = models.TextField(blank=True)
    event_ids = models.JSONField(default=list, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    mapped_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "endpoint", "vendor_delivery_id"],
                name="inbound_vendor_id_once",
            ),
            models.UniqueConstraint(
                fields=["organization", "public_id"], name="inbound_public_id_unique"
            ),
        ]
        indexes = [models.Index(fields=["organization", "state", "received_at"])]

    def __str__(self) -> str:
        return f"{self.vendor_delivery_id} ({self.get_state_display()})"


class CrmLink(TenantModel):
    """Which deliverable a CRM record (a HubSpot contact or deal) came through.

    HubSpot's webhooks carry only the property that changed, so a lifecycle stage change does
    not say which landing page the contact converted on. The page's form sets a property
    naming the deliverable; its change is remembered here, and later stage changes of the same
    record are credited to that deliverable (the latest one, if it converts again elsewhere).
    """

    endpoint = models.ForeignKey(
        InboundEndpoint, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    object_key = models.CharField(max_length=100)  # "contact:5101", "deal:880"
    deliverable_id = models.CharField(max_length=200)
    linked_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "endpoint", "object_key"], name="crm_link_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.object_key} -> {self.deliverable_id}"


class RejectReason(models.TextChoices):
    DISABLED = "endpoint_disabled", "Endpoint disabled"
    CONTENT_TYPE = "unsupported_content_type", "Not application/json"
    TOO_LARGE = "payload_too_large", "Body too large"
    MISSING_HEADERS = "missing_signature_headers", "Signature headers missing"
    STALE = "stale_timestamp", "Timestamp outside the tolerance (replay?)"
    BAD_SIGNATURE = "invalid_signature", "Signature does not match"
    INVALID_JSON = "invalid_json", "Body is not a JSON object"


class RejectedDelivery(TenantModel):
    """A refused request to a known endpoint, for the admin to see why a tool cannot get
    through. Only the reason and a few facts are kept, never the body; recording is
    rate-limited per endpoint (connectors.inbound.REJECTS_PER_MINUTE)."""

    endpoint = models.ForeignKey(
        InboundEndpoint, on_delete=models.CASCADE, related_name="rejections", db_index=False
    )
    reason = models.CharField(max_length=40, choices=RejectReason.choices)
    detail = models.CharField(max_length=300, blank=True)
    received_at = models.DateTimeField()
    size = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-received_at", "-pk"]


class BreakerState(models.TextChoices):
    CLOSED = "closed", "Closed (delivering)"
    OPEN = "open", "Open (holding deliveries)"
    HALF_OPEN = "half_open", "Half-open (trying one delivery)"


class Subscription(TenantModel):
    """A receiver URL subscribed to event types (canonical or Meshline's own), optionally
    for one client only. Deliveries are signed with ``secret`` (Standard Webhooks).

    The circuit breaker: after BREAKER_THRESHOLD consecutive failed attempts the breaker
    opens and nothing is sent for a cool-down (doubling each time it re-opens, capped);
    then one delivery is tried (half-open): success closes it, failure re-opens it.
    """

    BREAKER_THRESHOLD = 5
    BREAKER_COOLDOWN = timedelta(minutes=1)
    BREAKER_MAX_COOLDOWN = timedelta(hours=1)

    # Unique per organization (subscription_public_id_unique): always looked up with it.
    public_id = models.UUIDField(default=uuid7, editable=False)
    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500, validators=[outbound.validate_url])
    event_types = models.JSONField(default=list)
    client = models.ForeignKey(
        Client, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    secret = models.CharField(max_length=100, default=outbound.generate_secret, editable=False)
    paused = models.BooleanField(default=False)
    ordered = models.BooleanField(
        default=False,
        help_text="Deliver each deliverable's events in order: one waits while an earlier one "
        "for the same deliverable is still being retried (until it is delivered or given up).",
    )
    breaker_state = models.CharField(
        max_length=20, choices=BreakerState.choices, default=BreakerState.CLOSED
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    breaker_opens = models.PositiveIntegerField(default=0)
    breaker_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "public_id"], name="subscription_public_id_unique"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def matches(self, event: Event) -> bool:
        """Whether ``event`` is for this subscription (type and client filter)."""
        if event.event_type not in self.event_types:
            return False
        return self.client_id is None or event.client_id == self.client_id

    def may_send(self, now: datetime) -> bool:
        """Not paused, and the breaker lets a request through (half-open once cooled down)."""
        if self.paused:
            return False
        if self.breaker_state == BreakerState.OPEN:
            return self.breaker_until is not None and now >= self.breaker_until
        return True

    def record_success(self) -> None:
        self.consecutive_failures = 0
        self.breaker_opens = 0
        self.breaker_state = BreakerState.CLOSED
        self.breaker_until = None

    def record_failure(self, now: datetime) -> None:
        """Count a failed attempt; open the breaker at the threshold, or again after a
        failed half-open try, for a cool-down that doubles each time."""
        self.consecutive_failures += 1
        half_open = self.breaker_state == BreakerState.OPEN
        if half_open or self.consecutive_failures >= self.BREAKER_THRESHOLD:
            cooldown = min(
                self.BREAKER_COOLDOWN * (2**self.breaker_opens), self.BREAKER_MAX_COOLDOWN
            )
            self.breaker_state = BreakerState.OPEN
            self.breaker_opens += 1
            self.breaker_until = now + cooldown


class OutboundStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (gave up)"


class OutboundDelivery(TenantModel):
    """One trail entry for one subscription: sent until delivered or MAX_ATTEMPTS spent.

    Retries back off exponentially from RETRY_BASE (doubling, capped at RETRY_CAP) with
    +-20 % jitter, so receivers coming back from an outage are not hit by every sender at
    once; ten attempts span about nine hours.
    """

    MAX_ATTEMPTS = 10
    RETRY_BASE = timedelta(seconds=30)
    RETRY_CAP = timedelta(hours=4)

    # Unique per organization (outbound_public_id_unique): always looked up with it. The
    # receivers' webhook-id is made of it: a UUIDv7 no other organization draws.
    public_id = models.UUIDField(default=uuid7, editable=False)
    subscription = models.ForeignKey(
        Subscription, on_delete=models.CASCADE, related_name="deliveries", db_index=False
    )
    event = models.ForeignKey(Event, on_delete=models.PROTECT, related_name="+", db_index=False)
    status = models.CharField(
        max_length=20, choices=OutboundStatus.choices, default=OutboundStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField()
    created_at = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "subscription", "event"], name="outbound_once_per_event"
            ),
            models.UniqueConstraint(
                fields=["organization", "public_id"], name="outbound_public_id_unique"
            ),
        ]
        indexes = [
            # What is due, per organization; the beat's fan-out reads the pending ones only.
            models.Index(
                fields=["organization", "next_attempt_at"],
                condition=Q(status="pending"),
                name="outbound_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.event_id} -> {self.subscription_id} ({self.status})"

    @property
    def message_id(self) -> str:
        """The Standard Webhooks ``webhook-id``: the same on every retry."""
        return f"msg_{self.public_id.hex}"

    def retry_delay(self, rng: random.Random | None = None) -> timedelta:
        """The wait after the ``attempts``-th failure: exponential, capped, jittered."""
        base = min(self.RETRY_BASE * (2 ** max(self.attempts - 1, 0)), self.RETRY_CAP)
        return base * (rng or random).uniform(0.8, 1.2)


class OutboundAttempt(TenantModel):
    """One try of an outbound delivery: when, how long, and what came back."""

    delivery = models.ForeignKey(
        OutboundDelivery, on_delete=models.CASCADE, related_name="attempt_log", db_index=False
    )
    attempted_at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=100, blank=True)
    latency_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["attempted_at", "pk"]
        indexes = [
            models.Index(
                fields=["organization", "delivery", "attempted_at"], name="outbound_attempts"
            )
        ]

    @property
    def succeeded(self) -> bool:
        return not self.error


class OutboundOutage(TenantModel):
    """A stretch of time outbound deliveries failed: one subscription's breaker open
    (``subscription`` set), or, when several are open at once, the organization's systemic
    outage (``subscription`` empty) that stands for all of them.

    Each has one ticket through the owner map (the link row of ``ticket_sources``
    "connectors.outage"); while a systemic outage is open, a further failing receiver gets
    no ticket of its own. It closes itself when the receiver (or the last of them) recovers.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    subscription = models.ForeignKey(
        Subscription,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="outages",
        db_index=False,
    )
    ticket = models.OneToOneField(
        "owners.Ticket",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="outbound_outage",
    )
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    failing = models.PositiveIntegerField(
        default=1, help_text="Receivers failing when it opened (the peak, for a systemic one)."
    )
    ticket_error = models.TextField(blank=True, help_text="Why there is no ticket.")

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "subscription"],
                condition=Q(closed_at__isnull=True, subscription__isnull=False),
                name="outage_one_open_per_subscription",
            ),
            models.UniqueConstraint(
                fields=["organization"],
                condition=Q(closed_at__isnull=True, subscription__isnull=True),
                name="outage_one_open_systemic",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "closed_at"], name="outage_open"),
        ]

    def __str__(self) -> str:
        what = self.subscription.name if self.subscription_id else "Systemic outbound outage"
        return f"{what} since {self.opened_at:%Y-%m-%d %H:%M}"

    @property
    def is_systemic(self) -> bool:
        return self.subscription_id is None

    def public_ids(self) -> dict:
        """For the tickets API's ``opened_by``."""
        return {
            "kind": "outbound_outage",
            "outage_id": str(self.pk),
            "subscription_id": str(self.subscription.public_id) if self.subscription_id else None,
            "opened_at": self.opened_at.isoformat(),
            "closed_at": self.closed_at.isoformat() if self.closed_at else None,
        }
