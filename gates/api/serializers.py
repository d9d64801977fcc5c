"""Serializers of the gates API: gates with their pass rates, evaluations with artifacts."""

from rest_framework import serializers

from gates.models import CheckName, Gate, GateEvaluation, GateMode, Outcome


class GateSerializer(serializers.ModelSerializer):
    pass_rate_24h = serializers.SerializerMethodField()
    pass_rate_7d = serializers.SerializerMethodField()
    evaluations_24h = serializers.SerializerMethodField()

    class Meta:
        model = Gate
        fields = [
            "slug",
            "name",
            "check_name",
            "mode",
            "event_types",
            "client_tiers",
            "deliverable_types",
            "parameters",
            "playbook",
            "auto_monitored_at",
            "auto_monitor_reason",
            "pass_rate_24h",
            "pass_rate_7d",
            "evaluations_24h",
        ]

    def _rate(self, obj, key):
        return self.context["rates"][key].get(obj.pk, {})

    def get_pass_rate_24h(self, obj) -> float | None:
        return self._rate(obj, "24h").get("pass_rate")

    def get_pass_rate_7d(self, obj) -> float | None:
        return self._rate(obj, "7d").get("pass_rate")

    def get_evaluations_24h(self, obj) -> int:
        return self._rate(obj, "24h").get("total", 0)


class EvaluationSerializer(serializers.ModelSerializer):
    """An evaluation as the API shows it, in the deliverable trail and on its own
    (services.evaluation_data is this serializer's output)."""

    gate = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    check = serializers.ChoiceField(CheckName.choices, source="gate.check_name", read_only=True)
    event_id = serializers.UUIDField(read_only=True)
    outcome = serializers.ChoiceField(Outcome.choices, read_only=True)
    mode = serializers.ChoiceField(GateMode.choices, read_only=True)
    reasons = serializers.ListField(child=serializers.CharField(), read_only=True)
    ticket_id = serializers.UUIDField(read_only=True, allow_null=True)
    artifacts = serializers.SlugRelatedField(
        slug_field="name", many=True, read_only=True, help_text="Artifact names."
    )

    class Meta:
        model = GateEvaluation
        fields = [
            "id",
            "gate",
            "check",
            "event_id",
            "outcome",
            "mode",
            "reasons",
            "billing_flag",
            "duration_ms",
            "evaluated_at",
            "ticket_id",
            "artifacts",
        ]
        read_only_fields = fields


class EvaluationDetailSerializer(EvaluationSerializer):
    """One evaluation on its own: also its deliverable and what the check measured."""

    deliverable_id = serializers.CharField(source="deliverable.deliverable_id", read_only=True)
    details = serializers.JSONField(
        read_only=True, help_text="What the check measured; its shape is the check's."
    )

    class Meta(EvaluationSerializer.Meta):
        fields = [*EvaluationSerializer.Meta.fields, "deliverable_id", "details"]
        read_only_fields = fields
