"""Tracing and structured logs: off by default, keyed to deliverables when on.

In-process: tasks run eagerly, spans are kept in memory. The real worker's side of the
trace is tests/integration/test_tracing_worker.py.
"""

import io
import json
import logging

import pytest
from django.conf import settings
from django.core.signals import request_started
from django.db import connections
from django.test import override_settings
from django_scopes import scope
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from deliveries.tasks import process_events
from devtools.factories import GateFactory
from gates.models import CheckName, GateMode
from meshline import telemetry
from meshline.celery import TenantTask
from meshline.celery import app as celery_app
from meshline.env import ConfigError
from tests.integration.conftest import Publisher

OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
)
seen_keys: list = []


@celery_app.task(base=TenantTask, name="tests.log_keys", shared=False)
def log_keys(*, organization) -> None:
    telemetry.tag(deliverable_id="inside-the-task")
    seen_keys.append(dict(telemetry._keys.get()))


@pytest.fixture
def no_otel_environment(monkeypatch):
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def _traced(queries: bool):
    exporter = InMemorySpanExporter()
    telemetry.clear_keys()
    with pytest.MonkeyPatch.context() as patch:
        # A connection opened while psycopg is instrumented stays traced after it is not.
        patch.setenv("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "" if queries else "psycopg")
        telemetry.setup("web", span_exporter=exporter, global_provider=False)
    if queries:
        connections.close_all()  # the next query connects through the instrumentation
    yield exporter
    telemetry.shutdown()
    telemetry.clear_keys()
    if queries:
        connections.close_all()  # the next test connects untraced


@pytest.fixture
def spans(no_otel_environment):
    """Tracing on in this process (as in the web process), spans kept in memory."""
    yield from _traced(queries=False)


@pytest.fixture
def spans_and_queries(no_otel_environment, transactional_db):
    """``spans``, with the database queries traced too (tests that commit)."""
    yield from _traced(queries=True)


@pytest.mark.parametrize(
    ("environment", "exporters"),
    [
        ({}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, ["otlp"]),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4318/v1/traces"}, ["otlp"]),
        ({"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, []),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c", "OTEL_SDK_DISABLED": "TRUE"}, []),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "false"}, ["otlp"]),
    ],
)
def test_tracing_follows_the_standard_environment_and_is_off_by_default(environment, exporters):
    assert telemetry.exporter_names(environment) == exporters


def test_without_otel_environment_nothing_is_instrumented(no_otel_environment):
    middleware = list(settings.MIDDLEWARE)
    assert telemetry.setup("web") is False
    assert not telemetry.active()
    assert list(settings.MIDDLEWARE) == middleware


@pytest.mark.parametrize(
    ("environment", "message"),
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "otlp, console or none"),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            "http/protobuf",
        ),
    ],
)
def test_an_exporter_meshline_does_not_ship_is_a_clear_error(
    no_otel_environment, monkeypatch, environment, message
):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=message):
        telemetry.setup("web")
    assert not telemetry.active()


def test_batch_request_and_its_processing_form_one_trace_keyed_to_deliverables(
    spans_and_queries, org_a, api_a, client_acme, event_body
):
    with scope(organization=org_a):
        for check in (CheckName.SEO_TAGS_PRESENT, CheckName.SCREENSHOT_REGRESSION):
            GateFactory(organization=org_a, check_name=check, mode=GateMode.MONITOR)
    bodies = [
        event_body(deliverable_id=f"LP-{n}", idempotency_key=f"k-{n}", correlation_id="c-1")
        for n in range(3)
    ]
    response = api_a.post("/api/v1/events", {"events": bodies}, format="json")
    assert response.status_code == 200, response.json()

    finished = spans_and_queries.get_finished_spans()
    [request] = [s for s in finished if s.kind == SpanKind.SERVER]
    attributes = request.attributes
    assert attributes["meshline.organization"] == "org-a"
    assert attributes["meshline.event_count"] == 3
    assert attributes["meshline.event_type"] == "page.published"
    assert attributes["meshline.correlation_id"] == "c-1"
    assert "meshline.deliverable_id" not in attributes  # three of them: listed instead
    assert list(attributes["meshline.deliverable_ids"]) == ["LP-0", "LP-1", "LP-2"]

    # Eager tasks: processing and evaluation run inside the request, in its trace; so do
    # its queries (the test's own set-up queries are traces of their own).
    in_request = [s for s in finished if s.context.trace_id == request.context.trace_id]
    assert {s.instrumentation_scope.name for s in finished if s not in in_request} <= {
        "opentelemetry.instrumentation.psycopg"
    }
    assert any(s.attributes.get("db.system") == "postgresql" for s in in_request)
    [batch] = [s for s in finished if s.name == "meshline.process_batch"]
    assert batch.attributes["meshline.organization"] == "org-a"
    assert batch.attributes["meshline.event_count"] == 3
    assert list(batch.attributes["meshline.deliverable_ids"]) == ["LP-0", "LP-1", "LP-2"]
    assert batch.attributes["meshline.correlation_id"] == "c-1"
    [judge] = [s for s in finished if s.name == "meshline.judge_gates"]
    assert judge.parent.span_id == batch.context.span_id
    # The heavy checks: one task per event, each keyed to its deliverable.
    heavy = [s for s in finished if s.name == "run/gates.evaluate_heavy"]
    assert sorted(s.attributes["meshline.deliverable_id"] for s in heavy) == [
        "LP-0",
        "LP-1",
        "LP-2",
    ]
    assert {s.attributes["meshline.gate"] for s in heavy} == {"screenshot-regression"}


