"""Gates API v1: gates with their mode and pass rates; one evaluation with its artifacts."""

from datetime import timedelta

from django.db.models import Prefetch
from django.http import Http404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.decorators import action

from gates import services
from gates.api.serializers import EvaluationDetailSerializer, GateSerializer
from gates.filters import GateFilter
from gates.models import Artifact, Gate, GateEvaluation
from gates.services.visibility import INLINE_TYPES
from meshline.api import TenantViewSet, UUIDLookupMixin


class GateViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    queryset = Gate.objects.none()
    serializer_class = GateSerializer
    filterset_class = GateFilter
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
    serializer_class = EvaluationDetailSerializer
    required_scopes = {"GET": "events:read"}

    def get_tenant_queryset(self):
        return (
            GateEvaluation.objects.filter(organization=self.organization)
            .select_related("gate", "deliverable")
            .prefetch_related(Prefetch("artifacts", queryset=Artifact.objects.defer("data")))
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
