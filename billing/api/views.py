"""Billing API v1: agreements (verification, PDF), billable items (approve, reject,
dispute), disputes (decide, evidence), invoices (CSV, PDF, export for accounting)."""

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from billing.filters import AgreementFilter, DisputeFilter, InvoiceFilter, ItemFilter
from billing.forms import day_bounds
from billing.models import BillableItem, Dispute, Invoice, InvoiceLine, ScopeAgreement
from billing.services import BillingError, agreements, approvals, disputes, invoices, pdf
from billing.views import export_response, pdf_response
from meshline.api import CursorPagination, TenantViewSet, UUIDLookupMixin, error_response
from meshline.schema import error_response as error_doc

CONFLICT = error_doc("The item's status does not allow this action.")


def refused(exc: BillingError) -> Response:
    """A refused billing step: 409 for a state conflict, 400 for bad input."""
    code = status.HTTP_409_CONFLICT if exc.conflict else status.HTTP_400_BAD_REQUEST
    return error_response([exc.as_dict()], code)


class Pagination(CursorPagination):
    ordering = "-id"


class AgreementSerializer(serializers.ModelSerializer):
    client = serializers.CharField(source="client.client_id")
    deliverable = serializers.CharField(source="deliverable.deliverable_id", allow_null=True)
    key_id = serializers.CharField(source="signing_key.key_id")
    public_key_pem = serializers.SerializerMethodField()

    class Meta:
        model = ScopeAgreement
        fields = [
            "id",
            "client",
            "deliverable",
            "version",
            "limits",
            "rates",
            "currency",
            "valid_from",
            "valid_until",
            "accepted_by",
            "accepted_at",
            "source_event",
            "canonical",
            "digest",
            "signature",
            "key_id",
            "public_key_pem",
        ]

    def get_public_key_pem(self, obj) -> str:
        return agreements.public_key_pem(obj.signing_key)


class DifferenceSerializer(serializers.Serializer):
    field = serializers.CharField()
    signed = serializers.JSONField(allow_null=True)
    current = serializers.JSONField(allow_null=True)


class VerificationSerializer(serializers.Serializer):
    valid = serializers.BooleanField()
    digest_matches = serializers.BooleanField()
    signature_valid = serializers.BooleanField()
    differences = DifferenceSerializer(many=True)


class AgreementViewSet(
    UUIDLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet
):
    """Signed scope agreements, newest first."""

    queryset = ScopeAgreement.objects.none()
    serializer_class = AgreementSerializer
    filterset_class = AgreementFilter
    pagination_class = Pagination
    required_scopes = {"GET": "billing:read"}

    def get_tenant_queryset(self):
        return ScopeAgreement.objects.filter(organization=self.organization).select_related(
            "client", "deliverable", "signing_key", "organization"
        )

    @extend_schema(responses=VerificationSerializer)
    @action(detail=True, methods=["get"])
    def verify(self, request, pk=None):
        """Whether the agreement is unaltered since signing; each differing field named."""
        return Response(agreements.verify(self.get_object()).as_dict())

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def pdf(self, request, pk=None):
        """The agreement as PDF: terms, rate card, signature and how to verify it."""
        agreement = self.get_object()
        return pdf_response(pdf.agreement_pdf(agreement), pdf.agreement_filename(agreement))


class DisputeSerializer(serializers.ModelSerializer):
    client = serializers.CharField(source="client.client_id")
    invoice_number = serializers.CharField(source="invoice.label")
    credit_note_number = serializers.SerializerMethodField()

    class Meta:
        model = Dispute
        fields = [
            "id",
            "item",
            "invoice",
            "invoice_number",
            "client",
            "reason",
            "raised_by",
            "raised_at",
            "status",
            "decided_by",
            "decided_at",
            "outcome_note",
            "credit_note",
            "credit_note_number",
        ]

    def get_credit_note_number(self, obj) -> str | None:
        return obj.credit_note.label if obj.credit_note_id else None


class DisputeRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=4000)


class DecideSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(choices=list(disputes.OUTCOMES))
    note = serializers.CharField(max_length=4000)


class BillableItemSerializer(serializers.ModelSerializer):
    client = serializers.CharField(source="client.client_id")
    deliverable = serializers.CharField(source="deliverable.deliverable_id", allow_null=True)
    event_ids = serializers.SerializerMethodField()
    invoice = serializers.UUIDField(source="invoice_id", allow_null=True)

    class Meta:
        model = BillableItem
        fields = [
            "id",
            "agreement",
            "client",
            "deliverable",
            "clause",
            "description",
            "quantity",
            "proposed_quantity",
            "unit",
            "rate",
            "amount",
            "currency",
            "event_ids",
            "evidence",
            "occurred_at",
            "proposed_at",
            "status",
            "first_approver",
            "first_approved_at",
            "approver",
            "approved_at",
            "rejected_by",
            "rejection_reason",
            "adjustments",
            "invoice",
        ]

    def get_event_ids(self, obj) -> list[str]:
        return sorted(str(e.pk) for e in obj.events.all())


class RejectSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=2000)


