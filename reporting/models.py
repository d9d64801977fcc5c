"""Reporting: search performance, CRM touches, revenue, daily attribution facts,
attribution mismatches (with their forensics tickets) and daily exports."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from meshline.ids import uuid7
from meshline.models import TenantModel


class AttributionModel(models.TextChoices):
    FIRST_TOUCH = "first_touch", "First touch"
    LAST_TOUCH = "last_touch", "Last touch"
    LINEAR = "linear", "Linear"


class TouchType(models.TextChoices):
    VISIT = "visit", "Visit"
    MQL = "mql", "MQL"
    SQL = "sql", "SQL"
    OPPORTUNITY = "opportunity", "Opportunity"
    CLOSED_WON = "closed_won", "Closed won"


class ReportingSettings(TenantModel):
    """Per organization: which attribution model the portal and exports show, and the window."""

    attribution_model = models.CharField(
        max_length=20, choices=AttributionModel.choices, default=AttributionModel.LAST_TOUCH
    )
    window_days = models.PositiveIntegerField(
        default=30, help_text="Touches within this many days count for a deliverable."
    )

    class Meta:
        verbose_name_plural = "reporting settings"
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="reporting_settings_once")
        ]

    def __str__(self) -> str:
        return f"{self.get_attribution_model_display()}, {self.window_days} days"


class SearchPerformance(TenantModel):
    """One page's search numbers for one day, as Search Console exports them.

    Keyed by (site, date, normalised URL): a re-sent day replaces its rows, and an event
    for the same page and day overwrites rather than adds. ``deliverable`` is empty when no
    deliverable has that URL: such rows are kept and reported as unmatched.
    """

    site = models.CharField(max_length=255)
    date = models.DateField()
    url = models.CharField(max_length=1000)
    deliverable = models.ForeignKey(
        "deliveries.Deliverable",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="search_rows",
        db_index=False,
    )
    impressions = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    ctr = models.FloatField(default=0)
    position = models.FloatField(null=True, blank=True)
    # When Meshline was told these numbers: the export event's received_at, or the bulk
    # import's time. An event received no later never overwrites them (a replay, a lag).
    as_of = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "site", "date", "url"], name="search_row_once"
            )
        ]
        indexes = [
            models.Index(fields=["organization", "deliverable", "date"], name="search_deliverable"),
            models.Index(fields=["organization", "date"], name="search_date"),
        ]

    def __str__(self) -> str:
        return f"{self.url} on {self.date}: {self.impressions}/{self.clicks}"


class CrmTouch(TenantModel):
    """A CRM touch (visit, MQL, SQL, opportunity, closed-won) from a ``crm.touch`` event."""

    touch_id = models.CharField(max_length=200)
    # One touch per event (crm_touch_once_per_event).
    event = models.ForeignKey(
        "deliveries.Event", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    deliverable = models.ForeignKey(
        "deliveries.Deliverable",
        on_delete=models.PROTECT,
        related_name="crm_touches",
        db_index=False,
    )
    touch_type = models.CharField(max_length=20, choices=TouchType.choices)
    contact_id = models.CharField(max_length=200, blank=True)
    landing_url = models.CharField(max_length=1000, blank=True)
    utm = models.JSONField(default=dict, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    occurred_at = models.DateTimeField()

    class Meta:
        ordering = ["occurred_at"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "touch_id"], name="crm_touch_once"),
            models.UniqueConstraint(
                fields=["organization", "event"], name="crm_touch_once_per_event"
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization", "deliverable", "occurred_at"], name="touch_deliverable"
            ),
            models.Index(
                fields=["organization", "contact_id", "occurred_at"], name="touch_contact"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.touch_type} {self.touch_id}"


class RevenueRow(TenantModel):
    """Recognised revenue (an invoice or opportunity) from a ``revenue.recognized`` event."""

    reference = models.CharField(max_length=200)
    # One row per event (revenue_once_per_event).
    event = models.ForeignKey(
        "deliveries.Event", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    deliverable = models.ForeignKey(
        "deliveries.Deliverable",
        on_delete=models.PROTECT,
        related_name="revenue_rows",
        db_index=False,
    )
    contact_id = models.CharField(max_length=200, blank=True)
    amount = models.DecimalField(max_digits=14, decimal_places=2)
    currency = models.CharField(max_length=3)
    date = models.DateField()

    class Meta:
        ordering = ["date", "reference"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "reference"], name="revenue_once"),
            models.UniqueConstraint(
                fields=["organization", "event"], name="revenue_once_per_event"
            ),
        ]
        indexes = [models.Index(fields=["organization", "date"], name="revenue_date")]

    def __str__(self) -> str:
        return f"{self.reference}: {self.amount} {self.currency}"


class AttributionFact(TenantModel):
    """A deliverable's numbers for one day under one attribution model.

    Written by the nightly job (services.attribution.compute_day), which replaces a day's
    facts as a whole, so re-running a day never doubles it. The portal and the exports
    read these rows and never recompute attribution per request.
    """

    deliverable = models.ForeignKey(
        "deliveries.Deliverable",
        on_delete=models.CASCADE,
        related_name="attribution_facts",
        db_index=False,
    )
    date = models.DateField()
    model = models.CharField(max_length=20, choices=AttributionModel.choices)
    impressions = models.PositiveBigIntegerField(default=0)
    clicks = models.PositiveBigIntegerField(default=0)
    # Impression-weighted mean position of the day's rows (None without impressions).
    position = models.FloatField(null=True, blank=True)
    # Touches that day by type: columns, not JSON, so periods sum in SQL.
    touches_visit = models.PositiveIntegerField(default=0)
    touches_mql = models.PositiveIntegerField(default=0)
    touches_sql = models.PositiveIntegerField(default=0)
    touches_opportunity = models.PositiveIntegerField(default=0)
    touches_closed_won = models.PositiveIntegerField(default=0)
    attributed_revenue = models.DecimalField(max_digits=16, decimal_places=4, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "deliverable", "date", "model"], name="fact_once"
            )
        ]
        indexes = [models.Index(fields=["organization", "model", "date"], name="fact_day")]

    def __str__(self) -> str:
        return f"{self.deliverable_id} {self.date} {self.model}"


class AttributionShare(TenantModel):
    """The share of one revenue row credited to one deliverable under one model.

    Written with the facts of the revenue's day; the forensic report lists these rows, so
    every attributed amount links back to its revenue row and the touches behind it.
    """

    revenue = models.ForeignKey(
        RevenueRow, on_delete=models.CASCADE, related_name="shares", db_index=False
    )
    deliverable = models.ForeignKey(
        "deliveries.Deliverable",
        on_delete=models.CASCADE,
        related_name="attribution_shares",
        db_index=False,
    )
    model = models.CharField(max_length=20, choices=AttributionModel.choices)
    share = models.DecimalField(max_digits=9, decimal_places=8)
    amount = models.DecimalField(max_digits=16, decimal_places=4)
    touches = models.PositiveIntegerField(default=0, help_text="Touches behind the share.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "revenue", "deliverable", "model"], name="share_once"
            )
        ]
        indexes = [models.Index(fields=["organization", "deliverable"], name="share_deliverable")]

    def __str__(self) -> str:
        return f"{self.revenue_id} -> {self.deliverable_id} ({self.model}): {self.share}"


class MismatchStatus(models.TextChoices):
    OPEN = "open", "Open"
    RESOLVED = "resolved", "Resolved"


class AttributionMismatch(TenantModel):
    """A deliverable with impressions and no CRM touch within the window.

    Also the link row of the forensics ticket it opened (``ticket``, one-to-one, checked by
    the database): ``Ticket.opened_by()`` reads it through the ``ticket_sources`` entry.
    At most one open mismatch per deliverable; a touch resolves it and its ticket.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    deliverable = models.ForeignKey(
        "deliveries.Deliverable",
        on_delete=models.PROTECT,
        related_name="attribution_mismatches",
        db_index=False,
    )
    detected_on = models.DateField()
    window_start = models.DateField()
    impressions = models.PositiveBigIntegerField(default=0)
    status = models.CharField(
        max_length=10, choices=MismatchStatus.choices, default=MismatchStatus.OPEN
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        CrmTouch, null=True, blank=True, on_delete=models.PROTECT, related_name="+", db_index=False
    )

    ticket = models.OneToOneField(
        "owners.Ticket",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="attribution_mismatch",
    )

    class Meta:
        ordering = ["-detected_on"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "deliverable"],
                condition=Q(status="open"),
                name="mismatch_open_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.deliverable_id} since {self.window_start}"

    def public_ids(self) -> dict:
        """For Ticket.opened_by(): UUIDs and references, never integer keys."""
        return {
            "kind": "attribution_mismatch",
            "mismatch_id": str(self.pk),
            "deliverable_id": self.deliverable.deliverable_id,
        }


