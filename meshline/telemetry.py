"""Traces and structured logs keyed to deliverables (OpenTelemetry, python-json-logger).

Tracing is off unless the standard OpenTelemetry environment asks for an exporter:
``OTEL_TRACES_EXPORTER`` (otlp, console; none turns it off) or an OTLP endpoint
(``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, which imply
otlp); ``OTEL_SDK_DISABLED=true`` wins over both. Everything else is the SDK's own
reading of the spec's variables: ``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``, the exporter's headers, timeout and compression,
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` and ``OTEL_PYTHON_DJANGO_EXCLUDED_URLS``.
Off, nothing is instrumented and the helpers below cost a context-variable read.

``setup`` runs once per process: the web process from ``meshline.wsgi``, each Celery
worker process at ``worker_process_init`` (after the prefork pool forked it: the SDK's
export thread and the database connections must belong to the child), beat at
``beat_init``. The Celery instrumentation carries the trace in the message headers, so the
worker's task span continues the request's trace; work published after commit keeps the
trace of the code that asked for it (``on_commit``), not whatever runs the commit hooks.

Spans carry ``meshline.organization`` (slug), ``meshline.deliverable_id``,
``meshline.event_type``, ``meshline.correlation_id`` (and ``meshline.event_id``); a span
that covers several events (an ingest batch) has the singular key when all share one value
and the distinct values in the plural (``meshline.deliverable_ids``...). The same keys,
when known, and ``trace_id``/``span_id`` are added to every log record (``ContextFilter``);
``MESHLINE_LOG_FORMAT=json`` writes one JSON object per line (``JsonFormatter``).
"""

import contextlib
import contextvars
import functools
import logging
import os
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType

from django.db import transaction
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

from meshline.env import ConfigError

log = logging.getLogger(__name__)

PREFIX = "meshline."
# Distinct values listed on a span that covers many events (a 500-event batch).
MAX_LISTED = 100
# Links on one span (the SDK's default limit, OTEL_SPAN_LINK_COUNT_LIMIT, is 128).
MAX_LINKS = 128
INSTRUMENTATIONS = ("django", "celery", "psycopg")

# The keys known in this context, for log records: organization, deliverable_id, ...
_keys: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "meshline_telemetry_keys", default=MappingProxyType({})
)
_state: dict = {"role": None, "provider": None, "instrumentors": [], "tracer": None}


# --- configuration ----------------------------------------------------------------------
def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def exporter_names(environ: Mapping[str, str] | None = None) -> list[str]:
    """The trace exporters the environment asks for; empty when tracing is off."""
    environ = os.environ if environ is None else environ
    if _true(environ.get("OTEL_SDK_DISABLED")):
        return []
    raw = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if raw:
        names = [name.strip().lower() for name in raw.split(",") if name.strip()]
        return [name for name in names if name != "none"]
    # The spec's default exporter is otlp; Meshline's default is off, unless an OTLP
    # endpoint says where to send (that alone is a clear enough request).
    if environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        return ["otlp"]
    return []


def enabled(environ: Mapping[str, str] | None = None) -> bool:
    return bool(exporter_names(environ))


def _span_exporter(name: str, environ: Mapping[str, str]):
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name != "otlp":
        raise ConfigError(f"OTEL_TRACES_EXPORTER={name!r}: Meshline sends otlp, console or none")
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    if protocol != "http/protobuf":
        raise ConfigError(
            f"OTLP protocol {protocol!r}: Meshline ships the http/protobuf exporter "
            "(a collector's port 4318); set OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # endpoint, headers, timeout, compression: OTEL_EXPORTER_OTLP_*


def setup(role: str, *, span_exporter=None, global_provider: bool = True) -> bool:
    """Start tracing in this process if the environment asks for it; once. True when on.

    ``role`` (web, worker, beat) names the service unless ``OTEL_SERVICE_NAME`` or
    ``OTEL_RESOURCE_ATTRIBUTES`` does. Tests pass their own ``span_exporter`` and keep the
    provider out of the global slot (which can be set once per process) so that
    ``shutdown`` can undo everything.
    """
    if _state["role"] is not None:
        return True
    if span_exporter is not None:
        exporters = [span_exporter]
    else:
        exporters = [_span_exporter(name, os.environ) for name in exporter_names()]
    if not exporters:
        return False

    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: f"meshline-{role}"}))
    provider = TracerProvider(resource=resource)  # sampler: OTEL_TRACES_SAMPLER
    for exporter in exporters:
        # A test's exporter sees each span as it ends; real ones export in the background.
        processor = SimpleSpanProcessor if span_exporter is not None else BatchSpanProcessor
        provider.add_span_processor(processor(exporter))
    if global_provider:
        trace.set_tracer_provider(provider)
    _state.update(role=role, provider=provider, tracer=provider.get_tracer("meshline"))
    _instrument(role, provider)
    names = ", ".join(type(exporter).__name__ for exporter in exporters)
    log.info("telemetry: tracing on (%s), exporting with %s", role, names)
    return True


