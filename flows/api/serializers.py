from rest_framework import serializers

from flows.models import Change, ChangeKind, Flow, FlowRun


class MilestoneSerializer(serializers.Serializer):
    event_type = serializers.CharField()
    name = serializers.CharField(required=False)
    due_minutes = serializers.IntegerField(required=False)
    due_kind = serializers.CharField(required=False)


class MeasuresSerializer(serializers.Serializer):
    started = serializers.IntegerField()
    running = serializers.IntegerField()
    completed = serializers.IntegerField()
    breached = serializers.IntegerField()
    exceptions = serializers.IntegerField()
    manual_handoffs = serializers.IntegerField(
        help_text="Reassignments by hand of the tickets the runs opened."
    )
    completion_rate = serializers.FloatField(allow_null=True, help_text="Percent.")
    mean_minutes_to_outcome = serializers.FloatField(allow_null=True)
    p90_minutes_to_outcome = serializers.FloatField(allow_null=True)


class FlowSerializer(serializers.ModelSerializer):
    owner_role = serializers.SlugRelatedField(slug_field="slug", read_only=True, allow_null=True)
    milestones = MilestoneSerializer(many=True, read_only=True)
    measures = serializers.SerializerMethodField()

    class Meta:
        model = Flow
        fields = [
            "slug",
            "name",
            "description",
            "template",
            "trigger_event_type",
            "client_tiers",
            "deliverable_types",
            "payload_conditions",
            "required_fields",
            "milestones",
            "outcome_event_type",
            "due_minutes",
            "due_kind",
            "owner_role",
            "runbook",
            "affects_billing",
            "affects_privacy",
            "affects_client_sla",
            "essential",
            "is_active",
            "measures",
        ]

    def get_measures(self, flow) -> MeasuresSerializer:
        from flows.services.measures import Measures

        return self.context.get("measures", {}).get(flow.pk, Measures()).as_dict()


class FlowRunSerializer(serializers.ModelSerializer):
    flow = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    deliverable_id = serializers.CharField(source="deliverable.deliverable_id", read_only=True)
    client_id = serializers.CharField(source="client.client_id", read_only=True)

    class Meta:
        model = FlowRun
        fields = [
            "id",
            "flow",
            "deliverable_id",
            "client_id",
            "state",
            "started_at",
            "reached",
            "due_at",
            "due_for",
            "breached_at",
            "breached_on",
            "completed_at",
            "missing_fields",
        ]


class DiffSerializer(serializers.Serializer):
    field = serializers.CharField()
    before = serializers.JSONField(allow_null=True)
    after = serializers.JSONField(allow_null=True)


class ChangeSerializer(serializers.ModelSerializer):
    proposed_by = serializers.EmailField(
        source="proposed_by.email", read_only=True, allow_null=True
    )
    decided_by = serializers.EmailField(source="decided_by.email", read_only=True, allow_null=True)
    rolled_back_by = serializers.EmailField(
        source="rolled_back_by.email", read_only=True, allow_null=True
    )
    diff = DiffSerializer(many=True, read_only=True)

    class Meta:
        model = Change
        fields = [
            "id",
            "kind",
            "target_label",
            "status",
            "requires_approval",
            "diff",
            "dry_run",
            "reason",
            "proposed_by",
            "proposed_at",
            "decided_by",
            "decided_at",
            "decision_note",
            "rolled_back_by",
            "rolled_back_at",
        ]


class DecisionSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class ProposalSerializer(serializers.Serializer):
    """A proposed change: what to change (``kind`` and ``target``) and the new values."""

    kind = serializers.ChoiceField(ChangeKind.choices)
    target = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=100,
        help_text="A flow's or gate's slug, an owner rule's id (as /api/v1/owner-map shows "
        "it) or an escalation policy's id; empty for billing_settings and approval_policy.",
    )
    fields = serializers.DictField(
        help_text="Field names and their new values; owner_role and backup_role as role "
        "slugs, escalation_policy as its id."
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")

    def validate_fields(self, value):
        if not value:
            raise serializers.ValidationError("Name at least one field to change.")
        return value
