"""Owners: roles, the owner map, calendars, rotas, escalation policies, tickets, notifications.

Configuration rows (roles, rules, calendars, rotas, policies) are versioned with
django-simple-history. A ticket snapshots the rule and policy that applied when it opened,
so later edits never change tickets already running.
"""

from datetime import time

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist, ValidationError
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from deliveries.models import Deliverable, DeliverableType, Tier
from meshline import outbound
from meshline.ids import uuid7
from meshline.models import TenantModel, validate_timezone


class OwnerRole(TenantModel):
    """A role that owns work ("SEO Delivery Owner"); people are attached through rotas."""

    slug = models.SlugField(max_length=63)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="owner_role_slug_unique")
        ]

    def __str__(self) -> str:
        return self.name


# --- business calendars -------------------------------------------------------------------


def parse_working_hours(raw) -> dict[int, tuple[tuple[time, time], ...]]:
    """``{"0": [["09:00", "17:30"]], ...}`` (0 = Monday) → weekday → ((start, end), ...)."""
    if not isinstance(raw, dict):
        raise ValidationError("Working hours must map weekday numbers (0=Monday) to intervals.")
    parsed: dict[int, tuple[tuple[time, time], ...]] = {}
    for key, intervals in raw.items():
        try:
            weekday = int(key)
        except (TypeError, ValueError):
            raise ValidationError(
                f"'{key}' is not a weekday number (0=Monday ... 6=Sunday)."
            ) from None
        if not 0 <= weekday <= 6 or not isinstance(intervals, list):
            raise ValidationError(f"Weekday {key}: use 0-6 and a list of [start, end] pairs.")
        pairs = []
        for pair in intervals:
            try:
                # "24:00" means midnight at the end of the day (stored as time(0)).
                start, end = (
                    time(0) if part == "24:00" else time.fromisoformat(part) for part in pair
                )
            except (TypeError, ValueError):
                raise ValidationError(
                    f'Weekday {key}: {pair!r} is not ["HH:MM", "HH:MM"].'
                ) from None
            pairs.append((start, end))
        parsed[weekday] = tuple(sorted(pairs))
    return parsed


class BusinessCalendar(TenantModel):
    """Working hours and holidays in a time zone; deadlines are measured in this time.

    One calendar per organization is the default; a client may have its own.
    """

    name = models.CharField(max_length=100)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    working_hours = models.JSONField(
        default=dict,
        help_text='Weekday (0=Monday) to local intervals, e.g. {"0": [["09:00", "17:30"]]}.',
    )
    is_default = models.BooleanField(default=False)
    client = models.OneToOneField(
        "deliveries.Client",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="business_calendar",
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization"],
                condition=Q(is_default=True),
                name="one_default_calendar_per_org",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.timezone})"

    def clean(self) -> None:
        from owners.business_time import validate_intervals

        try:
            problems = validate_intervals(parse_working_hours(self.working_hours))
        except ValidationError as exc:
            problems = exc.messages
        if problems:
            raise ValidationError({"working_hours": problems})


class Holiday(TenantModel):
    calendar = models.ForeignKey(
        BusinessCalendar, on_delete=models.CASCADE, related_name="holidays"
    )
    date = models.DateField()
    name = models.CharField(max_length=100, blank=True)

    class Meta:
        ordering = ["date"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "calendar", "date"], name="holiday_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.name}"


# --- escalation policies ------------------------------------------------------------------


class WaitKind(models.TextChoices):
    BUSINESS = "business", "Business minutes"
    WALL = "wall", "Wall-clock minutes"


class StepAction(models.TextChoices):
    NOTIFY_PRIMARY = "notify_primary", "Notify the on-duty primary"
    NOTIFY_BACKUP = "notify_backup", "Notify the on-duty backup"
    NOTIFY_ROLE = "notify_role", "Notify another role's on-duty person"
    NOTIFY_PEOPLE = "notify_people", "Notify named people"
    WEBHOOK = "webhook", "Call a webhook"


