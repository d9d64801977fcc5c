"""One trace follows an event from the API into a real worker process (issue 15's done-when).

This process plays the web side, its spans kept in memory; the worker is a separate
prefork process that exports its spans over OTLP/HTTP to a collector this test runs on
127.0.0.1, configured only by the standard OTEL_* variables. The request's trace must
reach the worker through the message headers (Celery instrumentation), and go on from
the processing task's batch to the heavy check it publishes after its commit.
"""

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.db import connections
from django_scopes import scope, scopes_disabled
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from deliveries.models import EventProcessing, ProcessingStatus
from devtools.factories import GateFactory
from gates.models import CheckName, GateEvaluation, GateMode
from meshline import telemetry
from tests.integration.conftest import wait_until

pytestmark = [pytest.mark.worker, pytest.mark.postgres, pytest.mark.redis]


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


class Collector:
    """An OTLP/HTTP trace receiver: keeps every span posted to /v1/traces."""

    def __init__(self):
        self.spans: list[dict] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest.FromString(body)
                collector.add(request)
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def add(self, request) -> None:
        with self.lock:
            for resource_spans in request.resource_spans:
                resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        self.spans.append(
                            {
                                "name": span.name,
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "links": [
                                    (link.trace_id.hex(), link.span_id.hex()) for link in span.links
                                ],
                                "attributes": {a.key: _value(a.value) for a in span.attributes},
                                "resource": resource,
                            }
                        )

    def named(self, name: str) -> list[dict]:
        with self.lock:
            return [span for span in self.spans if span["name"] == name]


@pytest.fixture
def collector():
    collector = Collector()
    collector.thread.start()
    yield collector
    collector.server.shutdown()
    collector.server.server_close()


@pytest.fixture
def web_spans():
    """This process traced as the web process is, its spans kept in memory."""
    exporter = InMemorySpanExporter()
    telemetry.setup("web", span_exporter=exporter, global_provider=False)
    yield exporter
    telemetry.shutdown()
    connections.close_all()  # opened while psycopg was instrumented: the next test connects anew


def _hex(number: int, width: int) -> str:
    return format(number, f"0{width}x")


def test_one_trace_follows_an_event_from_the_api_into_the_worker(
    start_worker, publisher, celery_queue, collector, web_spans, org_a, api_a, client_acme,
    event_body,
):  # fmt: skip
    namespace = f"{celery_queue}-trace"
    worker = start_worker(
        "traced",
        default_queue=namespace,
        # prefork, as production runs it: tracing starts in the forked child
        args=["--pool=prefork", "--concurrency=1"],
        env={
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector.url,  # alone, it turns tracing on
            "OTEL_BSP_SCHEDULE_DELAY": "100",
            "MESHLINE_LOG_FORMAT": "json",
        },
    )
    with scope(organization=org_a):
        # One gate judged inside the processing batch, one on the heavy queue (a task of
        # its own, published after the batch commits).
        for check in (CheckName.SEO_TAGS_PRESENT, CheckName.SCREENSHOT_REGRESSION):
            GateFactory(organization=org_a, check_name=check, mode=GateMode.MONITOR)
    publisher.use(settings.REDIS_URL, queue=namespace)

    response = api_a.post("/api/v1/events", event_body(), format="json")
    assert response.status_code == 202, response.json()
    event_id = response.json()["id"]

    # --- the web side: the request span, and the publish inside it
    request_span = next(s for s in web_spans.get_finished_spans() if s.kind == SpanKind.SERVER)
    trace_id = _hex(request_span.context.trace_id, 32)
    assert request_span.attributes["meshline.organization"] == "org-a"
    assert request_span.attributes["meshline.deliverable_id"] == "LP-2041"
    assert request_span.attributes["meshline.event_type"] == "page.published"
    assert request_span.attributes["meshline.correlation_id"] == event_body()["correlation_id"]
    publish_span = next(
        s
        for s in web_spans.get_finished_spans()
        if s.name == "apply_async/deliveries.process_pending_events"
    )
    assert publish_span.context.trace_id == request_span.context.trace_id
    assert publish_span.parent.span_id == request_span.context.span_id

    # --- the worker side, as its collector received it
    wait_until(
        lambda: collector.named("run/gates.evaluate_heavy"),
        30,
        message=lambda: f"the worker's spans; got {[s['name'] for s in collector.spans]}",
    )
    with scopes_disabled():
        assert EventProcessing.objects.get(event_id=event_id).status == ProcessingStatus.PROCESSED
        assert GateEvaluation.objects.filter(event_id=event_id).count() == 2

    # A single event waits in its organization's list; the wake-up the request published
    # takes it (deliveries/services/wakeups.py).
    [task_span] = collector.named("run/deliveries.process_pending_events")
    assert task_span["trace_id"] == trace_id
    assert task_span["parent_span_id"] == _hex(publish_span.context.span_id, 16)
    assert task_span["resource"]["service.name"] == "meshline-worker"
    assert task_span["attributes"]["meshline.organization"] == "org-a"

    # The drain serves every request whose events it took: it links to each of their
    # traces (here the one request, whose trace it is also in).
    [drain_span] = collector.named("meshline.process_pending")
    assert drain_span["trace_id"] == trace_id
    assert drain_span["parent_span_id"] == task_span["span_id"]
    assert drain_span["links"] == [(trace_id, _hex(request_span.context.span_id, 16))]

    [batch_span] = collector.named("meshline.process_batch")
    assert batch_span["trace_id"] == trace_id
    assert batch_span["parent_span_id"] == drain_span["span_id"]
    assert batch_span["attributes"]["meshline.organization"] == "org-a"
    assert batch_span["attributes"]["meshline.deliverable_id"] == "LP-2041"
    assert batch_span["attributes"]["meshline.event_type"] == "page.published"
    assert batch_span["attributes"]["meshline.event_id"] == event_id
    assert batch_span["attributes"]["meshline.event_count"] == 1
    [judge_span] = collector.named("meshline.judge_gates")
    assert judge_span["parent_span_id"] == batch_span["span_id"]
    assert judge_span["attributes"]["meshline.deliverable_id"] == "LP-2041"

    # The heavy check was published after the batch committed, and still belongs to the
    # request's trace, under its publish from the batch's span.
    [heavy_publish] = collector.named("apply_async/gates.evaluate_heavy")
    [heavy] = collector.named("run/gates.evaluate_heavy")
    assert heavy_publish["parent_span_id"] == batch_span["span_id"]
    assert heavy["trace_id"] == trace_id
    assert heavy["parent_span_id"] == heavy_publish["span_id"]
    assert heavy["attributes"]["meshline.deliverable_id"] == "LP-2041"
    assert heavy["attributes"]["meshline.gate"] == "screenshot-regression"
    assert heavy["attributes"]["meshline.gate_outcome"] == "error"  # the page had no screenshot

    # The worker's JSON log lines carry the trace too.
    records = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    succeeded = [
        r
        for r in records
        if "deliveries.process_pending_events" in r["message"] and "succeeded" in r["message"]
    ]
    assert succeeded and succeeded[0]["trace_id"] == trace_id, records[-5:]
