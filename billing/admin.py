from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.db import transaction
from django_scopes import scope, scopes_disabled

from billing.models import BillableItem, BillingSettings, Dispute, Invoice, ScopeAgreement
from billing.services import BillingError, agreements
from meshline.admin import ReadOnlyTenantAdmin, TenantAdmin, TenantHistoryAdmin


@admin.register(BillingSettings)
class BillingSettingsAdmin(TenantHistoryAdmin):
    list_display = ["organization", "currency", "tax_rate", "second_approval_above"]


class AgreementAddForm(forms.Form):
    """Records a new signed version through the service (never an edit). The admin sets
    the choice lists of its foreign keys (TenantChoicesMixin)."""

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        organization = data["organization"]
        client, deliverable = data["client"], data.get("deliverable")
        if client.organization_id != organization.pk or (
            deliverable and deliverable.client_id != client.pk
        ):
            raise ValidationError("Pick a client (and deliverable) of this organization.")
        terms = agreements.AgreementTerms(
            limits=data.get("limits"),
            rates=data.get("rates") or {},
            currency=data.get("currency") or "",
            valid_from=data["valid_from"],
            valid_until=data.get("valid_until"),
            accepted_by=data.get("accepted_by") or "",
            accepted_at=data["accepted_at"],
        )
        try:
            with transaction.atomic(), scope(organization=organization):
                self.created = agreements.record_agreement(organization, client, deliverable, terms)
        except BillingError as exc:
            field = exc.field if exc.field in self.fields else None
            raise ValidationError({field: str(exc)} if field else str(exc)) from None
        return data


# Built unscoped: a model form reads its choice lists when the class is created.
with scopes_disabled():
    AgreementForm = forms.modelform_factory(
        ScopeAgreement,
        form=forms.ModelForm,
        fields=[
            "organization",
            "client",
            "deliverable",
            "limits",
            "rates",
            "currency",
            "valid_from",
            "valid_until",
            "accepted_by",
            "accepted_at",
        ],
    )
    AgreementForm = type("AgreementForm", (AgreementForm,), {"clean": AgreementAddForm.clean})


@admin.register(ScopeAgreement)
class ScopeAgreementAdmin(TenantAdmin):
    list_display = ["__str__", "client", "version", "accepted_by", "accepted_at", "digest"]
    form = AgreementForm

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        # The service stored and signed it in form.clean(); point the admin at that row.
        obj.pk = form.created.pk
        obj._state.adding = False


@admin.register(BillableItem)
class BillableItemAdmin(ReadOnlyTenantAdmin):
    deletable = False
    list_display = ["description", "client", "amount", "currency", "status", "proposed_at"]
    list_filter = ["status"]


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyTenantAdmin):
    deletable = False
    list_display = ["label", "client", "kind", "status", "total", "currency"]


@admin.register(Dispute)
class DisputeAdmin(ReadOnlyTenantAdmin):
    """Decided in the portal (the outcome may issue a credit note); looked at here."""

    deletable = False
    list_display = ["item", "client", "status", "raised_by", "raised_at", "decided_at"]
    list_filter = ["status"]
