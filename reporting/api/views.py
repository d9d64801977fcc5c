"""Reporting API v1: the bulk search-performance import, forensic reports and exports."""

from datetime import date

from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, parsers, serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from deliveries.models import Deliverable
from meshline.api import CursorPagination, TenantViewSet, UUIDLookupMixin, error_response
from reporting.models import DailyExport
from reporting.services import forensics, intake
from reporting.views import forensic_pdf_response


class StreamParser(parsers.BaseParser):
    """Hands the request body over unread, so a 100,000-row day streams into the database."""

    def parse(self, stream, media_type=None, parser_context=None):
        return stream


class CSVParser(StreamParser):
    media_type = "text/csv"


class JSONLinesParser(StreamParser):
    media_type = "application/x-ndjson"


class ImportResultSerializer(serializers.Serializer):
    site = serializers.CharField()
    date = serializers.DateField()
    rows = serializers.IntegerField(help_text="Rows read from the body.")
    pages = serializers.IntegerField(help_text="Pages stored (rows of one page are summed).")
    matched = serializers.IntegerField(help_text="Rows whose URL is a deliverable's.")
    unmatched = serializers.IntegerField(help_text="Rows stored without a deliverable.")
    unmatched_sample = serializers.ListField(child=serializers.CharField())


class SearchImportViewSet(TenantViewSet):
    """A whole day of a site's search-analytics export, as CSV or JSON lines."""

    parser_classes = [CSVParser, JSONLinesParser]
    required_scopes = {"POST": "reporting:write"}
    queryset = Deliverable.objects.none()
    # What OPTIONS describes (the answer's fields); the body itself is CSV or JSON lines.
    # Without one, DRF's OPTIONS metadata raised (a 500 the fuzz run found).
    serializer_class = ImportResultSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("site", str, required=True, description="The property's host."),
            OpenApiParameter("date", OpenApiTypes.DATE, required=True),
        ],
        request={
            "text/csv": OpenApiTypes.STR,
            "application/x-ndjson": OpenApiTypes.STR,
        },
        responses={200: ImportResultSerializer},
    )
    @action(detail=False, methods=["post"], url_path="import")
    def import_day(self, request):
        """Replace the site's rows for the day (re-sending a day never doubles it).

        Columns: page (or url), impressions, clicks, and optionally ctr, position, date.
        URLs are normalised and matched to deliverables; unmatched rows are stored and
        counted. One bad row stores nothing and answers 400 naming its line.
        """
        try:
            day = date.fromisoformat(request.query_params.get("date", ""))
        except ValueError:
            return error_response(
                [{"code": "invalid_date", "field": "date", "message": "Use YYYY-MM-DD."}]
            )
        body = request.data
        if not hasattr(body, "read"):
            return error_response(
                [{"code": "empty_body", "message": "Send the day's rows as the body."}]
            )
        lines = intake.text_lines(body)
        reader = (
            intake.read_jsonl(lines)
            if request.content_type.startswith(JSONLinesParser.media_type)
            else intake.read_csv(lines)
        )
        try:
            result = intake.import_search_day(
                self.organization, site=request.query_params.get("site", ""), day=day, rows=reader
            )
        except intake.SearchImportError as exc:
            error = {"code": exc.code, "message": str(exc)}
            if exc.code == "invalid_site":
                error["field"] = "site"
            elif exc.line:
                error["field"] = f"line {exc.line}"
            return error_response([error])
        return Response(ImportResultSerializer(result).data)


class ForensicsViewSet(TenantViewSet):
    """The forensic report of one deliverable."""

    required_scopes = {"GET": "reporting:read"}
    queryset = Deliverable.objects.none()

    @extend_schema(responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="The report.")})
    def retrieve(self, request, deliverable_id=None):
        """Identity, events with digests, gate history, tickets with SLA outcome, search
        performance, CRM touches, and revenue rows with each model's share."""
        deliverable = get_object_or_404(
            Deliverable.objects.select_related("client", "organization"),
            organization=self.organization,
            deliverable_id=deliverable_id,
        )
        return Response(forensics.report(deliverable))

    @extend_schema(responses={(200, "application/pdf"): OpenApiTypes.BINARY})
    def pdf(self, request, deliverable_id=None):
        """The same report as a PDF file."""
        deliverable = get_object_or_404(
            Deliverable.objects.select_related("client", "organization"),
            organization=self.organization,
            deliverable_id=deliverable_id,
        )
        return forensic_pdf_response(deliverable)


class ExportSerializer(serializers.ModelSerializer):
    filename = serializers.CharField(read_only=True)

    class Meta:
        model = DailyExport
        fields = ["id", "date", "format", "filename", "rows", "size_bytes", "created_at"]


class ExportPagination(CursorPagination):
    ordering = "-id"


class ExportViewSet(
    UUIDLookupMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, TenantViewSet
):
    """The organization's daily exports (CSV and Parquet), newest first."""

    queryset = DailyExport.objects.none()
    serializer_class = ExportSerializer
    pagination_class = ExportPagination
    required_scopes = {"GET": "reporting:read"}

    def get_tenant_queryset(self):
        return DailyExport.objects.filter(organization=self.organization)

    @extend_schema(responses={(200, "application/octet-stream"): OpenApiTypes.BINARY})
    @action(detail=True, methods=["get"])
    def download(self, request, pk=None):
        """The export file itself."""
        export = self.get_object()
        return FileResponse(export.file.open("rb"), as_attachment=True, filename=export.filename)