def test_publish_after_commit_keeps_the_trace_of_its_caller(
    spans, org_a, django_capture_on_commit_callbacks
):
    publisher = Publisher(celery_app, "meshline-test-telemetry")
    publisher.use("memory://")  # published for real (signals, headers), consumed by nobody
    try:
        with (
            django_capture_on_commit_callbacks(execute=True),
            telemetry.tracer().start_as_current_span("caller") as caller,
        ):
            process_events.publish_on_commit(organization_id=org_a.pk, event_ids=[])
        # The commit hooks ran on leaving the first context, after the caller's span ended.
    finally:
        publisher.restore()

    [publish] = [
        s for s in spans.get_finished_spans() if s.name == "apply_async/deliveries.process_events"
    ]
    assert publish.context.trace_id == caller.context.trace_id
    assert publish.parent.span_id == caller.context.span_id


def _json_logger(stream):
    handler = logging.StreamHandler(stream)
    handler.setFormatter(telemetry.JsonFormatter())
    handler.addFilter(telemetry.ContextFilter())
    logger = logging.getLogger("tests.telemetry.json")
    logger.handlers = [handler]
    logger.propagate = False
    return logger


def test_json_log_lines_carry_the_trace_and_the_keys(spans):
    stream = io.StringIO()
    logger = _json_logger(stream)
    with telemetry.tracer().start_as_current_span("work") as span, telemetry.scoped_keys():
        telemetry.tag(organization="org-a", deliverable_id="LP-1", event_type="page.published")
        logger.warning("checked %s", "LP-1")
    logger.warning("afterwards")

    inside, after = (json.loads(line) for line in stream.getvalue().splitlines())
    assert inside["message"] == "checked LP-1"
    assert inside["level"] == "WARNING"
    assert inside["trace_id"] == format(span.get_span_context().trace_id, "032x")
    assert inside["span_id"] == format(span.get_span_context().span_id, "016x")
    assert (inside["organization"], inside["deliverable_id"]) == ("org-a", "LP-1")
    assert inside["event_type"] == "page.published"
    assert inside["time"].endswith("+00:00")
    # Outside the span and the keys' scope: neither is claimed.
    assert not {"trace_id", "organization", "deliverable_id"} & after.keys()


def test_keys_do_not_outlive_their_request_or_task(org_a):
    telemetry.clear_keys()
    telemetry.tag(deliverable_id="from-the-request")
    seen_keys.clear()
    log_keys.apply(kwargs={"organization_id": org_a.pk})
    assert seen_keys == [{"deliverable_id": "inside-the-task", "organization": "org-a"}]
    # The eager task's keys were its own; the request's are back.
    assert dict(telemetry._keys.get()) == {"deliverable_id": "from-the-request"}
    request_started.send(sender=None)
    assert dict(telemetry._keys.get()) == {}


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_celery_logging_is_json_when_asked(log_format):
    handler = logging.StreamHandler(io.StringIO())
    plain = logging.Formatter("%(message)s")
    handler.setFormatter(plain)
    logger = logging.Logger("tests.telemetry.celery")
    logger.addHandler(handler)
    with override_settings(MESHLINE_LOG_FORMAT=log_format):
        telemetry.json_logging_for_celery(logger=logger)
    if log_format == "json":
        assert isinstance(handler.formatter, telemetry.JsonFormatter)
        assert any(isinstance(f, telemetry.ContextFilter) for f in handler.filters)
    else:
        assert handler.formatter is plain
        assert not handler.filters
