"""The event envelope: checked by hand against the contract, payloads by JSON Schema.

By hand rather than by a DRF serializer, which costs ~10x more per event and reports errors
less precisely (bench/ingest.py).
"""

from datetime import datetime

from referencing.exceptions import Unresolvable

from deliveries.jsonlimits import find_problem
from deliveries.models import REFERENCE_MESSAGE, REFERENCE_RE
from deliveries.services.ingest.results import _error
from meshline.instants import instant_problem

ALLOWED_FIELDS = {
    "event_type",
    "deliverable_id",
    "client_id",
    "correlation_id",
    "idempotency_key",
    "actor",
    "occurred_at",
    "payload",
}
REQUIRED_FIELDS = ("event_type", "deliverable_id", "client_id", "actor", "occurred_at", "payload")
STRING_LIMITS = {
    "event_type": 64,
    "deliverable_id": 100,
    "client_id": 100,
    "correlation_id": 100,
    "idempotency_key": 200,
}
# The submitter's references: restricted to the documented pattern (models.REFERENCE_RE).
REFERENCE_FIELDS = ("deliverable_id", "client_id")
ACTOR_FIELDS = {"role": 100, "id": 200}
NUL_MESSAGE = "Text contains a NUL character (\\u0000)."


def _parse_occurred_at(value, errors: list[dict]) -> datetime | None:
    if not isinstance(value, str):
        errors.append(_error("invalid_type", "Must be an ISO 8601 string.", "occurred_at"))
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        errors.append(_error("invalid_datetime", "Not an ISO 8601 date-time.", "occurred_at"))
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        errors.append(
            _error(
                "timezone_required",
                "occurred_at must carry a time zone, e.g. 2026-11-21T10:00:00Z.",
                "occurred_at",
            )
        )
        return None
    problem = instant_problem(parsed)
    if problem is not None:
        errors.append(_error(*problem, "occurred_at"))
        return None
    return parsed


def validate_envelope(raw, types: dict) -> tuple[dict | None, list[dict]]:
    """Check one event against the contract. Returns (normalized data, errors)."""
    errors: list[dict] = []
    if not isinstance(raw, dict):
        return None, [_error("invalid_type", "Each event must be a JSON object.")]
    for name in sorted(set(raw) - ALLOWED_FIELDS):
        errors.append(_error("unknown_field", "This field is not part of the contract.", name))
    for name in REQUIRED_FIELDS:
        if raw.get(name) is None:
            errors.append(_error("required", "This field is required.", name))
    for name, limit in STRING_LIMITS.items():
        value = raw.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            errors.append(_error("invalid_type", "Must be a string.", name))
        elif not value.strip():
            errors.append(_error("blank", "Must not be blank.", name))
        elif len(value) > limit:
            errors.append(_error("too_long", f"At most {limit} characters.", name))
        elif name in REFERENCE_FIELDS and not REFERENCE_RE.fullmatch(value):
            errors.append(_error("invalid_reference", REFERENCE_MESSAGE, name))
        elif "\x00" in value:
            # PostgreSQL cannot store NUL in text: refuse it here, as a 400.
            errors.append(_error("invalid_text", NUL_MESSAGE, name))
    actor = raw.get("actor")
    if actor is not None:
        if not isinstance(actor, dict):
            errors.append(_error("invalid_type", "Must be an object with role and id.", "actor"))
        else:
            for name in sorted(set(actor) - set(ACTOR_FIELDS)):
                errors.append(_error("unknown_field", "Not part of actor.", f"actor.{name}"))
            for name, limit in ACTOR_FIELDS.items():
                value = actor.get(name)
                if not isinstance(value, str) or not value.strip():
                    errors.append(_error("required", "A non-empty string.", f"actor.{name}"))
                elif len(value) > limit:
                    errors.append(
                        _error("too_long", f"At most {limit} characters.", f"actor.{name}")
                    )
                elif "\x00" in value:
                    errors.append(_error("invalid_text", NUL_MESSAGE, f"actor.{name}"))
    occurred_at = None
    if raw.get("occurred_at") is not None:
        occurred_at = _parse_occurred_at(raw["occurred_at"], errors)
    payload = raw.get("payload")
    if payload is not None and not isinstance(payload, dict):
        errors.append(_error("invalid_type", "Must be a JSON object.", "payload"))
    elif payload is not None:
        # Before the JSON Schema: deep nesting would exhaust its recursion.
        problem = find_problem(payload, "payload")
        if problem is not None:
            errors.append(_error(problem.code, problem.message, problem.field))
    event_type = raw.get("event_type")
    registered = None
    if isinstance(event_type, str) and event_type.strip():
        registered = types.get(event_type)
        if registered is None:
            errors.append(
                _error(
                    "unknown_event_type",
                    f"'{event_type}' is not a registered event type.",
                    "event_type",
                )
            )
        elif registered.internal:
            errors.append(
                _error(
                    "reserved_event_type",
                    f"'{event_type}' is written by Meshline only.",
                    "event_type",
                )
            )
    if errors:
        return None, errors
    try:
        for error in registered.validator.iter_errors(payload):
            path = ".".join(str(part) for part in error.absolute_path)
            errors.append(
                _error("payload_invalid", error.message, "payload" + (f".{path}" if path else ""))
            )
    except Unresolvable as exc:
        # A schema stored before registration refused outside references: the registry
        # never fetches one (see registry._compile), so it cannot be checked against.
        return None, [
            _error(
                "schema_unresolvable",
                f"The schema of '{event_type}' (version {registered.version}) refers to "
                f"'{exc.ref}', which Meshline does not fetch; "
                "register a new version whose $ref points inside the schema.",
                "event_type",
            )
        ]
    if errors:
        return None, errors
    data = dict(raw)
    data["occurred_at"] = occurred_at
    data["schema_version"] = registered.version
    return data, []
