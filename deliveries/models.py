"""Clients, deliverables, the event-type registry and the append-only event trail."""

import re

from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q

from meshline.ids import uuid7
from meshline.models import Organization, TenantModel

# The documented character set of client and deliverable references: ASCII letters and
# digits, '.', '_', ':' and '-'. It keeps references safe in URLs and unambiguous on screen
# (no look-alike letters, bidi controls or trailing newlines). \Z, not $: $ also matches
# before a final newline, which let "BAD-1\n" through beside "BAD-1".
REFERENCE_MESSAGE = (
    "Use 1-100 ASCII letters, digits, '.', '_', ':' or '-', starting with a letter or digit."
)
REFERENCE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
reference_validator = RegexValidator(rf"\A{REFERENCE_RE.pattern}\Z", REFERENCE_MESSAGE)
event_type_name_validator = RegexValidator(
    r"\A[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\Z",
    "Use dotted lower-case words, e.g. 'page.published'.",
)


class Tier(models.TextChoices):
    STANDARD = "standard", "Standard"
    PREMIUM = "premium", "Premium"
    ENTERPRISE = "enterprise", "Enterprise"


class DeliverableType(models.TextChoices):
    BRIEF = "brief", "Brief"
    ASSET = "asset", "Asset"
    LANDING_PAGE = "landing_page", "Landing page"
    SEO_PAGE = "seo_page", "SEO page"
    OTHER = "other", "Other"


class LifecycleState(models.TextChoices):
    """A deliverable's stage, in order: it only ever moves forward (see Deliverable.advance)."""

    NEW = "new", "New"
    INTAKE = "intake", "Intake"
    SCOPED = "scoped", "Scoped"
    IN_PRODUCTION = "in_production", "In production"
    APPROVED = "approved", "Approved"
    PUBLISHED = "published", "Published"
    INDEXED = "indexed", "Indexed"


LIFECYCLE_RANK = {state: rank for rank, state in enumerate(LifecycleState.values)}


class Client(TenantModel):
    """An agency's client, named by the submitter's own ``client_id``."""

    client_id = models.CharField(max_length=100, validators=[reference_validator])
    name = models.CharField(max_length=200)
    tier = models.CharField(max_length=20, choices=Tier.choices, default=Tier.STANDARD)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "client_id"], name="client_ref_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.client_id})"


class Deliverable(TenantModel):
    """A brief, asset or page being delivered; created by its first event."""

    client = models.ForeignKey(
        Client, on_delete=models.PROTECT, related_name="deliverables", db_index=False
    )
    deliverable_id = models.CharField(max_length=100, validators=[reference_validator])
    type = models.CharField(
        max_length=20, choices=DeliverableType.choices, default=DeliverableType.OTHER
    )
    title = models.CharField(max_length=300, blank=True)
    url = models.URLField(max_length=1000, blank=True)
    state = models.CharField(
        max_length=20, choices=LifecycleState.choices, default=LifecycleState.NEW
    )
    # occurred_at of the event that moved the deliverable into its current state.
    state_changed_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-last_event_at", "deliverable_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "deliverable_id"], name="deliverable_ref_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["organization", "client", "state"], name="deliverable_client_state"
            ),
            models.Index(fields=["organization", "-last_event_at"], name="deliverable_recent"),
        ]

    def __str__(self) -> str:
        return self.deliverable_id

    def advance(self, state: str, at) -> bool:
        """Move forward to ``state`` if it is later in the lifecycle; never move backwards.

        Out-of-order events (an ``asset.uploaded`` arriving after ``page.published``) leave
        the state alone. Returns whether the state changed; the caller saves.
        """
        if LIFECYCLE_RANK[state] <= LIFECYCLE_RANK[self.state]:
            return False
        self.state = state
        self.state_changed_at = at
        return True


