"""Tenancy: organizations, who belongs to them, and the API keys that act for them."""

import hashlib
import hmac
import secrets
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from django_scopes import ScopedManager


def validate_timezone(value: str) -> None:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"'{value}' is not an IANA time zone (e.g. Europe/Berlin).") from None


class Organization(models.Model):
    """The tenant. Every customer-owned row points at exactly one organization."""

    slug = models.SlugField(max_length=63, unique=True)
    name = models.CharField(max_length=200)
    timezone = models.CharField(
        max_length=64,
        default="UTC",
        validators=[validate_timezone],
        help_text="The portal shows dates and times, and counts the dashboard's days, in "
        "this zone (IANA name, e.g. Europe/Berlin).",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Bumped whenever the organization registers or changes an event type, so that
    # in-process caches of the event registry know when to reload (see deliveries.registry).
    event_types_version = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def zone(self) -> ZoneInfo:
        """The organization's time zone (UTC if the stored name is somehow not one)."""
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo("UTC")


class TenantModel(models.Model):
    """Base for tenant-owned rows: an unscoped query raises instead of returning all tenants.

    Every unique constraint and index of a tenant table leads with ``organization``
    (tests/test_schema_distribution.py reads the schema): foreign keys are declared with
    ``db_index=False`` and, where rows are read by them, covered by an index in ``Meta``
    that starts ``["organization", <foreign key>, ...]``.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="%(class)ss"
    )

    objects = ScopedManager(organization="organization")

    class Meta:
        abstract = True


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    ACCOUNT_MANAGER = "account_manager", "Account manager"
    FINANCE = "finance", "Finance"
    VIEWER = "viewer", "Viewer"


CLOSING_ROLES = frozenset({Role.ADMIN, Role.ACCOUNT_MANAGER})


class Membership(models.Model):
    """A user's access to one organization, with one role."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=32, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], name="membership_unique")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} as {self.get_role_display()}"

    @property
    def can_act(self) -> bool:
        """Viewers read; everyone else may change delivery state."""
        return self.role != Role.VIEWER

    @property
    def can_close_tickets(self) -> bool:
        """Resolving or cancelling a ticket says the delivery problem is over: a call for
        the people who deliver, not for finance (who may still acknowledge and reassign)."""
        return self.role in CLOSING_ROLES


class ApiScope(models.TextChoices):
    EVENTS_WRITE = "events:write", "Submit events"
    EVENTS_READ = "events:read", "Read events and trails"
    CLIENTS_READ = "clients:read", "Read clients"
    CLIENTS_WRITE = "clients:write", "Create and edit clients"
    DELIVERABLES_READ = "deliverables:read", "Read deliverables"
    EVENT_TYPES_WRITE = "event_types:write", "Register event types"
    OWNERS_READ = "owners:read", "Read the owner map, roles and who is on duty"
    TICKETS_READ = "tickets:read", "Read tickets"
    TICKETS_WRITE = "tickets:write", "Acknowledge and resolve tickets"
    BILLING_READ = "billing:read", "Read agreements, billable items and invoices"
    BILLING_WRITE = "billing:write", "Approve and reject billable items"
    FLOWS_READ = "flows:read", "Read flows, their runs and measures"
    CHANGES_READ = "changes:read", "Read proposed and applied configuration changes"
    CHANGES_APPROVE = "changes:approve", "Approve, reject and roll back changes (admin keys)"
    REPORTING_READ = "reporting:read", "Read reports, forensic reports and exports"
    REPORTING_WRITE = "reporting:write", "Import search performance exports"
    CONNECTORS_READ = "connectors:read", "Read webhook deliveries and subscriptions"
    CONNECTORS_WRITE = "connectors:write", "Replay dead-letter webhook deliveries"


ALL_API_SCOPES = [choice.value for choice in ApiScope]
KEY_PREFIX_LENGTH = 12
key_prefix_validator = RegexValidator(r"^[a-z0-9]{12}$")


class ApiKey(TenantModel):
    """A secret that lets a tool act for one organization, limited to its scopes.

    Only a SHA-256 digest of the secret is stored: the key is shown once, at creation. The
    public prefix locates the row; the digest is compared in constant time. A random
    32-byte secret needs no slow hash: there is nothing to brute-force.
    """

    name = models.CharField(max_length=100)
    prefix = models.CharField(
        max_length=KEY_PREFIX_LENGTH, unique=True, validators=[key_prefix_validator]
    )
    digest = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )

    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    # Writing last_used_at on every request would put an UPDATE on the ingest hot path;
    # once a minute is precise enough to tell a live key from a dead one.
    LAST_USED_RESOLUTION = timedelta(minutes=1)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    def save(self, *args, **kwargs):
        """Revocation is one-way: a leaked key that was revoked must never work again, so
        a save that would clear or move ``revoked_at`` of a revoked key is refused."""
        if not self._state.adding:
            stored = ApiKey.objects.filter(pk=self.pk).values_list("revoked_at", flat=True).first()
            if stored is not None and self.revoked_at != stored:
                raise ValidationError(
                    {"revoked_at": "This API key has been revoked; revocation cannot be undone."},
                    code="revoked_api_key",
                )
        super().save(*args, **kwargs)

    @staticmethod
    def digest_for(secret: str) -> str:
        return hashlib.sha256(secret.encode()).hexdigest()

    @classmethod
    def generate(cls, organization: Organization, name: str, scopes=None, created_by=None):
        """Create a key; return ``(api_key, plaintext)``. The plaintext is never stored."""
        prefix = secrets.token_hex(KEY_PREFIX_LENGTH // 2)
        secret = secrets.token_urlsafe(32)
        plaintext = f"ml_{prefix}_{secret}"
        api_key = cls.objects.create(
            organization=organization,
            name=name,
            prefix=prefix,
            digest=cls.digest_for(plaintext),
            scopes=list(scopes if scopes is not None else ALL_API_SCOPES),
            created_by=created_by,
        )
        return api_key, plaintext

    @staticmethod
    def split(plaintext: str) -> str | None:
        """Return the prefix of a well-formed key, or None."""
        parts = plaintext.split("_", 2)
        if len(parts) != 3 or parts[0] != "ml" or len(parts[1]) != KEY_PREFIX_LENGTH:
            return None
        return parts[1]

    def matches(self, plaintext: str) -> bool:
        return hmac.compare_digest(self.digest, self.digest_for(plaintext))

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def may_close_tickets(self) -> bool:
        """A key issued by a person acts with no more than that person's role: if its
        creator may not resolve or cancel tickets (finance, viewer, or no longer a member),
        neither may the key. Keys issued by an operator (no creator) have their scopes only."""
        if self.created_by_id is None:
            return True
        role = (
            Membership.objects.filter(organization=self.organization_id, user=self.created_by_id)
            .values_list("role", flat=True)
            .first()
        )
        return role in CLOSING_ROLES

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])

    def touch(self) -> None:
        """Record use, at most once per LAST_USED_RESOLUTION."""
        now = timezone.now()
        if self.last_used_at is None or now - self.last_used_at >= self.LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=self.pk).update(last_used_at=now)
            self.last_used_at = now
