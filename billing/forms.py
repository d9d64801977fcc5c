from django import forms

from deliveries.models import Client


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Reason")


class AdjustForm(forms.Form):
    quantity = forms.DecimalField(min_value=0, max_value=100000, decimal_places=2)
    rate = forms.DecimalField(required=False, min_value=0, max_value=1000000, decimal_places=2)
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Reason")


class InvoiceForm(forms.Form):
    client = forms.ModelChoiceField(queryset=None, to_field_name="client_id")
    period_start = forms.DateTimeField(help_text="YYYY-MM-DD HH:MM, in the organization's zone")
    period_end = forms.DateTimeField()

    def __init__(self, *args, organization=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["client"].queryset = Client.objects.filter(organization=organization)


class DisputeForm(forms.Form):
    prefix = "dispute"
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=4000,
        label="What the client disputes",
    )


class DecideDisputeForm(forms.Form):
    outcome = forms.ChoiceField(
        choices=[
            ("upheld", "Uphold: credit the line (issues a credit note)"),
            ("rejected", "Reject: the line stands"),
        ],
        widget=forms.RadioSelect,
    )
    note = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), max_length=4000, label="Why (goes in the trail)"
    )


class ExportForm(forms.Form):
    """Invoices and credit notes issued from ``start`` to ``end`` (whole days, both
    included, in the organization's zone), for an accounting system."""

    start = forms.DateField(label="Issued from", help_text="YYYY-MM-DD")
    end = forms.DateField(label="Issued until", help_text="YYYY-MM-DD, included")
    output = forms.ChoiceField(choices=[("csv", "CSV (a row per line)"), ("json", "JSON")])

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            self.add_error("end", "The end is before the start.")
        return data

    def bounds(self, zone):
        """[start 00:00, the day after end 00:00) in ``zone``."""
        return day_bounds(self.cleaned_data["start"], self.cleaned_data["end"], zone)


def day_bounds(start, end, zone):
    from datetime import datetime, time, timedelta

    return (
        datetime.combine(start, time(), tzinfo=zone),
        datetime.combine(end + timedelta(days=1), time(), tzinfo=zone),
    )
