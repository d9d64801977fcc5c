"""Read serializers and the small write serializers of the deliveries API.

Event submission does not use a serializer: see deliveries.services.ingest for why.
"""

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import IntegrityError, transaction
from rest_framework import serializers

from deliveries.models import (
    Client,
    Deliverable,
    Event,
    EventType,
    LifecycleState,
    event_type_name_validator,
    reference_validator,
)
from deliveries.registry import check_schema, types_for
from deliveries.services.ingest import ACTOR_FIELDS, STRING_LIMITS
from deliveries.services.ingest import Status as IngestStatus
from meshline.schema import ErrorItemSerializer, ErrorSerializer


def _already_exists(client_id: str) -> serializers.ErrorDetail:
    return serializers.ErrorDetail(f"A client '{client_id}' already exists.", code="unique")


class ClientSerializer(serializers.ModelSerializer):
    class Meta:
        model = Client
        fields = ["client_id", "name", "tier", "created_at"]
        read_only_fields = ["created_at"]
        # Refused by the reference pattern, not trimmed: " acme" is not the client "acme".
        extra_kwargs = {"client_id": {"trim_whitespace": False}}

    def validate_client_id(self, value):
        organization = self.context["organization"]
        if self.instance is not None:
            if value != self.instance.client_id:
                raise serializers.ValidationError(
                    "client_id cannot be changed; it is the submitter's own reference.",
                    code="immutable",
                )
            return value
        if Client.objects.filter(organization=organization, client_id=value).exists():
            raise serializers.ValidationError(_already_exists(value))
        return value

    def create(self, validated_data):
        try:
            with transaction.atomic():
                return Client.objects.create(
                    organization=self.context["organization"], **validated_data
                )
        except IntegrityError:  # registered concurrently, after validate_client_id looked
            raise serializers.ValidationError(
                {"client_id": [_already_exists(validated_data["client_id"])]}
            ) from None


class ProcessingSerializer(serializers.Serializer):
    status = serializers.CharField()
    attempts = serializers.IntegerField()
    processed_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField()


class ActorSerializer(serializers.Serializer):
    role = serializers.CharField(source="actor_role")
    id = serializers.CharField(source="actor_id")


class EventSerializer(serializers.ModelSerializer):
    deliverable_id = serializers.CharField(source="deliverable.deliverable_id")
    client_id = serializers.CharField(source="client.client_id")
    actor = ActorSerializer(source="*")
    processing = ProcessingSerializer()

    class Meta:
        model = Event
        fields = [
            "id",
            "event_type",
            "schema_version",
            "deliverable_id",
            "client_id",
            "correlation_id",
            "idempotency_key",
            "actor",
            "occurred_at",
            "received_at",
            "source",
            "payload",
            "processing",
        ]


class DeliverableSerializer(serializers.ModelSerializer):
    client_id = serializers.CharField(source="client.client_id")

    class Meta:
        model = Deliverable
        fields = [
            "deliverable_id",
            "client_id",
            "type",
            "title",
            "url",
            "state",
            "state_changed_at",
            "last_event_at",
            "created_at",
        ]


