"""Gates: configured checks, their evaluations and artifacts, and sitemap timers."""

from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from meshline.ids import uuid7
from meshline.models import TenantModel
from owners.models import Priority


class CheckName(models.TextChoices):
    SCHEMA_CHECK = "schema_check", "Schema.org JSON-LD"
    SEO_TAGS_PRESENT = "seo_tags_present", "SEO tags present"
    SCHEMA_VERSION = "schema_version", "Payload schema version"
    CONTENT_QUALITY_SCORE = "content_quality_score", "Content quality score"
    SCREENSHOT_REGRESSION = "screenshot_regression", "Screenshot regression"
    SITEMAP_SYNC = "sitemap_sync", "Sitemap contains the URL in time"
    SCOPE_LIMITS = "scope_limits", "Scope limits"


class GateMode(models.TextChoices):
    ENFORCE = "enforce", "Enforce (failures open tickets)"
    MONITOR = "monitor", "Monitor (failures are recorded only)"
    OFF = "off", "Off"


class Outcome(models.TextChoices):
    PASS = "pass", "Pass"
    FAIL = "fail", "Fail"
    MONITOR = "monitor", "Fail (monitor only)"
    ERROR = "error", "Error"


class Gate(TenantModel):
    """A check, when it runs (event types, tiers, deliverable types), how strict it is."""

    slug = models.SlugField(max_length=63, db_index=False)
    name = models.CharField(max_length=100)
    check_name = models.CharField(max_length=40, choices=CheckName.choices)
    event_types = models.JSONField(
        default=list, help_text='Event types that trigger the gate, e.g. ["page.published"].'
    )
    client_tiers = models.JSONField(default=list, blank=True, help_text="Empty: every tier.")
    deliverable_types = models.JSONField(
        default=list, blank=True, help_text="Empty: every deliverable type."
    )
    parameters = models.JSONField(default=dict, blank=True)
    mode = models.CharField(max_length=10, choices=GateMode.choices, default=GateMode.ENFORCE)
    playbook = models.TextField(blank=True, help_text="Remediation steps for the ticket.")
    priority = models.CharField(max_length=2, choices=Priority.choices, default=Priority.P3)
    # Over-strictness guard: fail rate over 24 h above max_fail_rate, on at least
    # min_evaluations, switches an enforced gate to monitor (see services.check_strictness).
    min_evaluations = models.PositiveIntegerField(default=20)
    max_fail_rate = models.FloatField(default=0.2)
    auto_monitored_at = models.DateTimeField(null=True, blank=True)
    auto_monitor_reason = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="gate_slug_unique")
        ]

    def __str__(self) -> str:
        return self.name

    def applies_to(self, event_type: str, client_tier: str, deliverable_type: str) -> bool:
        return (
            self.mode != GateMode.OFF
            and event_type in self.event_types
            and (not self.client_tiers or client_tier in self.client_tiers)
            and (not self.deliverable_types or deliverable_type in self.deliverable_types)
        )

    def judged_events(self, events):
        """``applies_to`` as a filter on an Event queryset (Meshline's own entries excluded):
        the same rule, for sweeps that look for events the gate should have judged."""
        if self.mode == GateMode.OFF:
            return events.none()
        events = events.filter(event_type__in=self.event_types).exclude(source="meshline")
        if self.client_tiers:
            events = events.filter(client__tier__in=self.client_tiers)
        if self.deliverable_types:
            events = events.filter(deliverable__type__in=self.deliverable_types)
        return events


