"""Billing: signed scope agreements, billable items beyond them, invoices and credit notes.

Money is ``Decimal`` with two places everywhere (``MONEY``); nothing here is ever a float.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

from meshline.ids import uuid7
from meshline.models import Organization, TenantModel

MONEY = dict(max_digits=14, decimal_places=2)
currency_validator = RegexValidator(r"\A[A-Z]{3}\Z", "Use an ISO 4217 code, e.g. EUR.")


class BillingSettings(TenantModel):
    """One organization's billing configuration. Without a row, billing only records
    agreements and overruns; with one, work outside any agreement is an exception ticket."""

    currency = models.CharField(max_length=3, default="EUR", validators=[currency_validator])
    tax_rate = models.DecimalField(
        max_digits=5,
        decimal_places=4,
        default=Decimal("0.19"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text="Applied to an invoice's subtotal, e.g. 0.19 for 19 %.",
    )
    second_approval_above = models.DecimalField(
        **MONEY,
        default=Decimal("1000.00"),
        help_text="Items whose amount is above this need a second, different approver.",
    )
    default_rates = models.JSONField(
        default=dict,
        blank=True,
        help_text='Rate card for agreements that bring none, e.g. {"hours": {"rate": "95.00", '
        '"unit": "hour"}}.',
    )
    flag_unscoped_work = models.BooleanField(
        default=True, help_text="Open an exception ticket for billable work with no agreement."
    )
    agreement_terms = models.TextField(
        blank=True,
        help_text="Terms printed on every new agreement and signed with it (HTML and PDF). "
        "Placeholders: $organization, $client, $version, $currency, $valid_from, $valid_until, "
        "$accepted_by. Changing it changes agreements signed from now on, never signed ones.",
    )
    invoice_footer = models.TextField(
        blank=True,
        help_text="Printed under every invoice issued from now on: payment terms, bank details. "
        "Placeholders: $organization, $client, $number, $total, $currency.",
    )
    history = HistoricalRecords()

    class Meta:
        verbose_name_plural = "billing settings"
        constraints = [
            models.UniqueConstraint(fields=["organization"], name="billing_settings_once")
        ]

    def __str__(self) -> str:
        return f"Billing settings of {self.organization}"

    def clean(self):
        from billing.services.wording import (
            AGREEMENT_PLACEHOLDERS,
            INVOICE_PLACEHOLDERS,
            unknown_placeholders,
        )

        errors = {}
        for field, allowed in (
            ("agreement_terms", AGREEMENT_PLACEHOLDERS),
            ("invoice_footer", INVOICE_PLACEHOLDERS),
        ):
            unknown = unknown_placeholders(getattr(self, field), allowed)
            if unknown:
                errors[field] = ValidationError(
                    "Unknown placeholder %(names)s; use %(allowed)s (write $$ for a dollar sign).",
                    code="unknown_placeholder",
                    params={
                        "names": ", ".join(f"${n}" for n in unknown),
                        "allowed": ", ".join(f"${n}" for n in sorted(allowed)),
                    },
                )
        if errors:
            raise ValidationError(errors)

    @classmethod
    def for_organization(cls, organization) -> "BillingSettings":
        """The stored row, or an unsaved one with the defaults."""
        found = cls.objects.filter(organization=organization).first()
        return found or cls(organization=organization)


class SigningKey(TenantModel):
    """The organization's Ed25519 key. The public half is published (key_id is its SHA-256
    fingerprint's first 16 hex digits); the private half never leaves the database."""

    key_id = models.CharField(max_length=16, unique=True)
    public_key = models.BinaryField()
    private_key = models.BinaryField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"ed25519:{self.key_id}"


class ImmutableError(ValidationError):
    """A signed agreement or a finalised invoice cannot change."""


