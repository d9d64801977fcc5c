"""The Reporting page's filters."""

from datetime import timedelta

from django import forms
from django.utils import timezone

from deliveries.models import Client, DeliverableType
from reporting.services.roi import SORTS

PERIODS = {"7": 7, "30": 30, "90": 90}


class ReportingForm(forms.Form):
    client = forms.CharField(required=False, label="Client")
    type = forms.ChoiceField(
        choices=[("", "Any type"), *DeliverableType.choices], required=False, label="Type"
    )
    days = forms.ChoiceField(
        choices=[(key, f"{key} days") for key in PERIODS], required=False, label="Period"
    )
    until = forms.DateField(required=False, label="Until", help_text="YYYY-MM-DD")
    sort = forms.ChoiceField(
        choices=[(key, key.title()) for key in SORTS], required=False, label="Sort by"
    )

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization

    def clean_client(self):
        ref = self.cleaned_data["client"].strip()
        if not ref:
            return None
        client = Client.objects.filter(organization=self.organization, client_id=ref).first()
        if client is None:
            raise forms.ValidationError(f"No client '{ref}' in this organization.")
        return client

    def period(self):
        """(since, until) dates; until defaults to today in the organization's zone."""
        data = self.cleaned_data if self.is_bound and self.is_valid() else {}
        until = data.get("until") or timezone.localdate(timezone=self.organization.zone)
        days = PERIODS.get(data.get("days") or "30", 30)
        return until - timedelta(days=days - 1), until
