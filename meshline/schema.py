"""OpenAPI for drf-spectacular: the API-key scheme, the error body, and the error statuses
every operation can answer, added in one place rather than repeated on each view.
"""

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.pagination import CursorPagination


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "meshline.auth.ApiKeyAuthentication"
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`; create one with `manage.py create_api_key`.",
        }


class ErrorItemSerializer(serializers.Serializer):
    """One problem: a machine-readable ``code``, prose, and the field it concerns if any."""

    code = serializers.CharField()
    message = serializers.CharField()
    field = serializers.CharField(required=False)


class ErrorSerializer(serializers.Serializer):
    """The API's one error body (see meshline.api.exception_handler)."""

    errors = ErrorItemSerializer(many=True)


def error_response(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


DESCRIPTIONS = {
    "400": "Invalid input; each entry of `errors` names its `code` and `field`.",
    "401": "No API key, or a malformed, unknown or revoked one.",
    "403": "The API key lacks the scope this operation needs.",
    "404": "Not found in this organization (or a malformed id or cursor).",
    "415": "The body is not `application/json`.",
    "429": "Too many requests for this API key; retry after `Retry-After` seconds.",
}


class MeshlineAutoSchema(AutoSchema):
    """Adds the error statuses an operation can answer to what its view declares.

    Which ones follow from the view: an authenticated view can answer 401, 403 and 429;
    one that reads input (a body or query parameters) 400; a body 415; a path parameter
    or a cursor 404. A view's own declaration for a status wins.
    """

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        for code in self._error_statuses():
            if code not in responses:
                responses[code] = self._get_response_for_code(
                    error_response(DESCRIPTIONS[code]), code, direction=direction
                )
        # Any URL can be longer than the HTTP server reads; gunicorn answers that itself,
        # before Meshline sees the request, so the body is not the error shape (the fuzz
        # run sent a 5,860-byte request line).
        responses.setdefault(
            "414",
            self._get_response_for_code(
                OpenApiResponse(
                    description="The request line is longer than the server accepts "
                    "(gunicorn: 4,094 bytes); answered by the server, not in the error shape."
                ),
                "414",
                direction=direction,
            ),
        )
        return dict(sorted(responses.items()))

    def _error_statuses(self) -> list[str]:
        codes = []
        has_body = self.method in {"POST", "PUT", "PATCH"} and self.get_request_serializer()
        has_query = any(p["in"] == "query" for p in self._get_parameters())
        if has_body or has_query:
            codes.append("400")
        if self.view.authentication_classes:
            codes.append("401")
        if self.view.permission_classes:
            codes.append("403")
        cursor = self.method == "GET" and isinstance(self._get_paginator(), CursorPagination)
        if "{" in self.path or cursor:
            codes.append("404")
        if has_body:
            codes.append("415")
        if self.view.authentication_classes:
            codes.append("429")
        return codes


# Ingest rejects fields outside the contract, where DRF serializers ignore them: the event
# body's objects are closed, so a client (or a fuzzer) knows an extra field is a 400.
CLOSED_COMPONENTS = ("EventSubmissionRequest", "ActorInputRequest", "EventBatchRequest")


def close_event_objects(result, generator, request, public):
    """Postprocessing hook: ``additionalProperties: false`` on the event body's objects."""
    schemas = result.get("components", {}).get("schemas", {})
    for name in CLOSED_COMPONENTS:
        if name in schemas:
            schemas[name]["additionalProperties"] = False
    return result