class BillableItemViewSet(
    UUIDLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet
):
    """Billable items beyond agreed scope, newest first; approve or reject them."""

    queryset = BillableItem.objects.none()
    serializer_class = BillableItemSerializer
    filterset_class = ItemFilter
    pagination_class = Pagination
    required_scopes = {"GET": "billing:read", "POST": "billing:write"}

    def get_tenant_queryset(self):
        return (
            BillableItem.objects.filter(organization=self.organization)
            .select_related("client", "deliverable")
            .prefetch_related("events")
        )

    def _act(self, request, fn, **kwargs):
        item = self.get_object()  # first: another tenant's item is a 404
        try:
            item = fn(item, approvals.actor_for_api_key(request.auth), **kwargs)
        except BillingError as exc:
            return refused(exc)
        return Response(BillableItemSerializer(self.get_queryset().get(pk=item.pk)).data)

    @extend_schema(request=None, responses={200: BillableItemSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Approve; above the organization's threshold a second, different approver is needed."""
        return self._act(request, approvals.approve)

    @extend_schema(request=RejectSerializer, responses={200: BillableItemSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def reject(self, request, pk=None):
        body = RejectSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        return self._act(request, approvals.reject, **body.validated_data)

    @extend_schema(
        request=DisputeRequestSerializer, responses={201: DisputeSerializer, 409: CONFLICT}
    )
    @action(detail=True, methods=["post"])
    def dispute(self, request, pk=None):
        """Record the client's dispute of this invoiced line."""
        item = self.get_object()
        body = DisputeRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            dispute = disputes.open_dispute(
                item, approvals.actor_for_api_key(request.auth), body.validated_data["reason"]
            )
        except BillingError as exc:
            return refused(exc)
        return Response(DisputeSerializer(dispute).data, status=status.HTTP_201_CREATED)


class DisputeViewSet(
    UUIDLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet
):
    """Clients' disputes of invoiced lines, newest first; decide them, download evidence."""

    queryset = Dispute.objects.none()
    serializer_class = DisputeSerializer
    filterset_class = DisputeFilter
    pagination_class = Pagination
    required_scopes = {"GET": "billing:read", "POST": "billing:write"}

    def get_tenant_queryset(self):
        return Dispute.objects.filter(organization=self.organization).select_related(
            "client", "invoice", "credit_note"
        )

    @extend_schema(request=DecideSerializer, responses={200: DisputeSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def decide(self, request, pk=None):
        """Uphold (the line is credited on a credit note) or reject, with a note."""
        dispute = self.get_object()
        body = DecideSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            dispute = disputes.decide(
                dispute, approvals.actor_for_api_key(request.auth), **body.validated_data
            )
        except BillingError as exc:
            return refused(exc)
        return Response(DisputeSerializer(self.get_queryset().get(pk=dispute.pk)).data)

    @extend_schema(responses={(200, "application/zip"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def evidence(self, request, pk=None):
        """The evidence pack: signed agreement and verification, events with digests,
        approvals, invoice, dispute, and a manifest of SHA-256 sums."""
        dispute = self.get_object()
        response = HttpResponse(disputes.evidence_bundle(dispute), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="dispute-{dispute.pk}.zip"'
        return response


class InvoiceLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = InvoiceLine
        fields = ["position", "description", "quantity", "unit", "rate", "amount", "item"]


class InvoiceSerializer(serializers.ModelSerializer):
    client = serializers.CharField(source="client.client_id")
    number = serializers.CharField(source="label")
    lines = InvoiceLineSerializer(many=True)

    class Meta:
        model = Invoice
        fields = [
            "id",
            "kind",
            "number",
            "client",
            "period_start",
            "period_end",
            "currency",
            "status",
            "tax_rate",
            "subtotal",
            "tax",
            "total",
            "corrects",
            "reason",
            "digest",
            "created_at",
            "finalized_at",
            "lines",
        ]


class ExportQuerySerializer(serializers.Serializer):
    start = serializers.DateField(
        help_text="First day of issue (YYYY-MM-DD), in the organization's zone."
    )
    end = serializers.DateField(help_text="Last day of issue (YYYY-MM-DD), included.")
    # Not "format": DRF reads that query parameter to choose a renderer.
    output = serializers.ChoiceField(choices=["csv", "json"], default="json")

    def validate(self, data):
        if data["end"] < data["start"]:
            raise serializers.ValidationError({"end": "The end is before the start."})
        return data


class InvoiceViewSet(
    UUIDLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet
):
    """Invoices and credit notes, newest first."""

    queryset = Invoice.objects.none()
    serializer_class = InvoiceSerializer
    filterset_class = InvoiceFilter
    pagination_class = Pagination
    required_scopes = {"GET": "billing:read"}

    def get_tenant_queryset(self):
        return (
            Invoice.objects.filter(organization=self.organization)
            .select_related("client")
            .prefetch_related("lines")
        )

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.STR})
    @action(detail=True, methods=["get"])
    def csv(self, request, pk=None):
        """The invoice's lines and totals as CSV."""
        invoice = self.get_object()
        response = HttpResponse(invoices.to_csv(invoice), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{invoice.label}.csv"'
        return response

    @extend_schema(
        parameters=[ExportQuerySerializer],
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            (200, "text/csv"): OpenApiTypes.STR,
        },
    )
    @action(detail=False, methods=["get"], filterset_class=None, pagination_class=None)
    def export(self, request):
        """Invoices and credit notes issued in a date range, with their lines, for an
        accounting system: JSON (invoices with nested lines) or CSV (a row per line)."""
        query = ExportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        start, end = day_bounds(data["start"], data["end"], self.organization.zone)
        return export_response(self.organization, start, end, data)

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def pdf(self, request, pk=None):
        """The invoice as PDF, with the agreement and events behind each line."""
        invoice = self.get_object()
        return pdf_response(pdf.invoice_pdf(invoice), f"{invoice.label}.pdf")
