"""What every API view shares: tenant scope from the API key, and one error format.

Every error body is ``{"errors": [{"code": ..., "message": ..., "field": ...}]}`` so a
client can branch on ``code`` without parsing prose.
"""

from datetime import datetime

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django_scopes import scope
from rest_framework import exceptions, pagination, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.viewsets import GenericViewSet

from meshline import telemetry
from meshline.ids import uuid_or_404
from meshline.instants import instant_problem


def flatten_errors(detail, field: str | None = None) -> list[dict]:
    """Turn DRF's nested error detail into a flat list of ``{field, code, message}``."""
    errors: list[dict] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = key if key not in {"non_field_errors", "detail"} else field
            if field and name and name != field:
                name = f"{field}.{name}"
            errors.extend(flatten_errors(value, name))
    elif isinstance(detail, list):
        for index, item in enumerate(detail):
            child = field
            if isinstance(item, dict | list):
                child = f"{field}[{index}]" if field else f"[{index}]"
            errors.extend(flatten_errors(item, child))
    else:
        entry = {"code": getattr(detail, "code", "invalid"), "message": str(detail)}
        if field:
            entry["field"] = field
        errors.append(entry)
    return errors


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    response.data = {"errors": flatten_errors(exc.detail)}
    return response


@csrf_exempt
def not_found(request, *args, **kwargs):
    """Any /api/ path no route matches (an unknown path, or a reference in the path that
    breaks its pattern): the JSON 404 a client can parse, never Django's HTML page."""
    body = {"errors": flatten_errors(exceptions.NotFound().detail)}
    return JsonResponse(body, status=status.HTTP_404_NOT_FOUND)


class CursorPagination(pagination.CursorPagination):
    """DRF's cursor pagination, with a forged cursor answered 400 ``invalid_cursor``.

    DRF answers an undecodable cursor 404, and puts a decodable one's position straight
    into the query, where a value the ordering field cannot hold is a 500. The position is
    checked here as the ordering field would read it. Every list pages the same way
    (100 a page, ``?limit=`` up to 500); a subclass names its ordering.
    """

    page_size = 100
    page_size_query_param = "limit"
    max_page_size = 500
    invalid_cursor_message = "Invalid cursor: follow the next or previous link of a page."

    def paginate_queryset(self, queryset, request, view=None):
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound:
            raise self._invalid() from None
        if cursor is not None and cursor.position is not None:
            try:
                field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
            except FieldDoesNotExist:
                return cursor
            try:
                value = field.to_python(cursor.position)
            except (DjangoValidationError, ValueError, TypeError, OverflowError):
                raise self._invalid() from None
            if (isinstance(value, str) and "\x00" in value) or (
                isinstance(value, datetime) and instant_problem(value) is not None
            ):
                raise self._invalid()
        return cursor

    def _invalid(self) -> exceptions.ValidationError:
        return exceptions.ValidationError(
            {"cursor": [exceptions.ErrorDetail(self.invalid_cursor_message, "invalid_cursor")]}
        )


def refuse_nul_in_query(request) -> None:
    """A NUL in any query parameter is a 400, for every filter present and to come.

    PostgreSQL text cannot hold one, so a filter that passes it on is a 500 (the fuzz run
    found one on /api/v1/flows?client=); refusing it once here beats a check per filter.
    """
    bad = sorted(
        key.replace("\x00", "\\0")
        for key, values in request.query_params.lists()
        if "\x00" in key or any("\x00" in value for value in values)
    )
    if bad:
        raise exceptions.ValidationError(
            {
                key: [
                    exceptions.ErrorDetail(
                        "Null characters are not allowed.", "null_characters_not_allowed"
                    )
                ]
                for key in bad
            }
        )


class TenantAPIMixin:
    """Enters the API key's organization scope for the rest of the request.

    Authentication runs in ``initial()``; the scope opened there is closed in
    ``finalize_response()``, which DRF calls on every path, errors included.
    """

    organization = None

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation: no tenant
            return self.queryset
        return self.get_tenant_queryset()

    def get_tenant_queryset(self):
        raise NotImplementedError

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        refuse_nul_in_query(request)
        self.organization = request.auth.organization
        telemetry.tag_organization(self.organization)
        self._tenant_scope = scope(organization=self.organization)
        self._tenant_scope.__enter__()

    def finalize_response(self, request, response, *args, **kwargs):
        tenant_scope = getattr(self, "_tenant_scope", None)
        if tenant_scope is not None:
            self._tenant_scope = None
            tenant_scope.__exit__(None, None, None)
        return super().finalize_response(request, response, *args, **kwargs)


class TenantViewSet(TenantAPIMixin, GenericViewSet):
    """Base viewset: tenant scope, API-key scopes per HTTP method, lookups by public reference."""


# For viewsets whose public id is a UUID: any path segment reaches the view (so a bad id
# gets the JSON 404, not Django's HTML page), and a non-UUID is a 404 before any query.
# (A comment, not a docstring: drf-spectacular would publish a docstring as API docs.)
class UUIDLookupMixin:
    lookup_value_regex = "[^/]+"

    def get_object(self):
        uuid_or_404(self.kwargs[self.lookup_url_kwarg or self.lookup_field])
        return super().get_object()


def error_response(errors: list[dict], http_status: int = status.HTTP_400_BAD_REQUEST) -> Response:
    return Response({"errors": errors}, status=http_status)
