"""Portal forms of the flows app."""

from django import forms

from flows.models import ApprovalPolicy
from owners.models import OwnerRole, WaitKind


class FlowChangeForm(forms.Form):
    """The governed fields an admin edits in the portal; the rest is in the admin."""

    owner_role = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="(the owner map decides)", label="Owner role"
    )
    due_minutes = forms.IntegerField(
        min_value=0, label="Whole flow due (minutes after the trigger; 0: none)"
    )
    due_kind = forms.ChoiceField(choices=WaitKind.choices, label="Counted in")
    runbook = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 5}))
    reason = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Why this change?"
    )

    def __init__(self, *args, organization=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["owner_role"].queryset = OwnerRole.objects.filter(
            organization=organization
        ).order_by("name")


class DecisionForm(forms.Form):
    note = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Note (optional)"
    )


class IncidentForm(forms.Form):
    title = forms.CharField(max_length=200, label="What is failing?")


class ApprovalPolicyForm(forms.ModelForm):
    """Which changes wait for a second admin; lifting one is itself proposed."""

    reason = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), label="Why this change?"
    )

    class Meta:
        model = ApprovalPolicy
        fields = list(ApprovalPolicy.REQUIREMENTS)
        labels = {
            "flows": "Flows that affect billing, privacy or a client SLA",
            "owner_rules": "Owner rules",
            "enforced_gates": "Gates in enforce mode",
            "billing_settings": "Billing settings",
            "escalation_policies": "Escalation policies",
        }
