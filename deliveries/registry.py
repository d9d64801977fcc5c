"""The event types an organization may submit, with compiled payload validators.

Compiling a JSON Schema costs far more than using one, and the hot ingest path checks
every event, so each process keeps the registry per organization and reloads it only when
``Organization.event_types_version`` (read with the API key, at no extra query) moves on.
"""

import threading
from dataclasses import dataclass

from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for

from deliveries.models import EventType


@dataclass(frozen=True)
class RegisteredType:
    name: str
    version: int
    advances_to: str
    internal: bool
    validator: Draft202012Validator


_cache: dict[int, tuple[int, dict[str, RegisteredType]]] = {}
_lock = threading.Lock()


def _compile(schema: dict):
    cls = validator_for(schema, default=Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def load_types(organization) -> dict[str, RegisteredType]:
    """Latest version of every type the organization can use; its own names shadow canonical."""
    rows = EventType.objects.filter(organization__isnull=True).order_by("name", "version")
    own = EventType.objects.filter(organization=organization).order_by("name", "version")
    types: dict[str, RegisteredType] = {}
    for row in [*rows, *own]:  # later (higher version, then organization's own) wins
        types[row.name] = RegisteredType(
            name=row.name,
            version=row.version,
            advances_to=row.advances_to,
            internal=row.internal,
            validator=_compile(row.payload_schema),
        )
    return types


def types_for(organization) -> dict[str, RegisteredType]:
    cached = _cache.get(organization.pk)
    if cached is not None and cached[0] == organization.event_types_version:
        return cached[1]
    types = load_types(organization)
    with _lock:
        _cache[organization.pk] = (organization.event_types_version, types)
    return types


def check_schema(schema: dict) -> list[str]:
    """Problems with a schema an organization wants to register (empty when usable)."""
    from jsonschema.exceptions import SchemaError

    if not isinstance(schema, dict):
        return ["The payload schema must be a JSON object."]
    try:
        _compile(schema)
    except SchemaError as exc:
        return [f"Invalid JSON Schema: {exc.message}"]
    return []


def clear_cache() -> None:
    _cache.clear()
