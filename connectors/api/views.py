"""Connectors API v1: the inbound delivery log with dead-letter replay, and subscriptions."""

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from connectors import services
from connectors.filters import InboundDeliveryFilter
from connectors.models import InboundDelivery, InboxState, Subscription
from meshline.api import CursorPagination, TenantViewSet, UUIDLookupMixin, error_response
from meshline.schema import error_response as error_doc


class InboundPagination(CursorPagination):
    ordering = "-public_id"  # UUIDv7: newest received first


class InboundDeliverySerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id")
    endpoint = serializers.UUIDField(source="endpoint.public_id")
    event_ids = serializers.ListField(child=serializers.UUIDField())

    class Meta:
        model = InboundDelivery
        fields = [
            "id",
            "endpoint",
            "vendor_delivery_id",
            "received_at",
            "state",
            "error",
            "attempts",
            "mapped_at",
            "event_ids",
        ]


class InboundDeliveryDetailSerializer(InboundDeliverySerializer):
    class Meta(InboundDeliverySerializer.Meta):
        fields = [*InboundDeliverySerializer.Meta.fields, "headers", "body"]


class ReplaySerializer(serializers.Serializer):
    queued = serializers.IntegerField(help_text="Dead letters queued for mapping again.")


class InboundDeliveryViewSet(
    UUIDLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet
):
    """Webhooks received on the organization's endpoints; dead letters can be replayed."""

    queryset = InboundDelivery.objects.none()
    serializer_class = InboundDeliverySerializer
    pagination_class = InboundPagination
    filterset_class = InboundDeliveryFilter
    lookup_field = "public_id"
    lookup_url_kwarg = "pk"
    required_scopes = {"GET": "connectors:read", "POST": "connectors:write"}

    def get_tenant_queryset(self):
        return InboundDelivery.objects.filter(organization=self.organization).select_related(
            "endpoint"
        )

    def get_serializer_class(self):
        if self.action == "retrieve":
            return InboundDeliveryDetailSerializer
        return super().get_serializer_class()

    @extend_schema(
        request=None,
        responses={200: ReplaySerializer, 400: error_doc("The delivery is not a dead letter.")},
    )
    @action(detail=True, methods=["post"])
    def replay(self, request, pk=None):
        """Map one dead letter again (after its endpoint's mapping or client was fixed)."""
        delivery = self.get_object()
        if delivery.state != InboxState.DEAD:
            return error_response(
                [
                    {
                        "code": "not_a_dead_letter",
                        "field": None,
                        "message": f"This delivery is {delivery.state}, not a dead letter.",
                    }
                ]
            )
        queued = services.replay(self.organization, public_id=delivery.public_id)
        return Response({"queued": queued}, status=status.HTTP_200_OK)

    @extend_schema(
        request=None,
        responses={200: ReplaySerializer},
        filters=False,
        operation_id="inbound_deliveries_replay_all",
    )
    @action(detail=False, methods=["post"], url_path="replay")
    def replay_all(self, request):
        """Map every dead letter of the organization again, oldest first."""
        return Response({"queued": services.replay(self.organization)})


class SubscriptionSerializer(serializers.ModelSerializer):
    id = serializers.UUIDField(source="public_id")
    client_id = serializers.CharField(source="client.client_id", allow_null=True)
    backlog = serializers.SerializerMethodField()

    class Meta:
        model = Subscription
        fields = [
            "id",
            "name",
            "url",
            "event_types",
            "client_id",
            "paused",
            "ordered",
            "breaker_state",
            "breaker_until",
            "consecutive_failures",
            "backlog",
        ]

    def get_backlog(self, obj) -> int:
        return self.context["backlog"].get(obj.pk, 0)


class SubscriptionViewSet(mixins.ListModelMixin, TenantViewSet):
    """Outbound subscriptions with their breaker state and pending deliveries."""

    queryset = Subscription.objects.none()
    serializer_class = SubscriptionSerializer
    pagination_class = None
    required_scopes = {"GET": "connectors:read"}

    def get_tenant_queryset(self):
        return Subscription.objects.filter(organization=self.organization).select_related("client")

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if self.organization is not None:
            context["backlog"] = services.subscription_backlog(self.organization)
        return context
