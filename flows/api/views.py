"""Flows API v1: flows (with measures and runs), flow runs (filtered), governed changes."""

from django_filters.utils import translate_validation
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ErrorDetail, ValidationError
from rest_framework.response import Response

from deliveries.models import Client
from flows.api.serializers import (
    ChangeSerializer,
    DecisionSerializer,
    FlowRunSerializer,
    FlowSerializer,
    ProposalSerializer,
)
from flows.filters import ChangeFilter, FlowRunFilter
from flows.models import Change, Flow, FlowRun
from flows.services import changes, measures
from meshline.api import CursorPagination, TenantViewSet, UUIDLookupMixin, error_response
from meshline.schema import error_response as error_doc


class ClientQuerySerializer(serializers.Serializer):
    client = serializers.CharField(required=False, help_text="Measures of this client only.")


class FlowViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    """The flow catalog with each flow's measures."""

    queryset = Flow.objects.none()
    serializer_class = FlowSerializer
    pagination_class = None
    lookup_field = "slug"
    required_scopes = {"GET": "flows:read"}

    def get_tenant_queryset(self):
        return Flow.objects.filter(organization=self.organization).select_related("owner_role")

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.organization is not None:
            context["measures"] = measures.per_flow(self.organization, self._client())
        return context

    def _client(self):
        """``?client=<client_id>``: measures of that client's runs only."""
        ref = self.request.query_params.get("client")
        if ref is None:
            return None
        client = Client.objects.filter(organization=self.organization, client_id=ref).first()
        if client is None:
            raise ValidationError(
                {"client": [ErrorDetail(f"No client '{ref}' in this organization.", "not_found")]}
            )
        return client

    @extend_schema(parameters=[ClientQuerySerializer])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(parameters=[ClientQuerySerializer])
    def retrieve(self, request, *args, **kwargs):
        return super().retrieve(request, *args, **kwargs)

    @extend_schema(responses=FlowRunSerializer(many=True))
    @action(detail=True, methods=["get"])
    def runs(self, request, slug=None):
        """This flow's runs, newest first (the flow-runs filters apply)."""
        flow = self.get_object()
        filterset = FlowRunFilter(
            request.query_params, queryset=_runs(self.organization).filter(flow=flow)
        )
        if not filterset.is_valid():  # as the filter backend answers on the list: a 400
            raise translate_validation(filterset.errors)
        queryset = filterset.qs
        paginator = RunPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(FlowRunSerializer(page, many=True).data)


class RunPagination(CursorPagination):
    ordering = "-started_at"


def _runs(organization):
    return FlowRun.objects.filter(organization=organization).select_related(
        "flow", "deliverable", "client"
    )


class FlowRunViewSet(
    UUIDLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet
):
    """Flow runs, newest first; filter by flow, client, state, breached."""

    queryset = FlowRun.objects.none()
    serializer_class = FlowRunSerializer
    filterset_class = FlowRunFilter
    pagination_class = RunPagination
    required_scopes = {"GET": "flows:read"}

    def get_tenant_queryset(self):
        return _runs(self.organization)


class ChangePagination(CursorPagination):
    ordering = "-proposed_at"


CHANGE_CONFLICT = error_doc("The change's status does not allow this, or it is stale.")


class ChangeViewSet(
    UUIDLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet
):
    """Governed configuration changes; propose, approve, reject or roll back with an
    admin's key."""

    queryset = Change.objects.none()
    serializer_class = ChangeSerializer
    filterset_class = ChangeFilter
    pagination_class = ChangePagination
    required_scopes = {"GET": "changes:read", "POST": "changes:approve"}

    def get_tenant_queryset(self):
        return Change.objects.filter(organization=self.organization).select_related(
            "proposed_by", "decided_by", "rolled_back_by"
        )

    @staticmethod
    def _no_person():
        return error_response(
            [
                {
                    "code": "not_admin",
                    "message": "This key was issued by no person; four-eyes needs one.",
                }
            ],
            status.HTTP_403_FORBIDDEN,
        )

    @staticmethod
    def _refused(exc: changes.ChangeError, otherwise=status.HTTP_409_CONFLICT):
        error = {"code": exc.code, "message": str(exc)}
        if exc.field:
            error["field"] = exc.field
        http = status.HTTP_403_FORBIDDEN if exc.code in changes.FORBIDDEN_CODES else otherwise
        return error_response([error], http)

    def _act(self, request, fn, **kwargs):
        change = self.get_object()  # first: another tenant's change is a 404 for every key
        user = request.auth.created_by
        if user is None:
            return self._no_person()
        try:
            fn(change, user, **kwargs)
        except changes.ChangeError as exc:
            return self._refused(exc)
        return Response(ChangeSerializer(self.get_queryset().get(pk=change.pk)).data)

    @extend_schema(
        request=ProposalSerializer,
        responses={201: ChangeSerializer, 400: error_doc("Unknown target, field or value.")},
    )
    def create(self, request):
        """Propose a change as the key's person (an admin): it applies at once only when
        the organization's approval policy needs no second admin for it."""
        body = ProposalSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        user = request.auth.created_by
        if user is None:
            return self._no_person()
        data = body.validated_data
        try:
            target = changes.find_target(self.organization, data["kind"], data["target"])
            fields = changes.with_role_ids(self.organization, data["fields"])
            change = changes.propose(target, fields, user, reason=data["reason"])
        except changes.ChangeError as exc:
            return self._refused(exc, otherwise=status.HTTP_400_BAD_REQUEST)
        return Response(
            ChangeSerializer(self.get_queryset().get(pk=change.pk)).data,
            status=status.HTTP_201_CREATED,
        )

    @extend_schema(
        request=DecisionSerializer, responses={200: ChangeSerializer, 409: CHANGE_CONFLICT}
    )
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve and apply (four-eyes: the key's person must be an admin, not the proposer)."""
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._act(request, changes.approve, **body.validated_data)

    @extend_schema(
        request=DecisionSerializer, responses={200: ChangeSerializer, 409: CHANGE_CONFLICT}
    )
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        body = DecisionSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._act(request, changes.reject, **body.validated_data)

    @extend_schema(request=None, responses={200: ChangeSerializer, 409: CHANGE_CONFLICT})
    @action(detail=True, methods=["post"])
    def rollback(self, request, pk=None):
        """Restore the version the change replaced; recorded as a rollback."""
        return self._act(request, changes.rollback)