def _instrument(role: str, provider) -> None:
    disabled = {
        name.strip()
        for name in os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "").split(",")
    }
    wanted = [name for name in INSTRUMENTATIONS if name not in disabled]
    if role != "web" and "django" in wanted:
        wanted.remove("django")  # no requests outside the web process
    for name in wanted:
        if name == "django":
            from opentelemetry.instrumentation.django import DjangoInstrumentor as Instrumentor
        elif name == "celery":
            from opentelemetry.instrumentation.celery import CeleryInstrumentor as Instrumentor
        else:
            from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor as Instrumentor
        instrumentor = Instrumentor()
        instrumentor.instrument(tracer_provider=provider)
        _state["instrumentors"].append(instrumentor)


def flush(timeout_millis: int = 5000) -> None:
    """Export what is buffered (a worker process about to exit)."""
    if _state["provider"] is not None:
        _state["provider"].force_flush(timeout_millis)


def shutdown() -> None:
    """Undo ``setup``: uninstrument, flush and forget the provider (tests)."""
    for instrumentor in _state["instrumentors"]:
        instrumentor.uninstrument()
    if _state["provider"] is not None:
        _state["provider"].shutdown()
    _state.update(role=None, provider=None, instrumentors=[], tracer=None)


def active() -> bool:
    return _state["role"] is not None


def tracer():
    """Meshline's own tracer (a no-op one while tracing is off)."""
    return _state["tracer"] or trace.get_tracer("meshline")


# --- context: spans, keys, work that runs later -----------------------------------------
def traced(name: str) -> Callable:
    """Decorator: run the function in its own span, its keys (``tag``) scoped to it.

    The span starts with the keys known around it (the organization, at least).
    """

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if _state["tracer"] is None:
                return fn(*args, **kwargs)
            with _span(name):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


@contextlib.contextmanager
def _span(name: str, links=()):
    """A span started with the keys known around it; keys tagged inside stay inside."""
    keys = _keys.get()
    token = _keys.set(keys)
    attributes = {PREFIX + key: value for key, value in keys.items()}
    try:
        with _state["tracer"].start_as_current_span(name, links=links, attributes=attributes):
            yield
    finally:
        _keys.reset(token)


class scoped_keys:
    """Context manager: keys tagged inside are forgotten on the way out (a task's run)."""

    def __enter__(self):
        self._token = _keys.set(_keys.get())

    def __exit__(self, *exc):
        _keys.reset(self._token)


def clear_keys(**kwargs) -> None:
    """Forget the keys (a new request in a thread that served another one)."""
    _keys.set({})


def tag(**values) -> None:
    """Key the current span and the following log records: ``tag(deliverable_id="LP-1")``.

    Empty values are skipped.
    """
    keys = {key: str(value) for key, value in values.items() if value not in (None, "")}
    if not keys:
        return
    _keys.set({**_keys.get(), **keys})
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attributes({PREFIX + key: value for key, value in keys.items()})


def tag_organization(organization) -> None:
    tag(organization=organization.slug)


def tag_event(event, deliverable) -> None:
    """One event, on the current span (a span of its own, usually) and the log keys.

    The organization is the one the request or task around it tagged (no query here).
    """
    tag(
        organization=_keys.get().get("organization"),
        deliverable_id=deliverable.deliverable_id if deliverable is not None else None,
        event_type=event.event_type,
        correlation_id=event.correlation_id,
        event_id=event.pk,
    )


