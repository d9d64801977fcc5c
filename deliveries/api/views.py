"""Deliveries API v1: events, clients, deliverables and their trails, event types."""

from django.conf import settings
from django.db.models import Max
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    PolymorphicProxySerializer,
    extend_schema,
)
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from deliveries.api.serializers import (
    ClientSerializer,
    DeliverableSerializer,
    EventBatchSerializer,
    EventSerializer,
    EventSubmissionSerializer,
    EventTypeSerializer,
    IngestBatchResultSerializer,
    IngestErrorSerializer,
    IngestResultSerializer,
)
from deliveries.filters import ClientFilter, DeliverableFilter, EventFilter
from deliveries.models import Client, Deliverable, Event, EventType
from deliveries.services import ingest_events
from deliveries.services.ingest import Status
from meshline import extensions
from meshline.api import CursorPagination, TenantViewSet, UUIDLookupMixin, error_response
from meshline.schema import error_response as error_doc

REFERENCE_REGEX = r"[A-Za-z0-9][A-Za-z0-9._:-]*"


class EventCursorPagination(CursorPagination):
    ordering = "-id"  # UUIDv7: newest received first


class TrailPagination(CursorPagination):
    ordering = ("occurred_at", "id")
    page_size = 200
    page_size_query_param = "limit"
    max_page_size = 1000


class ClientPagination(CursorPagination):
    ordering = "client_id"


class DeliverablePagination(CursorPagination):
    ordering = "-id"


class EventViewSet(
    UUIDLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet
):
    """Submit events (one, or a batch under ``events``) and read them back."""

    queryset = Event.objects.none()  # for the schema; get_queryset scopes to the tenant
    serializer_class = EventSerializer
    filterset_class = EventFilter
    pagination_class = EventCursorPagination
    required_scopes = {"GET": "events:read", "POST": "events:write"}

    def get_tenant_queryset(self):
        return Event.objects.filter(organization=self.organization).select_related(
            "deliverable", "client", "processing"
        )

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="EventSubmissionBody",
            serializers=[EventSubmissionSerializer, EventBatchSerializer],
            resource_type_field_name=None,
        ),
        responses={
            202: OpenApiResponse(IngestResultSerializer, description="One event, accepted."),
            200: OpenApiResponse(
                PolymorphicProxySerializer(
                    component_name="IngestOkResult",
                    serializers=[IngestResultSerializer, IngestBatchResultSerializer],
                    resource_type_field_name=None,
                ),
                description="One event, a duplicate (its first id); or a batch, "
                "a result per event.",
            ),
            400: OpenApiResponse(
                IngestErrorSerializer, description="One event rejected, or a malformed body."
            ),
            409: OpenApiResponse(
                IngestResultSerializer,
                description="The idempotency key was used with different content.",
            ),
            413: error_doc("The body is larger than MESHLINE_MAX_BODY_BYTES."),
        },
        examples=[
            OpenApiExample(
                "One event",
                request_only=True,
                value={
                    "event_type": "page.published",
                    "deliverable_id": "LP-2041",
                    "client_id": "acme",
                    "correlation_id": "2f6c7c1e-6a0e-4c8e-9d59-5b1f0a4a7e10",
                    "idempotency_key": "cms-evt-88123",
                    "actor": {"role": "cms", "id": "wp-publisher"},
                    "occurred_at": "2026-11-21T10:00:00Z",
                    "payload": {"url": "https://acme.example/lp/spring"},
                },
            )
        ],
    )
    def create(self, request):
        """One event answers 202 (accepted), 200 (duplicate), 409 (conflict) or 400.

        A batch ``{"events": [...]}`` (at most MESHLINE_MAX_BATCH) answers 200 with a
        result per event.
        """
        content_length = int(request.META.get("CONTENT_LENGTH") or 0)
        if content_length > settings.MESHLINE_MAX_BODY_BYTES:
            return error_response(
                [
                    {
                        "code": "too_large",
                        "message": f"The body may be at most {settings.MESHLINE_MAX_BODY_BYTES} bytes.",
                    }
                ],
                status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
            )
        body = request.data
        if isinstance(body, dict) and "events" in body:
            return self._create_batch(body)
        if not isinstance(body, dict):
            return error_response(
                [
                    {
                        "code": "invalid_type",
                        "message": 'Send one event object, or {"events": [...]} for a batch.',
                    }
                ]
            )
        (result,) = ingest_events(self.organization, [body])
        if result.status == Status.ACCEPTED:
            code = status.HTTP_202_ACCEPTED
        elif result.status == Status.DUPLICATE:
            code = status.HTTP_200_OK
        elif result.is_conflict:
            code = status.HTTP_409_CONFLICT
        else:
            code = status.HTTP_400_BAD_REQUEST
        return Response(result.as_dict(), status=code)

    def _create_batch(self, body: dict) -> Response:
        extra = sorted(set(body) - {"events"})
        events = body["events"]
        if extra:
            return error_response(
                [
                    {
                        "code": "unknown_field",
                        "field": name,
                        "message": "A batch body has only 'events'.",
                    }
                    for name in extra
                ]
            )
        if not isinstance(events, list):
            return error_response(
                [{"code": "invalid_type", "field": "events", "message": "Must be a list."}]
            )
        if not events:
            return error_response(
                [{"code": "empty_batch", "field": "events", "message": "The batch is empty."}]
            )
        if len(events) > settings.MESHLINE_MAX_BATCH:
            return error_response(
                [
                    {
                        "code": "batch_too_large",
                        "field": "events",
                        "message": f"A batch holds at most {settings.MESHLINE_MAX_BATCH} events; "
                        f"this one has {len(events)}.",
                    }
                ]
            )
        results = ingest_events(self.organization, events)
        counts = dict.fromkeys(Status, 0)
        for result in results:
            counts[result.status] += 1
        return Response(
            {
                "results": [result.as_dict() for result in results],
                "accepted": counts[Status.ACCEPTED],
                "duplicates": counts[Status.DUPLICATE],
                "rejected": counts[Status.REJECTED],
            },
            status=status.HTTP_200_OK,
        )


class ClientViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    TenantViewSet,
):
    queryset = Client.objects.none()
    serializer_class = ClientSerializer
    filterset_class = ClientFilter
    pagination_class = ClientPagination
    lookup_field = "client_id"
    lookup_value_regex = REFERENCE_REGEX
    http_method_names = ["get", "post", "patch", "head", "options"]
    required_scopes = {"GET": "clients:read", "POST": "clients:write", "PATCH": "clients:write"}

    def get_tenant_queryset(self):
        return Client.objects.filter(organization=self.organization)

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "organization": self.organization}


class DeliverableViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet):
    queryset = Deliverable.objects.none()
    serializer_class = DeliverableSerializer
    filterset_class = DeliverableFilter
    pagination_class = DeliverablePagination
    lookup_field = "deliverable_id"
    lookup_value_regex = REFERENCE_REGEX
    required_scopes = {"GET": "deliverables:read"}

    def get_tenant_queryset(self):
        return Deliverable.objects.filter(organization=self.organization).select_related("client")

    @extend_schema(responses=EventSerializer(many=True), filters=False)
    @action(detail=True, methods=["get"], pagination_class=TrailPagination, filterset_class=None)
    def trail(self, request, deliverable_id=None):
        """The deliverable's events in the order they occurred."""
        deliverable = self.get_object()
        events = Event.objects.filter(
            organization=self.organization, deliverable=deliverable
        ).select_related("deliverable", "client", "processing")
        page = self.paginate_queryset(events)
        data = EventSerializer(page, many=True).data
        response = self.get_paginated_response(data)
        response.data["deliverable"] = DeliverableSerializer(deliverable).data
        for entry in extensions.trail_sections.entries():
            response.data[entry.name.rsplit(".", 1)[-1]] = entry.value(deliverable)
        return response


class EventTypeViewSet(mixins.ListModelMixin, mixins.CreateModelMixin, TenantViewSet):
    """The event types this organization can submit (latest version of each)."""

    queryset = EventType.objects.none()
    serializer_class = EventTypeSerializer
    pagination_class = None
    required_scopes = {"GET": "events:read", "POST": "event_types:write"}

    def get_tenant_queryset(self):
        from django.db.models import Q

        visible = EventType.objects.filter(
            Q(organization__isnull=True) | Q(organization=self.organization)
        )
        latest = visible.values("organization", "name").annotate(latest=Max("version"))
        wanted = Q(pk__in=[])
        for row in latest:
            wanted |= Q(organization=row["organization"], name=row["name"], version=row["latest"])
        return visible.filter(wanted).order_by("name", "organization")

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "organization": self.organization}