class ScopeAgreement(TenantModel):
    """One signed version of what a client agreed: limits, rate card, currency, validity.

    Never edited: an amendment is a new row with the next version. ``canonical`` is the exact
    text that was digested and signed; verification rebuilds it from the columns.
    """

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    client = models.ForeignKey(
        "deliveries.Client", on_delete=models.PROTECT, related_name="agreements", db_index=False
    )
    deliverable = models.ForeignKey(
        "deliveries.Deliverable",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="agreements",
        db_index=False,
        help_text="Empty: the agreement covers all of the client's work.",
    )
    version = models.PositiveIntegerField()
    limits = models.JSONField(default=dict)
    rates = models.JSONField(default=dict)
    currency = models.CharField(max_length=3, validators=[currency_validator])
    valid_from = models.DateTimeField()
    valid_until = models.DateTimeField(null=True, blank=True)
    accepted_by = models.CharField(max_length=200)
    accepted_at = models.DateTimeField()
    # At most one agreement per scope.accepted (agreement_once_per_event).
    source_event = models.ForeignKey(
        "deliveries.Event",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    # The organization's agreement terms as they read at signing (BillingSettings), signed
    # with the rest; empty for agreements signed before terms existed (their canonical form
    # has no "terms" key, so they still verify).
    terms = models.TextField(blank=True, default="")
    canonical = models.TextField()
    digest = models.CharField(max_length=64)
    signature = models.CharField(max_length=100)
    signing_key = models.ForeignKey(
        SigningKey, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-accepted_at", "-version"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "client", "deliverable", "version"],
                name="agreement_version_unique",
            ),
            models.UniqueConstraint(
                fields=["organization", "client", "version"],
                condition=Q(deliverable__isnull=True),
                name="agreement_client_version_unique",
            ),
            models.UniqueConstraint(
                fields=["organization", "source_event"], name="agreement_once_per_event"
            ),
        ]
        indexes = [
            models.Index(
                fields=["organization", "client", "deliverable", "valid_from"],
                name="agreement_in_force",
            )
        ]

    def __str__(self) -> str:
        subject = (self.deliverable_id and self.deliverable) or self.client
        return f"Agreement v{self.version} for {subject}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ImmutableError(
                "A signed agreement cannot be edited; amend it with a new version.",
                code="agreement_immutable",
            )
        super().save(*args, **kwargs)


class ItemStatus(models.TextChoices):
    PROPOSED = "proposed", "Proposed"
    AWAITING_SECOND = "awaiting_second", "Awaiting second approval"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    INVOICED = "invoiced", "Invoiced"


OPEN_ITEM_STATUSES = [ItemStatus.PROPOSED, ItemStatus.AWAITING_SECOND]