class EventType(models.Model):
    """One version of an event type and the JSON Schema its payload must satisfy.

    Canonical types (``organization`` empty) come from deliveries.catalog and are shared by
    every organization; an organization may register its own names. Not scoped: the
    registry is read through ``deliveries.registry``, which always names the organization.
    """

    organization = models.ForeignKey(
        Organization,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="event_types",
    )
    name = models.CharField(max_length=64, validators=[event_type_name_validator])
    version = models.PositiveIntegerField(default=1)
    description = models.CharField(max_length=300, blank=True)
    payload_schema = models.JSONField(default=dict)
    advances_to = models.CharField(
        max_length=20,
        choices=LifecycleState.choices,
        blank=True,
        help_text="The lifecycle state an event of this type moves its deliverable to.",
    )
    # Meshline's own types (gate.failed, ticket.opened, ...) are written by Meshline only.
    internal = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "version"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "name", "version"],
                condition=Q(organization__isnull=False),
                name="event_type_org_version_unique",
            ),
            models.UniqueConstraint(
                fields=["name", "version"],
                condition=Q(organization__isnull=True),
                name="event_type_canonical_version_unique",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class EventSource(models.TextChoices):
    API = "api", "API"
    WEBHOOK = "webhook", "Webhook"
    MESHLINE = "meshline", "Meshline"


# What agencies and their tools submitted, as opposed to Meshline's own trail entries. The
# event-count triggers (migration 0004) spell the same list in SQL.
SUBMITTED_SOURCES = [EventSource.API, EventSource.WEBHOOK]


class Event(TenantModel):
    """One thing that happened to a deliverable. Append-only: never updated or deleted.

    On PostgreSQL a trigger (migration 0002) refuses UPDATE and DELETE. Processing state
    lives beside it in EventProcessing so the trail itself never changes.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    # The biggest table: every index costs each ingested event a write. Four indexes lead
    # with the organization already, so it gets no index of its own.
    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="events", db_index=False
    )
    event_type = models.CharField(max_length=64)
    schema_version = models.PositiveIntegerField(default=1)
    # Submitted events always name both; Meshline's own (rota.handoff, a triage ticket's
    # events) may concern no deliverable.
    client = models.ForeignKey(
        Client,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="events",
        db_index=False,
    )
    deliverable = models.ForeignKey(
        Deliverable,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="events",
        db_index=False,
    )
    correlation_id = models.CharField(max_length=100, blank=True)
    idempotency_key = models.CharField(max_length=200)
    # SHA-256 of the event's canonical JSON: tells a true retry from a conflicting reuse of
    # the same idempotency key.
    content_digest = models.CharField(max_length=64)
    actor_role = models.CharField(max_length=100, blank=True)
    actor_id = models.CharField(max_length=200, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField()
    payload = models.JSONField(default=dict)
    source = models.CharField(max_length=20, choices=EventSource.choices, default=EventSource.API)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"], name="event_idempotency_unique"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "deliverable", "occurred_at"], name="event_trail"),
            models.Index(fields=["organization", "event_type", "-id"], name="event_type_recent"),
            models.Index(fields=["organization", "-occurred_at"], name="event_occurred"),
            # ?correlation_id= on the events list and API: one organization's related events.
            models.Index(fields=["organization", "correlation_id"], name="event_correlation"),
            # ?client= on the events list and API, newest first.
            models.Index(fields=["organization", "client", "-id"], name="event_client_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} for {self.deliverable_id} at {self.occurred_at:%Y-%m-%d %H:%M}"


class EventCount(TenantModel):
    """Submitted events per client and UTC hour (by occurred_at): the dashboard's totals.

    Written by database triggers (migration 0004) in the transaction that inserts the
    events, whatever inserts them (the API's COPY, the ORM, an operator's SQL), so an event
    is neither lost nor doubled. The trigger only appends *delta* rows (``compacted`` false):
    an upsert would lock one row per client and hour until the inserting transaction
    commits, and every ingest of a busy client would queue behind the others. Readers sum
    the rows; ``deliveries.services.throughput.compact`` folds an organization's deltas into
    one compacted row per client and hour (beat, every minute). Events are never updated or
    deleted, so the sums only grow.
    """

    client = models.ForeignKey(Client, on_delete=models.CASCADE, related_name="+", db_index=False)
    hour = models.DateTimeField()

    count = models.PositiveBigIntegerField(default=0)
    compacted = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "client", "hour"],
                condition=Q(compacted=True),
                name="event_count_compacted_unique",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "hour"], name="event_count_hour"),
            # One client's hours (the dashboard's ?client=).
            models.Index(fields=["organization", "client", "hour"], name="event_count_client"),
            models.Index(
                fields=["organization"], condition=Q(compacted=False), name="event_count_deltas"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client_id} {self.hour:%Y-%m-%d %H:00}: {self.count}"


class ProcessingStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PROCESSED = "processed", "Processed"
    FAILED = "failed", "Failed"


class EventProcessing(TenantModel):
    """Whether an event has been processed yet; the sweeper's work list.

    Written in the same transaction as its event, so a committed event always has a row
    here: the database, not the broker, remembers what is still to do.
    """

    event = models.OneToOneField(
        Event, primary_key=True, on_delete=models.PROTECT, related_name="processing"
    )
    status = models.CharField(
        max_length=20, choices=ProcessingStatus.choices, default=ProcessingStatus.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    enqueued_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # Set by deliveries.services.replay: how often an operator re-ran this event, and when
    # last. db_default, because ingestion writes these rows in SQL of its own.
    replay_count = models.PositiveIntegerField(default=0, db_default=0)
    replayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["enqueued_at"],
                condition=Q(status="pending"),
                name="processing_pending",
            ),
            # The dashboard's failed count and the events list's "failed" filter: without it,
            # a scan of every processing row of the organization.
            models.Index(
                fields=["organization"],
                condition=Q(status="failed"),
                name="processing_failed",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_id}: {self.status}"