class ExportFormat(models.TextChoices):
    CSV = "csv", "CSV"
    PARQUET = "parquet", "Parquet"


class DailyExport(TenantModel):
    """One organization's per-deliverable export of one day, stored through Django storage."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    date = models.DateField()
    format = models.CharField(max_length=10, choices=ExportFormat.choices)
    file = models.FileField(upload_to="exports/", max_length=500)
    rows = models.PositiveIntegerField(default=0)
    size_bytes = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-date", "format"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "date", "format"], name="export_once_per_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.date} {self.format}"

    @property
    def filename(self) -> str:
        return f"deliverables-{self.date.isoformat()}.{self.format}"


class AuditFinding(models.TextChoices):
    CONFIRMED = "confirmed", "Report confirmed: the trail, tickets and revenue agree"
    ISSUE = "issue", "Issue found (say what in the notes)"


class SampleAudit(TenantModel):
    """One month's sample audit: deliverables drawn at random, reproducibly (the seed is
    derived from the organization and the month, and stored), each with its forensic report
    as a PDF frozen at the draw, for a person to review and record what they found."""

    SIZE = 10

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    month = models.DateField(help_text="The first day of the audited month.")
    seed = models.BigIntegerField()
    drawn_at = models.DateTimeField()
    population = models.PositiveIntegerField(help_text="Deliverables it was drawn from.")

    class Meta:
        ordering = ["-month"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "month"], name="audit_once_a_month")
        ]

    def __str__(self) -> str:
        return f"Sample audit {self.month:%Y-%m}"

    @property
    def label(self) -> str:
        return f"{self.month:%Y-%m}"


class SampleAuditItem(TenantModel):
    audit = models.ForeignKey(
        SampleAudit, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    deliverable = models.ForeignKey(
        "deliveries.Deliverable", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    position = models.PositiveSmallIntegerField()
    report = models.FileField(upload_to="audits/", max_length=500)
    report_sha256 = models.CharField(max_length=64)
    finding = models.CharField(max_length=10, choices=AuditFinding.choices, blank=True)
    notes = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "audit", "deliverable"], name="audit_item_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.audit} #{self.position}"
