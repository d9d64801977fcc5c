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
