"""Owners API v1: owner map (read) and dry run, roles and who is on duty, tickets."""

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from meshline.api import CursorPagination, TenantViewSet, UUIDLookupMixin, error_response
from meshline.schema import error_response as error_doc
from owners.api.serializers import (
    DryRunQuerySerializer,
    OnDutyQuerySerializer,
    OnDutySerializer,
    OwnerRoleSerializer,
    OwnerRuleSerializer,
    ResolutionSerializer,
    ResolveSerializer,
    TicketSerializer,
)
from owners.filters import TicketFilter
from owners.models import OwnerRole, OwnerRule, Ticket
from owners.services import owner_map, tickets
from owners.services.schedules import who_is_on_duty


class OwnerMapViewSet(mixins.ListModelMixin, TenantViewSet):
    """The organization's owner rules, most specific first."""

    queryset = OwnerRule.objects.none()
    serializer_class = OwnerRuleSerializer
    pagination_class = None
    required_scopes = {"GET": "owners:read"}

    def get_tenant_queryset(self):
        rules = owner_map.active_rules(self.organization)
        return sorted(rules, key=OwnerRule.sort_key)

    @extend_schema(parameters=[DryRunQuerySerializer], responses=ResolutionSerializer)
    @action(detail=False, methods=["get"])
    def resolve(self, request):
        """Who gets this? The rule that matches three keys, why, and the map's warnings."""
        query = DryRunQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        resolution = owner_map.resolve(self.organization, **query.validated_data)
        return Response({**resolution.as_dict(), "warnings": owner_map.warnings(self.organization)})


class RoleViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    queryset = OwnerRole.objects.none()
    serializer_class = OwnerRoleSerializer
    pagination_class = None
    lookup_field = "slug"
    required_scopes = {"GET": "owners:read"}

    def get_tenant_queryset(self):
        return OwnerRole.objects.filter(organization=self.organization)

    @extend_schema(parameters=[OnDutyQuerySerializer], responses=OnDutySerializer)
    @action(detail=True, methods=["get"], url_path="on-duty")
    def on_duty(self, request, slug=None):
        """Who holds the role at ``at`` (default now): primary, backup and until when."""
        role = self.get_object()
        query = OnDutyQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        duty = who_is_on_duty(role, query.validated_data.get("at"))
        return Response(
            {
                "role": role.slug,
                "primary": duty.primary.email if duty.primary else None,
                "backup": duty.backup.email if duty.backup else None,
                "layer": duty.layer,
                "until": duty.until,
            }
        )


class TicketPagination(CursorPagination):
    ordering = "-opened_at"


TICKET_CONFLICT = error_doc("The ticket's status does not allow this action.")


class TicketViewSet(
    UUIDLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet
):
    """Tickets, newest first; acknowledge and resolve them."""

    queryset = Ticket.objects.none()
    serializer_class = TicketSerializer
    filterset_class = TicketFilter
    pagination_class = TicketPagination
    required_scopes = {"GET": "tickets:read", "POST": "tickets:write"}

    def get_tenant_queryset(self):
        return Ticket.objects.filter(organization=self.organization).select_related(
            "owner_role", "assignee", "deliverable", *Ticket.source_relations()
        )

    def _act(self, request, action_fn, closing=False, **kwargs):
        ticket = self.get_object()  # first: another tenant's ticket is a 404 for every key
        if closing and not request.auth.may_close_tickets():
            raise exceptions.PermissionDenied(
                "This API key was issued by someone whose role cannot resolve tickets.",
                code="role_cannot_close",
            )
        try:
            ticket = action_fn(ticket, tickets.Actor.for_api_key(request.auth), **kwargs)
        except tickets.TicketError as exc:
            error = {"code": exc.code, "message": str(exc)}
            if exc.field:
                error["field"] = exc.field
            return error_response([error], status.HTTP_409_CONFLICT)
        return Response(TicketSerializer(self.get_queryset().get(pk=ticket.pk)).data)

    @extend_schema(request=None, responses={200: TicketSerializer, 409: TICKET_CONFLICT})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request, pk=None):
        return self._act(request, tickets.acknowledge)

    @extend_schema(
        request=ResolveSerializer, responses={200: TicketSerializer, 409: TICKET_CONFLICT}
    )
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        body = ResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._act(request, tickets.resolve, closing=True, **body.validated_data)
