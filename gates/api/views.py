"""Gates API v1: gates with their mode and pass rates; one evaluation with its artifacts."""

from datetime import timedelta

from django.http import Http404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from gates import services
from gates.models import Gate, GateEvaluation, GateMode, Outcome
from gates.services.visibility import INLINE_TYPES
from meshline.api import TenantViewSet, UUIDLookupMixin


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


class EvaluationSerializer(serializers.Serializer):
    """Documentation of services.evaluation_data() with the deliverable and check details."""

    id = serializers.UUIDField()
    gate = serializers.SlugField()
    check = serializers.CharField()
    event_id = serializers.UUIDField()
    outcome = serializers.ChoiceField(Outcome.choices)
    mode = serializers.ChoiceField(GateMode.choices)
    reasons = serializers.ListField(child=serializers.CharField())
    billing_flag = serializers.BooleanField()
    duration_ms = serializers.FloatField()
    evaluated_at = serializers.DateTimeField()
    ticket_id = serializers.UUIDField(allow_null=True)
    artifacts = serializers.ListField(child=serializers.CharField(), help_text="Artifact names.")
    deliverable_id = serializers.CharField()
    details = serializers.JSONField(help_text="What the check measured; its shape is the check's.")


class GateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    queryset = Gate.objects.none()
    serializer_class = GateSerializer
    pagination_class = None
    lookup_field = "slug"
    required_scopes = {"GET": "events:read"}

    def get_tenant_queryset(self):
        return Gate.objects.filter(organization=self.organization)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.organization is not None:
            now = timezone.now()
            context["rates"] = {
                "24h": services.pass_rates(self.organization, now - timedelta(hours=24)),
                "7d": services.pass_rates(self.organization, now - timedelta(days=7)),
            }
        return context


class EvaluationViewSet(UUIDLookupMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """One gate evaluation with its reasons and failing artifacts."""

    queryset = GateEvaluation.objects.none()
    required_scopes = {"GET": "events:read"}

    def get_tenant_queryset(self):
        return GateEvaluation.objects.filter(organization=self.organization).select_related(
            "gate", "deliverable"
        )

    @extend_schema(responses=EvaluationSerializer)
    def retrieve(self, request, pk=None):
        e = self.get_object()
        return Response(
            {
                **services.evaluation_data(e),
                "deliverable_id": e.deliverable.deliverable_id,
                "details": e.details,
            }
        )

    @extend_schema(
        responses={
            (200, media_type): OpenApiTypes.BINARY
            for media_type in [*sorted(INLINE_TYPES), "application/octet-stream"]
        }
    )
    @action(detail=True, methods=["get"], url_path=r"artifacts/(?P<name>[^/]+)")
    def artifact(self, request, pk=None, name=None):
        """A failing artifact, e.g. the screenshot difference image."""
        item = services.find_artifact(self.organization, self.get_object().pk, name)
        if item is None:
            raise Http404("No such artifact.")
        return services.artifact_response(item)
