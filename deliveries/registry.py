"""The event types an organization may submit, with compiled payload validators.

Compiling a JSON Schema costs far more than using one, and the hot ingest path checks
every event, so each process keeps the registry per organization and reloads it only when
``Organization.event_types_version`` (read with the API key, at no extra query) moves on.

Schemas come from API callers, so a ``$ref`` is resolved only inside the schema itself and
against the JSON Schema metaschemas that ship with jsonschema: never fetched over the
network or from a file (jsonschema's default would fetch it, without a timeout).
"""

import threading
from dataclasses import dataclass
from urllib.parse import urljoin

from jsonschema import Draft202012Validator
from jsonschema.validators import validator_for
from jsonschema_specifications import REGISTRY as METASCHEMAS
from referencing import Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from deliveries.jsonlimits import find_problem
from deliveries.models import EventType

# The metaschemas and no ``retrieve``: a reference that is neither inside the schema nor to
# a metaschema is Unresolvable instead of fetched.
NO_RETRIEVAL = METASCHEMAS
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
# Keywords whose values are data, not subschemas: a "$ref" inside them is not a reference.
_DATA_KEYWORDS = {"const", "enum", "examples", "default"}


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
    return cls(schema, registry=NO_RETRIEVAL)


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
    problem = find_problem(schema, "payload_schema")
    if problem is not None:
        return [f"{problem.field}: {problem.message}"]
    try:
        _compile(schema)
    except SchemaError as exc:
        return [f"Invalid JSON Schema: {exc.message}"]
    return _reference_problems(schema)


def _reference_problems(schema: dict) -> list[str]:
    """Each $ref that does not resolve inside the schema (or to a metaschema), named."""
    resource = Resource.from_contents(schema, default_specification=DRAFT202012)
    resolver = NO_RETRIEVAL.resolver_with_root(resource)
    problems = []
    stack = [(schema, resource.id() or "")]
    while stack:
        node, base = stack.pop()
        if isinstance(node, list):
            stack.extend((item, base) for item in node)
            continue
        if not isinstance(node, dict):
            continue
        if isinstance(node.get("$id"), str):
            base = urljoin(base, node["$id"])
        for keyword in _REF_KEYWORDS:
            ref = node.get(keyword)
            if not isinstance(ref, str):
                continue
            try:
                resolver.lookup(urljoin(base, ref))
            except Unresolvable:
                problems.append(
                    f"{keyword} '{ref}' does not resolve inside the schema. Meshline never "
                    "fetches remote or file references; use one such as '#/$defs/name'."
                )
        stack.extend((value, base) for key, value in node.items() if key not in _DATA_KEYWORDS)
    return problems


def clear_cache() -> None:
    _cache.clear()