class BillableItem(TenantModel):
    """Work beyond an agreement's clause, priced by its rate card: proposed by Meshline,
    decided by finance. ``idempotency_key`` makes replayed events bill once."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    agreement = models.ForeignKey(
        ScopeAgreement, on_delete=models.PROTECT, related_name="items", db_index=False
    )
    client = models.ForeignKey(
        "deliveries.Client", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    # Empty for a recurring fee of a client-wide agreement: it is no deliverable's work.
    deliverable = models.ForeignKey(
        "deliveries.Deliverable",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="billable_items",
        db_index=False,
    )
    clause = models.CharField(
        max_length=64, help_text="The agreement limit it exceeds, or its recurring fee."
    )
    description = models.CharField(max_length=300)
    quantity = models.DecimalField(max_digits=12, decimal_places=2)
    # What detection proposed, kept when finance adjusts ``quantity``: detection compares the
    # excess with this, so an adjustment never makes the same work proposed again.
    proposed_quantity = models.DecimalField(max_digits=12, decimal_places=2)
    unit = models.CharField(max_length=40)
    rate = models.DecimalField(**MONEY)
    amount = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3, validators=[currency_validator])
    events = models.ManyToManyField("deliveries.Event", related_name="+")
    evidence = models.JSONField(default=dict, blank=True)
    occurred_at = models.DateTimeField(help_text="When the work beyond scope happened.")
    proposed_at = models.DateTimeField()
    idempotency_key = models.CharField(max_length=200)
    status = models.CharField(
        max_length=20, choices=ItemStatus.choices, default=ItemStatus.PROPOSED
    )
    first_approver = models.CharField(max_length=200, blank=True)
    first_approved_at = models.DateTimeField(null=True, blank=True)
    approver = models.CharField(max_length=200, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    rejected_by = models.CharField(max_length=200, blank=True)
    rejection_reason = models.TextField(blank=True)
    adjustments = models.JSONField(default=list, blank=True)
    invoice = models.ForeignKey(
        "Invoice",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="items",
        db_index=False,
    )

    class Meta:
        ordering = ["-proposed_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "idempotency_key"], name="billable_item_once"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=0) & Q(rate__gte=0) & Q(amount__gte=0),
                name="billable_item_not_negative",
            ),
        ]
        indexes = [
            models.Index(fields=["organization", "status", "-proposed_at"], name="item_queue"),
            models.Index(fields=["organization", "agreement", "clause"], name="item_clause"),
            # Drafting a client's invoice for a period.
            models.Index(fields=["organization", "client", "occurred_at"], name="item_client"),
            # The deliverable page's items, newest first.
            models.Index(
                fields=["organization", "deliverable", "-proposed_at"], name="item_deliverable"
            ),
            models.Index(fields=["organization", "invoice"], name="item_invoice"),
        ]

    def __str__(self) -> str:
        return f"{self.description}: {self.amount} {self.currency}"


class BillingTicketLink(TenantModel):
    """What opened a billing exception ticket: the event of work with no agreement in force."""

    ticket = models.OneToOneField(
        "owners.Ticket", primary_key=True, on_delete=models.CASCADE, related_name="billing_link"
    )
    # One exception per event (billing_link_once_per_event).
    event = models.ForeignKey(
        "deliveries.Event", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    deliverable = models.ForeignKey(
        "deliveries.Deliverable", on_delete=models.PROTECT, related_name="+", db_index=False
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "event"], name="billing_link_once_per_event"
            )
        ]

    def __str__(self) -> str:
        return f"billing exception -> {self.ticket_id}"

    def public_ids(self) -> dict:
        """For the tickets API: the event and deliverable behind the exception."""
        return {
            "kind": "billing_exception",
            "event_id": str(self.event_id),
            "deliverable_id": self.deliverable.deliverable_id,
        }


class InvoiceKind(models.TextChoices):
    INVOICE = "invoice", "Invoice"
    CREDIT_NOTE = "credit_note", "Credit note"


class InvoiceStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    FINAL = "final", "Final"


class InvoiceCounter(models.Model):
    """The next invoice number of one organization, allocated under this row's lock so
    numbers are gapless: the number is taken in the transaction that finalises."""

    organization = models.OneToOneField(
        Organization, primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    next_number = models.PositiveIntegerField(default=1)

    def __str__(self) -> str:
        return f"{self.organization_id}: next {self.next_number}"


class Invoice(TenantModel):
    """An invoice (or credit note) for one client and period. A draft can be rebuilt;
    once final it never changes (``save`` refuses), and corrections are credit notes."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    kind = models.CharField(max_length=20, choices=InvoiceKind.choices, default=InvoiceKind.INVOICE)
    client = models.ForeignKey(
        "deliveries.Client", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    number = models.PositiveIntegerField(null=True, blank=True)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    currency = models.CharField(max_length=3, validators=[currency_validator])
    status = models.CharField(
        max_length=10, choices=InvoiceStatus.choices, default=InvoiceStatus.DRAFT
    )
    tax_rate = models.DecimalField(max_digits=5, decimal_places=4)
    subtotal = models.DecimalField(**MONEY, default=Decimal("0.00"))
    tax = models.DecimalField(**MONEY, default=Decimal("0.00"))
    total = models.DecimalField(**MONEY, default=Decimal("0.00"))
    corrects = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="credit_notes",
        db_index=False,
    )
    reason = models.TextField(blank=True)
    # BillingSettings.invoice_footer as it read at finalisation, digested with the invoice.
    footer = models.TextField(blank=True, default="")
    digest = models.CharField(max_length=64, blank=True)
    created_by = models.CharField(max_length=200)
    created_at = models.DateTimeField()
    finalized_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "number"],
                condition=Q(number__isnull=False),
                name="invoice_number_unique",
            )
        ]

    def __str__(self) -> str:
        return self.label

    @property
    def label(self) -> str:
        prefix = "CN" if self.kind == InvoiceKind.CREDIT_NOTE else "INV"
        return f"{prefix}-{self.number:06d}" if self.number else f"{prefix} draft"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            stored = Invoice.objects.filter(pk=self.pk).values_list("status", flat=True).first()
            if stored == InvoiceStatus.FINAL:
                raise ImmutableError(
                    "A finalised invoice cannot be edited; issue a credit note.",
                    code="invoice_final",
                )
        super().save(*args, **kwargs)