class GateEvaluation(TenantModel):
    """One verdict of one gate on one event (and deliverable). Never recomputed."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    gate = models.ForeignKey(
        Gate, on_delete=models.PROTECT, related_name="evaluations", db_index=False
    )
    event = models.ForeignKey(
        "deliveries.Event",
        on_delete=models.PROTECT,
        related_name="gate_evaluations",
        db_index=False,
    )
    deliverable = models.ForeignKey(
        "deliveries.Deliverable",
        on_delete=models.PROTECT,
        related_name="gate_evaluations",
        db_index=False,
    )
    outcome = models.CharField(max_length=10, choices=Outcome.choices)
    mode = models.CharField(max_length=10, choices=GateMode.choices)
    reasons = models.JSONField(default=list)
    details = models.JSONField(default=dict, blank=True)
    billing_flag = models.BooleanField(default=False)
    duration_ms = models.FloatField(default=0)
    evaluated_at = models.DateTimeField()
    ticket = models.ForeignKey(
        "owners.Ticket",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )

    class Meta:
        ordering = ["-evaluated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "gate", "event", "deliverable"],
                name="evaluation_once_per_gate_event",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "gate", "-evaluated_at"], name="evaluation_gate"),
            models.Index(
                fields=["organization", "deliverable", "-evaluated_at"],
                name="evaluation_deliverable",
            ),
            # An event's verdicts (trail, event page).
            models.Index(fields=["organization", "event"], name="evaluation_event"),
        ]

    def __str__(self) -> str:
        return f"{self.gate} on {self.event_id}: {self.outcome}"


class GateVerdictCount(TenantModel):
    """An enforced gate's verdicts per UTC minute (errors left out): what over-strictness
    reads instead of a day of evaluations, which at hundreds a second is millions of rows.

    Written with the evaluations they count, in the same transaction
    (``gates.services.strictness.count_verdicts``), as *delta* rows: an upsert would lock one
    row per gate and minute until the batch commits, and every worker judging that gate
    would queue behind it. Readers sum; ``strictness.compact`` folds the deltas into one
    compacted row per gate and minute and drops the minutes no window reads any more.
    """

    gate = models.ForeignKey(Gate, on_delete=models.CASCADE, related_name="+", db_index=False)
    minute = models.DateTimeField()
    evaluated = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    compacted = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "gate", "minute"],
                condition=Q(compacted=True),
                name="verdict_count_compacted_unique",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "gate", "minute"], name="verdict_count_gate"),
            models.Index(
                fields=["organization"], condition=Q(compacted=False), name="verdict_count_deltas"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.gate_id} {self.minute:%Y-%m-%d %H:%M}: {self.failed}/{self.evaluated}"


class Artifact(TenantModel):
    """A failing artifact kept with its evaluation (e.g. a screenshot difference image)."""

    evaluation = models.ForeignKey(
        GateEvaluation, on_delete=models.CASCADE, related_name="artifacts", db_index=False
    )
    name = models.CharField(max_length=100)
    content_type = models.CharField(max_length=100)
    data = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["organization", "evaluation"], name="artifact_evaluation"),
        ]

    def __str__(self) -> str:
        return self.name


class TimerStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    SATISFIED = "satisfied", "Satisfied"
    EXPIRED = "expired", "Expired"


class SitemapTimer(TenantModel):
    """After page.published, a sitemap.submitted listing the URL must arrive by due_at."""

    gate = models.ForeignKey(Gate, on_delete=models.CASCADE, related_name="timers", db_index=False)
    deliverable = models.ForeignKey(
        "deliveries.Deliverable", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    started_by = models.ForeignKey(
        "deliveries.Event", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    url = models.CharField(max_length=1000)
    due_at = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=TimerStatus.choices, default=TimerStatus.WAITING
    )
    settled_by = models.ForeignKey(
        "deliveries.Event",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "gate", "started_by"], name="timer_once_per_event"
            )
        ]
        indexes = [
            # The expiry sweep of one organization, and the beat's fan-out (which reads the
            # waiting timers only).
            models.Index(
                fields=["organization", "due_at"],
                condition=Q(status="waiting"),
                name="timer_due",
            )
        ]

    def __str__(self) -> str:
        return f"{self.url} by {self.due_at:%Y-%m-%d %H:%M}"


class GateTicketLink(TenantModel):
    """What opened a gate's ticket, as rows the database checks rather than a parsed key.

    One per ticket, owned by gates because owners sits below it: a failure ticket names its
    gate, deliverable and the evaluation that opened it; a triage ticket its gate only.
    ``Ticket.source_key`` stays what it always was, the idempotency key, and nothing more.
    """

    ticket = models.OneToOneField(
        "owners.Ticket", primary_key=True, on_delete=models.CASCADE, related_name="gate_link"
    )
    gate = models.ForeignKey(
        Gate, on_delete=models.PROTECT, related_name="ticket_links", db_index=False
    )
    deliverable = models.ForeignKey(
        "deliveries.Deliverable",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    # One ticket per evaluation, checked per organization (an evaluation has one).
    evaluation = models.ForeignKey(
        GateEvaluation,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="opened",
        db_index=False,
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "evaluation"], name="gate_link_once_per_evaluation"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "gate", "deliverable"], name="gate_ticket_link"),
        ]

    def __str__(self) -> str:
        return f"{self.gate} -> {self.ticket_id}"

    def public_ids(self) -> dict:
        """For the API and the portal: slugs, references and UUIDs, never integer keys."""
        return {
            "kind": "gate_evaluation" if self.evaluation_id else "gate_triage",
            "gate": self.gate.slug,
            "deliverable_id": self.deliverable.deliverable_id if self.deliverable_id else None,
            "evaluation_id": str(self.evaluation_id) if self.evaluation_id else None,
        }
