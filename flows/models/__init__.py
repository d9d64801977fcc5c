"""Flows: trigger-to-outcome paths (catalog), their runs, the tickets runs open, and
governed configuration changes (proposed, approved by a second admin, rolled back).

A flow keeps its milestones in one JSON list so that one history row of the flow is one
whole version of it: a rollback restores milestones, owner and flags together.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from deliveries.models import DeliverableType, Tier
from meshline.ids import uuid7
from meshline.models import TenantModel
from owners.models import WaitKind


def validate_milestones(value) -> list[str]:
    """Problems with a milestones list ``[{"event_type", "name", "due_minutes", "due_kind"}]``."""
    if not isinstance(value, list):
        return ["Milestones must be a list of objects."]
    problems, seen = [], set()
    for index, item in enumerate(value):
        where = f"Milestone {index + 1}"
        if not isinstance(item, dict) or not isinstance(item.get("event_type"), str):
            problems.append(f"{where}: needs an event_type.")
            continue
        if not item["event_type"].strip():
            problems.append(f"{where}: needs an event_type.")
        if item["event_type"] in seen:
            problems.append(f"{where}: {item['event_type']} is listed twice.")
        seen.add(item["event_type"])
        minutes = item.get("due_minutes", 0)
        if not isinstance(minutes, int) or isinstance(minutes, bool) or minutes < 0:
            problems.append(f"{where}: due_minutes must be a whole number of minutes (0: none).")
        if item.get("due_kind", WaitKind.BUSINESS) not in WaitKind.values:
            problems.append(f"{where}: due_kind must be one of {', '.join(WaitKind.values)}.")
        unknown = set(item) - {"event_type", "name", "due_minutes", "due_kind"}
        if unknown:
            problems.append(f"{where}: unknown keys {', '.join(sorted(unknown))}.")
    return problems


class Flow(TenantModel):
    """A trigger-to-outcome path: trigger event and conditions, ordered milestones with due
    times (measured from the trigger), the outcome, its owner, runbook and governance flags."""

    slug = models.SlugField(max_length=63, db_index=False)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    template = models.SlugField(
        max_length=63, blank=True, db_index=False, help_text="Shipped template, if any."
    )
    trigger_event_type = models.CharField(max_length=64)
    client_tiers = models.JSONField(default=list, blank=True, help_text="Empty: every tier.")
    deliverable_types = models.JSONField(
        default=list, blank=True, help_text="Empty: every deliverable type."
    )
    payload_conditions = models.JSONField(
        default=dict,
        blank=True,
        help_text='Trigger payload fields that must equal these values, e.g. {"stage": "mql"}.',
    )
    required_fields = models.JSONField(
        default=list,
        blank=True,
        help_text="Trigger payload fields the flow needs; missing ones open an exception ticket.",
    )
    milestones = models.JSONField(
        default=list,
        blank=True,
        help_text='Ordered: [{"event_type": "asset.approved", "name": "Approved", '
        '"due_minutes": 960, "due_kind": "business"}]. 0 minutes: no due time.',
    )
    outcome_event_type = models.CharField(max_length=64)
    due_minutes = models.PositiveIntegerField(
        default=0, help_text="The whole flow's due time after the trigger; 0: none."
    )
    due_kind = models.CharField(max_length=10, choices=WaitKind.choices, default=WaitKind.BUSINESS)
    owner_role = models.ForeignKey(
        "owners.OwnerRole",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="flows",
        db_index=False,
        help_text="Who gets breach tickets. Blank: the owner map decides.",
    )
    runbook = models.TextField(blank=True, help_text="Markdown; attached to every breach ticket.")
    affects_billing = models.BooleanField(default=False)
    affects_privacy = models.BooleanField(default=False)
    affects_client_sla = models.BooleanField(default=False)
    essential = models.BooleanField(default=False)
    is_active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="flow_slug_unique")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def needs_approval(self) -> bool:
        """Flows that touch billing, privacy or a client SLA change only by four-eyes."""
        return self.affects_billing or self.affects_privacy or self.affects_client_sla

    @property
    def event_types(self) -> set[str]:
        return {
            self.trigger_event_type,
            self.outcome_event_type,
            *(m["event_type"] for m in self.milestones),
        }

    def milestone_types(self) -> list[str]:
        return [m["event_type"] for m in self.milestones]

    def triggered_by(self, event_type: str, tier: str, deliverable_type: str, payload) -> bool:
        return (
            self.is_active
            and event_type == self.trigger_event_type
            and (not self.client_tiers or tier in self.client_tiers)
            and (not self.deliverable_types or deliverable_type in self.deliverable_types)
            and all(payload.get(key) == value for key, value in self.payload_conditions.items())
        )

    def missing_fields(self, payload) -> list[str]:
        return [f for f in self.required_fields if payload.get(f) in (None, "")]

    def clean(self) -> None:
        errors = {}
        problems = validate_milestones(self.milestones)
        if problems:
            errors["milestones"] = problems
        if not isinstance(self.client_tiers, list) or set(self.client_tiers) - set(Tier.values):
            errors["client_tiers"] = f"A list of tiers: {', '.join(Tier.values)}."
        if not isinstance(self.deliverable_types, list) or set(self.deliverable_types) - set(
            DeliverableType.values
        ):
            errors["deliverable_types"] = f"A list of types: {', '.join(DeliverableType.values)}."
        if not isinstance(self.payload_conditions, dict):
            errors["payload_conditions"] = "An object of field names to values."
        if not isinstance(self.required_fields, list) or not all(
            isinstance(f, str) for f in self.required_fields
        ):
            errors["required_fields"] = "A list of payload field names."
        if not problems and self.outcome_event_type in self.milestone_types():
            errors["outcome_event_type"] = "The outcome is not also a milestone."
        if (
            self.owner_role_id
            and self.organization_id
            and self.owner_role.organization_id != self.organization_id
        ):
            errors["owner_role"] = "Choose a role of this organization."
        if errors:
            raise ValidationError(errors)


class RunState(models.TextChoices):
    RUNNING = "running", "Running"
    BREACHED = "breached", "Breached"
    COMPLETED = "completed", "Completed"
    EXCEPTION = "exception", "Exception (missing data)"
    PAUSED = "paused", "Paused (incident)"


OPEN_STATES = (RunState.RUNNING, RunState.BREACHED, RunState.PAUSED)


class FlowRun(TenantModel):
    """One deliverable's way through a flow, started by a trigger event.

    ``reached`` maps milestone event types to when they happened; entries are only ever
    added, so a late or repeated event never moves a run back. ``due_at`` is the earliest
    due time still ahead of the run (None once breached or done): the sweep's only input.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    flow = models.ForeignKey(Flow, on_delete=models.PROTECT, related_name="runs", db_index=False)
    deliverable = models.ForeignKey(
        "deliveries.Deliverable",
        on_delete=models.PROTECT,
        related_name="flow_runs",
        db_index=False,
    )
    client = models.ForeignKey(
        "deliveries.Client", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    trigger_event = models.ForeignKey(
        "deliveries.Event", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    state = models.CharField(max_length=10, choices=RunState.choices, default=RunState.RUNNING)
    started_at = models.DateTimeField()
    reached = models.JSONField(default=dict, blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    due_for = models.CharField(max_length=64, blank=True, help_text="What due_at waits for.")
    breached_at = models.DateTimeField(null=True, blank=True)
    breached_on = models.CharField(max_length=64, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    missing_fields = models.JSONField(default=list, blank=True)
    # Incident mode: while paused the run's clock stops; the time lost is credited, so its
    # due times are measured from started_at + credited_seconds.
    paused_at = models.DateTimeField(null=True, blank=True)
    credited_seconds = models.PositiveBigIntegerField(default=0)
    note = models.TextField(blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "flow", "trigger_event"], name="flow_run_once_per_trigger"
            ),
            # One open run per flow and deliverable: a repeated trigger joins it.
            models.UniqueConstraint(
                fields=["organization", "flow", "deliverable"],
                condition=Q(state__in=["running", "breached", "paused"]),
                name="flow_run_one_open",
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization", "due_at"],
                condition=Q(state="running", due_at__isnull=False),
                name="flow_run_due",
            ),
            models.Index(fields=["organization", "flow", "-started_at"], name="flow_run_flow"),
            # A deliverable's runs of a flow, newest first: processing reads the one latest
            # run started before its events without reading the deliverable's older runs.
            models.Index(
                fields=["organization", "deliverable", "flow", "started_at", "id"],
                name="flow_run_deliverable_flow",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.flow} for {self.deliverable_id} ({self.state})"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def clock_start(self) -> datetime:
        """Where due times count from: the trigger, moved on by time paused in incidents."""
        return self.started_at + timedelta(seconds=self.credited_seconds)

    @property
    def duration(self):
        return self.completed_at - self.started_at if self.completed_at else None

    def reach(self, event_type: str, at: datetime) -> bool:
        """Mark a milestone reached once; the first time it happened wins."""
        if event_type in self.reached:
            return False
        self.reached[event_type] = at.isoformat()
        return True


class LinkKind(models.TextChoices):
    BREACH = "breach", "Breach"
    EXCEPTION = "exception", "Exception"


class FlowTicketLink(TenantModel):
    """What opened a flow's ticket: the run, and whether it breached or lacked data."""

    ticket = models.OneToOneField(
        "owners.Ticket", primary_key=True, on_delete=models.CASCADE, related_name="flow_link"
    )
    run = models.ForeignKey(
        FlowRun, on_delete=models.PROTECT, related_name="ticket_links", db_index=False
    )
    kind = models.CharField(max_length=10, choices=LinkKind.choices)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "run", "kind"], name="flow_ticket_once_per_kind"
            )
        ]

    def __str__(self) -> str:
        return f"{self.run_id} {self.kind} -> {self.ticket_id}"

    def public_ids(self) -> dict:
        return {
            "kind": f"flow_{self.kind}",
            "gate": None,
            "deliverable_id": self.run.deliverable.deliverable_id,
            "evaluation_id": None,
            "flow": self.run.flow.slug,
            "run_id": str(self.run_id),
        }


