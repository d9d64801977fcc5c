"""API authentication: one path that finds the key, its organization, and enters its scope.

``Authorization: Api-Key ml_<prefix>_<secret>``. A missing, malformed, unknown or revoked
key is a 401 with a specific ``code``; a key without the scope an endpoint needs is a 403.
"""

from django.db import connection
from django_scopes import scopes_disabled
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission

from meshline.models import ApiKey, Organization

KEYWORD = b"api-key"


class _KeyLookup:
    """``ApiKey.objects.select_related("organization").filter(prefix=...).first()`` as
    fixed SQL: every API request runs it, and on PostgreSQL building and compiling the
    queryset costs several times what running it does. Full model instances come back,
    built with ``Model.from_db`` and each field's ``from_db_value``, as the ORM builds them.
    """

    def __init__(self):
        qn = connection.ops.quote_name
        self.key_fields = ApiKey._meta.concrete_fields
        self.org_fields = Organization._meta.concrete_fields
        columns = [f"k.{qn(f.column)}" for f in self.key_fields]
        columns += [f"o.{qn(f.column)}" for f in self.org_fields]
        org_fk = ApiKey._meta.get_field("organization").column
        self.sql = (
            f"SELECT {', '.join(columns)} FROM {qn(ApiKey._meta.db_table)} k "
            f"INNER JOIN {qn(Organization._meta.db_table)} o "
            f"ON o.{qn(Organization._meta.pk.column)} = k.{qn(org_fk)} "
            f"WHERE k.{qn(ApiKey._meta.get_field('prefix').column)} = %s"
        )

    @staticmethod
    def _build(model, fields, values, db):
        values = [
            field.from_db_value(value, None, connection)
            if hasattr(field, "from_db_value")
            else value
            for field, value in zip(fields, values, strict=True)
        ]
        return model.from_db(db, [f.attname for f in fields], values)

    def find(self, prefix: str) -> ApiKey | None:
        with connection.cursor() as cursor:
            cursor.execute(self.sql, [prefix])
            row = cursor.fetchone()
        if row is None:
            return None
        split = len(self.key_fields)
        api_key = self._build(ApiKey, self.key_fields, row[:split], connection.alias)
        api_key.organization = self._build(
            Organization, self.org_fields, row[split:], connection.alias
        )
        return api_key


_key_lookup: _KeyLookup | None = None


def find_api_key(prefix: str) -> ApiKey | None:
    """The key with this prefix, its organization loaded; None if there is none."""
    global _key_lookup
    if connection.vendor != "postgresql":
        with scopes_disabled():
            return ApiKey.objects.select_related("organization").filter(prefix=prefix).first()
    if _key_lookup is None:
        _key_lookup = _KeyLookup()
    return _key_lookup.find(prefix)


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
        api_key = find_api_key(prefix)
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
