"""API authentication: one path that finds the key, its organization, and enters its scope.

``Authorization: Api-Key ml_<prefix>_<secret>``. A missing, malformed, unknown or revoked
key is a 401 with a specific ``code``; a key without the scope an endpoint needs is a 403.
"""

from django_scopes import scopes_disabled
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from meshline.models import ApiKey

KEYWORD = b"api-key"


class ApiKeyAuthentication(BaseAuthentication):
    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if not header:
            return None
        if header[0].lower() not in {KEYWORD, b"bearer"} or len(header) != 2:
            raise exceptions.AuthenticationFailed(
                "Use the header 'Authorization: Api-Key <key>'.", code="malformed_api_key"
            )
        try:
            plaintext = header[1].decode()
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed(
                "The API key is not valid text.", code="malformed_api_key"
            ) from None
        prefix = ApiKey.split(plaintext)
        if prefix is None:
            raise exceptions.AuthenticationFailed(
                "The API key is malformed.", code="malformed_api_key"
            )
        with scopes_disabled():
            api_key = ApiKey.objects.select_related("organization").filter(prefix=prefix).first()
        if api_key is None or not api_key.matches(plaintext):
            raise exceptions.AuthenticationFailed("Unknown API key.", code="unknown_api_key")
        if not api_key.is_active:
            raise exceptions.AuthenticationFailed(
                "This API key has been revoked.", code="revoked_api_key"
            )
        with scopes_disabled():
            api_key.touch()
        return (None, api_key)

    def authenticate_header(self, request):
        return "Api-Key"


class HasApiKeyScope(BasePermission):
    """Requires an API key; and, where the view names one, the scope for the action.

    Views set ``required_scopes = {"GET": "events:read", "POST": "events:write", ...}``.
    """

    message = "This API key lacks the scope this endpoint needs."

    def has_permission(self, request, view) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            raise exceptions.NotAuthenticated(
                "Send an API key: 'Authorization: Api-Key <key>'.", code="missing_api_key"
            )
        required = getattr(view, "required_scopes", {}).get(request.method)
        if required and not api_key.has_scope(required):
            self.message = f"This API key lacks the '{required}' scope."
            self.code = "missing_scope"
            return False
        return True