# --- incident mode ------------------------------------------------------------------------


class Incident(TenantModel):
    """A declared systemic failure: non-essential flows' runs pause until it ends, and get
    the time back. At most one open incident per organization."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    title = models.CharField(max_length=200)
    declared_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    started_at = models.DateTimeField()
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    paused_runs = models.ManyToManyField(FlowRun, blank=True, related_name="incidents")
    # The trail entry type of the rule that declared it (IncidentRule); empty when an admin
    # did. A rule's incident ends when its condition clears; an admin's only by an admin.
    declared_by_rule = models.CharField(max_length=64, blank=True, default="")

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=Q(ended_at__isnull=True),
                name="one_open_incident",
            )
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.ended_at is None


# --- governed changes ---------------------------------------------------------------------


class IncidentRule(TenantModel):
    """Declare an incident by rule: when the trail records ``on``, pause non-essential flows
    as an admin's incident would; when it records the matching ``until``, end it. Off
    unless an admin enables it (a backlog may be harmless for some agencies)."""

    class Trigger(models.TextChoices):
        PROCESSING_LAGGING = "processing.lagging", "Processing fell behind its lag or depth limit"
        OUTBOUND_OUTAGE = (
            "outbound.outage_started",
            "Several outbound subscriptions' receivers failed at once",
        )

    UNTIL = {
        "processing.lagging": "processing.caught_up",
        "outbound.outage_started": "outbound.outage_ended",
    }

    on = models.CharField(max_length=64, choices=Trigger.choices)
    title = models.CharField(
        max_length=200,
        default="Processing is behind: non-essential flows paused",
        help_text="The incident's title, as owners are told.",
    )
    enabled = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "on"], name="incident_rule_once")
        ]

    def __str__(self) -> str:
        return f"Incident when {self.on}"


class ChangeKind(models.TextChoices):
    FLOW = "flow", "Flow"
    OWNER_RULE = "owner_rule", "Owner rule"
    GATE = "gate", "Gate"
    BILLING_SETTINGS = "billing_settings", "Billing settings"
    APPROVAL_POLICY = "approval_policy", "Approval policy"
    ESCALATION_POLICY = "escalation_policy", "Escalation policy"


class ApprovalPolicy(TenantModel):
    """Which kinds of configuration change wait for a second admin, per organization.

    Every requirement is on until an organization turns it off, and turning one off is
    itself a change that waits for a second admin (one admin alone cannot lift four-eyes);
    turning one on applies at once.
    """

    flows = models.BooleanField(
        default=True,
        help_text="Flows that affect billing, privacy or a client SLA (before or after).",
    )
    owner_rules = models.BooleanField(default=True, help_text="Owner rules (who gets what).")
    enforced_gates = models.BooleanField(
        default=True, help_text="Gates in enforce mode, or being put into it."
    )
    billing_settings = models.BooleanField(
        default=True,
        help_text="Billing settings: tax rate, default rates, the second-approval threshold.",
    )
    escalation_policies = models.BooleanField(
        default=True, help_text="Escalation policies: their steps, waits and repeats."
    )
    history = HistoricalRecords()

    REQUIREMENTS = (
        "flows",
        "owner_rules",
        "enforced_gates",
        "billing_settings",
        "escalation_policies",
    )

    class Meta:
        verbose_name_plural = "approval policies"
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="approval_policy_once")
        ]

    def __str__(self) -> str:
        return "Changes that need a second admin"

    @classmethod
    def for_organization(cls, organization) -> "ApprovalPolicy":
        policy, _ = cls.objects.get_or_create(organization=organization)
        return policy


class ChangeStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    APPLIED = "applied", "Applied"
    REJECTED = "rejected", "Rejected"
    ROLLED_BACK = "rolled_back", "Rolled back"


class Change(TenantModel):
    """A proposed edit of one configuration row, with its diff and dry run.

    Nothing changes until a second admin approves; applying stores the history row it wrote
    and the one before, so a rollback restores exactly the version this change replaced.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    kind = models.CharField(max_length=20, choices=ChangeKind.choices)
    target_id = models.PositiveBigIntegerField()
    target_label = models.CharField(max_length=200)
    before = models.JSONField(default=dict)
    proposed = models.JSONField(default=dict)
    dry_run = models.JSONField(default=list, blank=True)
    reason = models.TextField(blank=True)
    status = models.CharField(
        max_length=12, choices=ChangeStatus.choices, default=ChangeStatus.PROPOSED
    )
    requires_approval = models.BooleanField(default=True)
    proposed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    proposed_at = models.DateTimeField()
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    decision_note = models.TextField(blank=True)
    previous_history_id = models.PositiveBigIntegerField(null=True, blank=True)
    applied_history_id = models.PositiveBigIntegerField(null=True, blank=True)
    rolled_back_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )

    rolled_back_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-proposed_at"]
        indexes = [
            models.Index(fields=["organization", "kind", "target_id"], name="change_target"),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.target_label}: {self.status}"

    def diff(self) -> list[dict]:
        return [
            {"field": name, "before": self.before.get(name), "after": value}
            for name, value in self.proposed.items()
        ]


# Periodic reviews and the weekly assurance check live in their own module.
from flows.models.assurance import AssuranceCheck, Review, ReviewKind  # noqa: E402, F401