class EscalationPolicy(TenantModel):
    """Ordered steps taken while a ticket waits; the steps repeat ``repeat`` more times."""

    name = models.CharField(max_length=100)
    repeat = models.PositiveSmallIntegerField(
        default=0, help_text="How many more times to run the steps after the first pass."
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "escalation policies"

    def __str__(self) -> str:
        return self.name

    def snapshot(self) -> dict:
        """The policy as it stands, frozen into each ticket that opens under it."""
        return {
            "id": self.pk,
            "name": self.name,
            "repeat": self.repeat,
            # One query for every step's people, not one per step (this runs in open_ticket).
            "steps": [step.snapshot() for step in self.steps.prefetch_related("people")],
        }


class EscalationStep(TenantModel):
    policy = models.ForeignKey(EscalationPolicy, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveSmallIntegerField(default=0)
    wait_minutes = models.PositiveIntegerField(
        default=30, help_text="Wait this long (after opening or the previous step) before acting."
    )
    wait_kind = models.CharField(max_length=10, choices=WaitKind.choices, default=WaitKind.BUSINESS)
    action = models.CharField(max_length=20, choices=StepAction.choices)
    target_role = models.ForeignKey(
        OwnerRole, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    people = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    webhook = models.ForeignKey(
        "owners.WebhookEndpoint", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    history = HistoricalRecords(m2m_fields=[people])

    class Meta:
        ordering = ["policy", "position", "pk"]

    def __str__(self) -> str:
        return f"{self.position}: {self.get_action_display()} after {self.wait_minutes} min"

    def clean(self) -> None:
        if self.action == StepAction.NOTIFY_ROLE and self.target_role_id is None:
            raise ValidationError(
                {"target_role": "Choose the role whose on-duty person to notify."}
            )
        if self.action == StepAction.WEBHOOK and self.webhook_id is None:
            raise ValidationError({"webhook": "Choose the webhook to call."})

    def snapshot(self) -> dict:
        return {
            "position": self.position,
            "wait_minutes": self.wait_minutes,
            "wait_kind": self.wait_kind,
            "action": self.action,
            "target_role": self.target_role_id,
            "people": sorted(person.pk for person in self.people.all()),
            "webhook": self.webhook_id,
        }


# --- the owner map ------------------------------------------------------------------------


class OwnerRule(TenantModel):
    """(event type, client tier, deliverable type) → owner role, SLOs and escalation policy.

    Blank keys match anything. The most specific matching rule wins (most keys set); among
    equally specific rules the lowest ``position`` wins, then the lowest id.
    """

    event_type = models.CharField(max_length=64, blank=True, help_text="Blank: any event type.")
    client_tier = models.CharField(
        max_length=20, choices=Tier.choices, blank=True, help_text="Blank: any tier."
    )
    deliverable_type = models.CharField(
        max_length=20, choices=DeliverableType.choices, blank=True, help_text="Blank: any type."
    )
    owner_role = models.ForeignKey(OwnerRole, on_delete=models.PROTECT, related_name="rules")
    backup_role = models.ForeignKey(
        OwnerRole, null=True, blank=True, on_delete=models.PROTECT, related_name="backup_rules"
    )
    respond_minutes = models.PositiveIntegerField(default=60)
    resolve_minutes = models.PositiveIntegerField(default=8 * 60)
    escalation_policy = models.ForeignKey(
        EscalationPolicy, null=True, blank=True, on_delete=models.PROTECT, related_name="rules"
    )
    position = models.PositiveIntegerField(default=100, help_text="Tie-break: lower wins.")
    is_active = models.BooleanField(default=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["position", "pk"]

    def __str__(self) -> str:
        keys = [
            self.event_type or "any event",
            self.client_tier or "any tier",
            self.deliverable_type or "any type",
        ]
        return f"{' / '.join(keys)} → {self.owner_role}"

    @property
    def specificity(self) -> int:
        return sum(bool(key) for key in (self.event_type, self.client_tier, self.deliverable_type))

    def matches(self, event_type: str, client_tier: str, deliverable_type: str) -> bool:
        return (
            (not self.event_type or self.event_type == event_type)
            and (not self.client_tier or self.client_tier == client_tier)
            and (not self.deliverable_type or self.deliverable_type == deliverable_type)
        )

    def sort_key(self) -> tuple:
        return (-self.specificity, self.position, self.pk)

    def snapshot(self) -> dict:
        return {
            "id": self.pk,
            "event_type": self.event_type,
            "client_tier": self.client_tier,
            "deliverable_type": self.deliverable_type,
            "owner_role": self.owner_role_id,
            "owner_role_name": self.owner_role.name,
            "backup_role": self.backup_role_id,
            "respond_minutes": self.respond_minutes,
            "resolve_minutes": self.resolve_minutes,
            "escalation_policy": self.escalation_policy_id,
            "position": self.position,
        }


# --- rotas --------------------------------------------------------------------------------


class Frequency(models.TextChoices):
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"


class Rota(TenantModel):
    """Who holds a role over time: layers of rotations plus overrides, in one time zone."""

    role = models.OneToOneField(OwnerRole, on_delete=models.CASCADE, related_name="rota")
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    # Handoffs up to here are in the trail (owners.services.rotas.record_handoffs).
    handoffs_recorded_until = models.DateTimeField(null=True, blank=True)
    history = HistoricalRecords()

    def __str__(self) -> str:
        return f"Rota for {self.role}"


class RotaLayer(TenantModel):
    rota = models.ForeignKey(Rota, on_delete=models.CASCADE, related_name="layers")
    name = models.CharField(max_length=100)
    priority = models.IntegerField(default=1, help_text="Higher wins where layers overlap.")
    frequency = models.CharField(max_length=10, choices=Frequency.choices, default=Frequency.WEEKLY)
    interval = models.PositiveSmallIntegerField(default=1)
    handoff_time = models.TimeField(default=time(9))
    start_date = models.DateField(help_text="Local date of the first handoff.")
    until = models.DateField(null=True, blank=True)
    people = models.JSONField(
        default=list, help_text="User ids in rotation order: shift k goes to people[k % n]."
    )
    windows = models.JSONField(
        default=list,
        blank=True,
        help_text='Optional: [{"weekdays": [0,1,2,3,4], "start": "09:00", "end": "18:00"}].',
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["-priority", "pk"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_frequency_display()})"

    def clean(self) -> None:
        from owners.rota_schedule import validate_layer
        from owners.services.schedules import layer_spec

        try:
            problems = validate_layer(layer_spec(self))
        except (KeyError, TypeError, ValueError) as exc:
            problems = [f"Invalid windows: {exc}"]
        if problems:
            raise ValidationError(problems)
        # Someone outside the organization on its rota would be sent its tickets.
        organization_id = self.organization_id or (
            self.rota.organization_id if self.rota_id else None
        )
        if organization_id is not None:
            from meshline.models import Membership

            members = set(
                Membership.objects.filter(organization=organization_id).values_list(
                    "user_id", flat=True
                )
            )
            strangers = [person for person in self.people if person not in members]
            if strangers:
                raise ValidationError({"people": f"Not members of this organization: {strangers}."})


class RotaOverride(TenantModel):
    rota = models.ForeignKey(Rota, on_delete=models.CASCADE, related_name="overrides")
    person = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    start = models.DateTimeField()
    end = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["start"]

    def __str__(self) -> str:
        return f"{self.person} {self.start:%Y-%m-%d %H:%M} to {self.end:%Y-%m-%d %H:%M}"

    def clean(self) -> None:
        if self.start and self.end and self.end <= self.start:
            raise ValidationError({"end": "The override must end after it starts."})


# --- notifications ------------------------------------------------------------------------


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

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
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
    )
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=ChannelKind.choices)
    address = models.CharField(max_length=1000)
    # Where a webhook's signing secret is read at send time (never copied here).
    channel = models.ForeignKey(
        NotificationChannel, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    endpoint = models.ForeignKey(
        WebhookEndpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
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

    def __str__(self) -> str:
        return f"{self.kind} to {self.address}: {self.subject}"

    def signing_secret(self) -> str:
        """The current secret of the channel or endpoint this webhook goes to ("" if gone)."""
        source = self.channel or self.endpoint
        return source.secret if source is not None else ""


class NotificationAttempt(TenantModel):
    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="log")
    at = models.DateTimeField(auto_now_add=True)
    ok = models.BooleanField()
    detail = models.TextField(blank=True)

    class Meta:
        ordering = ["at"]


# --- tickets ------------------------------------------------------------------------------


class TicketSource(models.TextChoices):
    GATE_FAILURE = "gate_failure", "Gate failure"
    CHANGE_REQUEST = "change_request", "Change request"
    INCIDENT = "incident", "Incident"
    TRIAGE = "triage", "Gate triage"
    ATTRIBUTION = "attribution", "Attribution forensics"
    BILLING = "billing", "Billing exception"
    FLOW = "flow", "Flow breach or exception"
    MANUAL = "manual", "Manual"


class TicketStatus(models.TextChoices):
    OPEN = "open", "Open"
    ACKNOWLEDGED = "acknowledged", "Acknowledged"
    RESOLVED = "resolved", "Resolved"
    CANCELLED = "cancelled", "Cancelled"


ACTIVE_STATUSES = (TicketStatus.OPEN, TicketStatus.ACKNOWLEDGED)


def overdue_q(now) -> Q:
    """Active tickets past a deadline: respond-by while still open, resolve-by while active.
    The one definition the board filter and the dashboard count by."""
    return Q(status__in=ACTIVE_STATUSES) & (
        Q(status=TicketStatus.OPEN, respond_due_at__lt=now) | Q(resolve_due_at__lt=now)
    )


class Priority(models.TextChoices):
    P1 = "p1", "P1 (urgent)"
    P2 = "p2", "P2 (high)"
    P3 = "p3", "P3 (normal)"
    P4 = "p4", "P4 (low)"


class Ticket(TenantModel):
    """A unit of owned work. Opened once per source key; every change is in the trail."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    source = models.CharField(max_length=20, choices=TicketSource.choices)
    source_key = models.CharField(max_length=200)
    title = models.CharField(max_length=300)
    deliverable = models.ForeignKey(
        Deliverable, null=True, blank=True, on_delete=models.PROTECT, related_name="tickets"
    )
    priority = models.CharField(max_length=2, choices=Priority.choices, default=Priority.P3)
    status = models.CharField(
        max_length=20, choices=TicketStatus.choices, default=TicketStatus.OPEN
    )
    owner_role = models.ForeignKey(OwnerRole, on_delete=models.PROTECT, related_name="tickets")
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    calendar = models.ForeignKey(
        BusinessCalendar, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rule_snapshot = models.JSONField(default=dict, blank=True)
    policy_snapshot = models.JSONField(default=dict, blank=True)
    context = models.JSONField(default=dict, blank=True)
    opened_at = models.DateTimeField()
    respond_due_at = models.DateTimeField(null=True, blank=True)
    resolve_due_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    closed_note = models.TextField(blank=True)
    # How many escalation steps have run, and when the next one is due (None: none left).
    escalation_level = models.PositiveIntegerField(default=0)
    next_escalation_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "source", "source_key"], name="ticket_source_unique"
            )
        ]
        indexes = [
            models.Index(
                fields=["organization", "next_escalation_at"],
                condition=Q(status__in=["open", "acknowledged"], next_escalation_at__isnull=False),
                name="ticket_escalation_due",
            ),
            models.Index(fields=["organization", "status", "owner_role"], name="ticket_board"),
            models.Index(fields=["organization", "deliverable"], name="ticket_deliverable"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def opened_by(self) -> dict | None:
        """Public ids of what opened this ticket, from the app whose link row names it."""
        from meshline.extensions import ticket_sources

        for source in ticket_sources:
            try:
                return source.describe(getattr(self, source.relation))
            except ObjectDoesNotExist:
                continue
        return None

    @staticmethod
    def source_relations() -> list[str]:
        """select_related paths that make ``opened_by()`` free for a list of tickets."""
        from meshline.extensions import ticket_sources

        return [path for source in ticket_sources for path in source.select]