class InvoiceLine(TenantModel):
    """One line: an approved billable item (or, on a credit note, its reversal)."""

    invoice = models.ForeignKey(
        Invoice, on_delete=models.CASCADE, related_name="lines", db_index=False
    )
    item = models.ForeignKey(
        BillableItem, on_delete=models.PROTECT, related_name="lines", db_index=False
    )
    position = models.PositiveIntegerField()
    description = models.CharField(max_length=300)
    quantity = models.DecimalField(max_digits=12, decimal_places=2)
    unit = models.CharField(max_length=40)
    rate = models.DecimalField(**MONEY)
    amount = models.DecimalField(**MONEY)

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "invoice", "position"], name="invoice_line_unique"
            )
        ]
        # Whether an item was credited already (credit notes).
        indexes = [models.Index(fields=["organization", "item"], name="invoice_line_item")]

    def __str__(self) -> str:
        return f"{self.description}: {self.amount}"

    def save(self, *args, **kwargs):
        if Invoice.objects.filter(pk=self.invoice_id, status=InvoiceStatus.FINAL).exists():
            raise ImmutableError("A finalised invoice's lines cannot change.", code="invoice_final")
        super().save(*args, **kwargs)


class DisputeStatus(models.TextChoices):
    OPEN = "open", "Open"
    UPHELD = "upheld", "Upheld (credited)"
    REJECTED = "rejected", "Rejected"


class Dispute(TenantModel):
    """A client's objection to one invoiced item. Upheld, it is credited (a credit note);
    rejected, the reason is recorded. Both outcomes are in the client's trail."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    item = models.ForeignKey(
        BillableItem, on_delete=models.PROTECT, related_name="disputes", db_index=False
    )
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, related_name="disputes", db_index=False
    )
    client = models.ForeignKey(
        "deliveries.Client", on_delete=models.PROTECT, related_name="+", db_index=False
    )
    reason = models.TextField(help_text="What the client says is wrong.")
    raised_by = models.CharField(max_length=200)
    raised_at = models.DateTimeField()
    status = models.CharField(
        max_length=10, choices=DisputeStatus.choices, default=DisputeStatus.OPEN
    )
    decided_by = models.CharField(max_length=200, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    outcome_note = models.TextField(blank=True)
    credit_note = models.ForeignKey(
        Invoice,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    history = HistoricalRecords()

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "item"],
                condition=Q(status="open"),
                name="dispute_open_once_per_item",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "status", "-raised_at"], name="dispute_queue"),
            models.Index(fields=["organization", "client", "raised_at"], name="dispute_client"),
            models.Index(fields=["organization", "item"], name="dispute_item"),
        ]

    def __str__(self) -> str:
        return f"Dispute of {self.item_id} ({self.get_status_display()})"
