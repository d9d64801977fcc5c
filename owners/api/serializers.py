from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from deliveries.models import DeliverableType, Tier
from owners.models import OwnerRole, OwnerRule, Ticket


class OwnerRoleSerializer(serializers.ModelSerializer):
    class Meta:
        model = OwnerRole
        fields = ["slug", "name", "description"]


class OwnerRuleSerializer(serializers.ModelSerializer):
    owner_role = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    backup_role = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    escalation_policy = serializers.StringRelatedField(allow_null=True)

    class Meta:
        model = OwnerRule
        fields = [
            "id",
            "event_type",
            "client_tier",
            "deliverable_type",
            "owner_role",
            "backup_role",
            "respond_minutes",
            "resolve_minutes",
            "escalation_policy",
            "position",
            "is_active",
        ]


class DryRunQuerySerializer(serializers.Serializer):
    event_type = serializers.CharField(max_length=64)
    client_tier = serializers.ChoiceField(Tier.choices)
    deliverable_type = serializers.ChoiceField(DeliverableType.choices)


class OnDutyQuerySerializer(serializers.Serializer):
    at = serializers.DateTimeField(required=False)


class TicketSourceSerializer(serializers.Serializer):
    """What opened a ticket, by public ids (the fields a kind does not have are null)."""

    kind = serializers.CharField(
        help_text="gate_evaluation, gate_triage, flow_breach, flow_exception, ..."
    )
    gate = serializers.CharField(allow_null=True, help_text="The gate's slug.")
    deliverable_id = serializers.CharField(allow_null=True)
    evaluation_id = serializers.UUIDField(allow_null=True)
    flow = serializers.CharField(required=False, help_text="The flow's slug (flow kinds).")
    run_id = serializers.UUIDField(required=False, help_text="The flow run (flow kinds).")


# --- documentation of the dry run and on-duty answers (built by the services as dicts) -----


class RuleSnapshotSerializer(serializers.Serializer):
    """OwnerRule.snapshot(): the rule as it was when it matched; roles and policy by id."""

    id = serializers.IntegerField()
    event_type = serializers.CharField(allow_blank=True)
    client_tier = serializers.CharField(allow_blank=True)
    deliverable_type = serializers.CharField(allow_blank=True)
    owner_role = serializers.IntegerField()
    owner_role_name = serializers.CharField()
    backup_role = serializers.IntegerField(allow_null=True)
    respond_minutes = serializers.IntegerField()
    resolve_minutes = serializers.IntegerField()
    escalation_policy = serializers.IntegerField(allow_null=True)
    position = serializers.IntegerField()


class RuleCandidateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    rule = serializers.CharField()
    specificity = serializers.IntegerField()
    position = serializers.IntegerField()


class ResolutionSerializer(serializers.Serializer):
    """owner_map.Resolution.as_dict() plus the map's warnings."""

    rule = RuleSnapshotSerializer(allow_null=True)
    reasons = serializers.ListField(child=serializers.CharField())
    candidates = RuleCandidateSerializer(many=True)
    warnings = serializers.ListField(child=serializers.CharField())


class OnDutySerializer(serializers.Serializer):
    role = serializers.SlugField()
    primary = serializers.EmailField(allow_null=True)
    backup = serializers.EmailField(allow_null=True)
    layer = serializers.CharField(allow_null=True)
    until = serializers.DateTimeField(allow_null=True)


class TicketSerializer(serializers.ModelSerializer):
    owner_role = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    assignee = serializers.SerializerMethodField()
    deliverable_id = serializers.SerializerMethodField()
    opened_by = serializers.SerializerMethodField()

    class Meta:
        model = Ticket
        fields = [
            "id",
            "title",
            "source",
            "opened_by",
            "status",
            "priority",
            "owner_role",
            "assignee",
            "deliverable_id",
            "opened_at",
            "respond_due_at",
            "resolve_due_at",
            "acknowledged_at",
            "resolved_at",
            "escalation_level",
            "next_escalation_at",
            "closed_note",
            "context",
            "rule_snapshot",
        ]

    def get_assignee(self, obj) -> str | None:
        return obj.assignee.email if obj.assignee else None

    def get_deliverable_id(self, obj) -> str | None:
        return obj.deliverable.deliverable_id if obj.deliverable else None

    @extend_schema_field(TicketSourceSerializer(allow_null=True))
    def get_opened_by(self, obj) -> dict | None:
        return obj.opened_by()


class ResolveSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=5000)
    waiver_reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)
