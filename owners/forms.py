from django import forms
from django.contrib.auth import get_user_model


class ResolveForm(forms.Form):
    note = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Resolution note"
    )
    waiver_reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Waiver reason",
        help_text="Only needed to close a gate ticket while its gate still fails.",
    )


class ReassignForm(forms.Form):
    assignee = forms.ModelChoiceField(queryset=None, label="Assign to")

    def __init__(self, *args, organization=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = (
            get_user_model()
            .objects.filter(memberships__organization=organization)
            .order_by("email")
        )
        self.fields["assignee"].label_from_instance = lambda user: user.email or user.username


class CancelForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), label="Why cancel?")