class EventTypeSerializer(serializers.ModelSerializer):
    canonical = serializers.SerializerMethodField()

    class Meta:
        model = EventType
        fields = [
            "name",
            "version",
            "description",
            "advances_to",
            "internal",
            "canonical",
            "payload_schema",
        ]
        read_only_fields = ["version", "internal", "canonical"]

    def get_canonical(self, obj) -> bool:
        return obj.organization_id is None

    def validate_name(self, value):
        registered = types_for(self.context["organization"]).get(value)
        if (
            registered is not None
            and not EventType.objects.filter(
                organization=self.context["organization"], name=value
            ).exists()
        ):
            raise serializers.ValidationError(
                f"'{value}' is a canonical Meshline event type; choose another name.",
                code="canonical",
            )
        return value

    def validate_payload_schema(self, value):
        problems = check_schema(value)
        if problems:
            raise serializers.ValidationError(problems, code="invalid_schema")
        return value

    def validate_advances_to(self, value):
        if value and value not in LifecycleState.values:
            raise serializers.ValidationError("Not a lifecycle state.", code="invalid_choice")
        return value

    def create(self, validated_data):
        """Register the next version of the organization's own type."""
        from meshline.models import Organization

        organization = self.context["organization"]
        with transaction.atomic():
            # Lock the organization row: serializes version numbering and the cache bump.
            locked = Organization.objects.select_for_update().get(pk=organization.pk)
            latest = (
                EventType.objects.filter(organization=locked, name=validated_data["name"])
                .order_by("-version")
                .values_list("version", flat=True)
                .first()
            )
            event_type = EventType.objects.create(
                organization=locked, version=(latest or 0) + 1, **validated_data
            )
            locked.event_types_version += 1
            locked.save(update_fields=["event_types_version"])
        organization.event_types_version = locked.event_types_version
        return event_type


# --- documentation of event submission -----------------------------------------------------
# Ingest validates by hand (deliveries.services.ingest); these serializers only describe the
# contract in the OpenAPI schema, with the limits taken from the validator itself.

not_blank = RegexValidator(r"\S", "Must not be blank.")


def _text(name: str, **kwargs) -> serializers.CharField:
    return serializers.CharField(max_length=STRING_LIMITS[name], **kwargs)


class ActorInputSerializer(serializers.Serializer):
    role = serializers.CharField(max_length=ACTOR_FIELDS["role"], validators=[not_blank])
    id = serializers.CharField(max_length=ACTOR_FIELDS["id"], validators=[not_blank])


class EventSubmissionSerializer(serializers.Serializer):
    """One event. No other fields are allowed; ``payload`` must match the event type's
    JSON Schema (see ``GET /api/v1/event-types``)."""

    event_type = _text("event_type", validators=[event_type_name_validator])
    deliverable_id = _text("deliverable_id", validators=[reference_validator])
    client_id = _text(
        "client_id", validators=[reference_validator], help_text="A registered client."
    )
    correlation_id = _text(
        "correlation_id", required=False, allow_null=True, validators=[not_blank]
    )
    idempotency_key = _text(
        "idempotency_key",
        required=False,
        allow_null=True,
        validators=[not_blank],
        help_text="Resubmitting the same key and content answers the first event's id.",
    )
    actor = ActorInputSerializer()
    occurred_at = serializers.DateTimeField(help_text="ISO 8601 with a time zone.")
    payload = serializers.DictField(help_text="Validated against the event type's schema.")


class EventBatchSerializer(serializers.Serializer):
    """Up to MESHLINE_MAX_BATCH events. Each is checked on its own and answered in
    ``results``: an invalid event is rejected there, the others are still stored."""

    events = serializers.ListField(
        child=serializers.JSONField(help_text="An EventSubmission."),
        min_length=1,
        max_length=settings.MESHLINE_MAX_BATCH,
    )


class IngestResultSerializer(serializers.Serializer):
    """One event's ingest result (see services.ingest.IngestResult)."""

    index = serializers.IntegerField(min_value=0)
    status = serializers.ChoiceField(IngestStatus.choices)
    id = serializers.UUIDField(required=False, help_text="Accepted or duplicate: the event's id.")
    errors = ErrorItemSerializer(many=True, required=False)


class IngestErrorSerializer(ErrorSerializer):
    """The error body; for one rejected event also its ``index`` and ``status``."""

    index = serializers.IntegerField(min_value=0, required=False)
    status = serializers.ChoiceField([IngestStatus.REJECTED], required=False)


class IngestBatchResultSerializer(serializers.Serializer):
    results = IngestResultSerializer(many=True)
    accepted = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    rejected = serializers.IntegerField()