def tag_batch(items: Iterable[tuple]) -> None:
    """A processing batch's (event, deliverable) pairs: ``tag_events`` of them."""
    items = list(items)
    tag_events(
        {
            "deliverable_id": deliverable.deliverable_id if deliverable is not None else None,
            "event_type": event.event_type,
            "correlation_id": event.correlation_id,
            "event_id": event.pk,
        }
        for event, deliverable in items
    )


def tag_events(records: Iterable[Mapping]) -> None:
    """Several events (mappings with deliverable_id, event_type, correlation_id, maybe
    event_id): each key singular where all share one value, else the distinct values in the
    plural (``meshline.deliverable_ids``...), and the count."""
    records = list(records)
    span = trace.get_current_span()
    singular = {}
    plural = {}
    for key in ("deliverable_id", "event_type", "correlation_id", "event_id"):
        distinct = sorted({str(r[key]) for r in records if r.get(key)})
        if len(distinct) == 1:
            singular[key] = distinct[0]
        elif distinct:
            plural[f"{PREFIX}{key}s"] = distinct[:MAX_LISTED]
    tag(**singular)
    if span.is_recording():
        span.set_attribute(PREFIX + "event_count", len(records))
        span.set_attributes(plural)


def bind(fn: Callable) -> Callable:
    """``fn``, to run later in this moment's trace context and keys."""
    captured, keys = otel_context.get_current(), _keys.get()

    @functools.wraps(fn)
    def bound(*args, **kwargs):
        token, keys_token = otel_context.attach(captured), _keys.set(keys)
        try:
            return fn(*args, **kwargs)
        finally:
            _keys.reset(keys_token)
            otel_context.detach(token)

    return bound


_propagator = TraceContextTextMapPropagator()


def traceparent() -> str:
    """The W3C ``traceparent`` of the current span, to carry by hand ('' while tracing is
    off or outside any span): work queued where no message header can take it."""
    if _state["tracer"] is None:
        return ""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent", "")


@contextlib.contextmanager
def span_linked_to(name: str, traceparents: Iterable[str]):
    """A span of its own that links to each trace in ``traceparents``: one unit of work
    done for many requests (a coalesced batch) belongs to none of their traces alone, and
    each of them can still find it. Unreadable values are skipped."""
    if _state["tracer"] is None:
        yield
        return
    links = []
    for value in dict.fromkeys(t for t in traceparents if t):
        context = trace.get_current_span(_propagator.extract({"traceparent": value}))
        span_context = context.get_span_context()
        if span_context.is_valid:
            links.append(trace.Link(span_context))
        if len(links) == MAX_LINKS:
            break
    with _span(name, links):
        yield


def on_commit(fn: Callable) -> None:
    """``transaction.on_commit`` that runs ``fn`` in the caller's trace (and keys).

    Commit hooks run when the outermost transaction commits: maybe after the span that
    asked for the work has ended, maybe inside another one. A task published from there
    must still continue the trace of the request or task that caused it.
    """
    transaction.on_commit(bind(fn))


# --- logs --------------------------------------------------------------------------------
class ContextFilter(logging.Filter):
    """Adds trace_id, span_id, the Celery task and the known keys to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        for key, value in _keys.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        from celery._state import get_current_task

        task = get_current_task()
        if task is not None and task.request.id and not hasattr(record, "task_id"):
            record.task_id, record.task_name = task.request.id, task.name
        return True


class JsonFormatter(BaseJsonFormatter):
    """One JSON object per line: time, level, logger, message, and every extra attribute
    (the ContextFilter's keys among them)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        kwargs.setdefault("timestamp", "time")  # ISO 8601 in UTC, from the record
        super().__init__("%(levelname)s %(name)s %(message)s", **kwargs)


def json_logging_for_celery(logger=None, **kwargs) -> None:
    """Celery sets up the worker's and beat's logging itself: make its handlers JSON too."""
    from django.conf import settings

    if settings.MESHLINE_LOG_FORMAT != "json" or logger is None:
        return
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
