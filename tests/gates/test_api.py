"""Gates API v1: the gates list with its pass rates, one evaluation and its artifacts.

Every endpoint is also called with organization B's key: another tenant's gate, evaluation
or artifact answers 404, exactly like one that does not exist.
"""

import io
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_scopes import scope
from PIL import Image

from deliveries.models import Event
from deliveries.services import ingest_events
from gates.models import CheckName, GateEvaluation, GateMode, Outcome
from tests.gates.conftest import event


def stored_events(organization, count, ref="LP-1"):
    """Events stored but not processed (their after-commit dispatch never runs in a test)."""
    with scope(organization=organization):
        results = ingest_events(
            organization,
            [event("intake.received", ref, {}, key=f"{ref}-{n}") for n in range(count)],
        )
        assert {r.status for r in results} == {"accepted"}
        return list(Event.objects.filter(pk__in=[r.event_id for r in results]).order_by("pk"))


def add_evaluations(organization, gate, outcomes_by_age):
    """One evaluation per (outcome, hours ago), on events of their own."""
    events = stored_events(organization, len(outcomes_by_age), ref=f"LP-{gate.slug}")
    now = timezone.now()
    with scope(organization=organization):
        return [
            GateEvaluation.objects.create(
                organization=organization,
                gate=gate,
                event=e,
                deliverable=e.deliverable,
                outcome=outcome,
                mode=gate.mode,
                evaluated_at=now - timedelta(hours=hours),
            )
            for e, (outcome, hours) in zip(events, outcomes_by_age, strict=True)
        ]


# --- the gates list -------------------------------------------------------------------------


def test_gates_list_shows_mode_and_pass_rates_over_24_hours_and_7_days(
    api_a, org_a, client_acme, make_gate
):
    schema = make_gate(CheckName.SCHEMA_CHECK, name="A schema")
    make_gate(CheckName.SEO_TAGS_PRESENT, name="B seo", mode=GateMode.MONITOR)
    add_evaluations(
        org_a,
        schema,
        [
            (Outcome.PASS, 1),
            (Outcome.PASS, 2),
            (Outcome.FAIL, 3),
            (Outcome.ERROR, 4),  # undecided: counts nowhere
            (Outcome.FAIL, 48),
            (Outcome.MONITOR, 72),  # a failure, recorded only
            (Outcome.PASS, 24 * 6),
            (Outcome.FAIL, 24 * 8),  # older than 7 days
        ],
    )
    response = api_a.get("/api/v1/gates")
    assert response.status_code == 200, response.json()
    by_slug = {gate["slug"]: gate for gate in response.json()}
    assert list(by_slug) == ["schema-check", "seo-tags-present"]  # ordered by name
    schema_row = by_slug["schema-check"]
    assert schema_row["mode"] == "enforce"
    assert schema_row["check_name"] == "schema_check"
    assert schema_row["evaluations_24h"] == 3
    assert schema_row["pass_rate_24h"] == pytest.approx(2 / 3)
    assert schema_row["pass_rate_7d"] == pytest.approx(3 / 6)
    seo_row = by_slug["seo-tags-present"]
    assert (seo_row["mode"], seo_row["pass_rate_24h"], seo_row["pass_rate_7d"]) == (
        "monitor",
        None,
        None,
    )
    assert seo_row["evaluations_24h"] == 0


def test_gates_list_shows_why_a_gate_went_to_monitor(api_a, org_a, make_gate):
    make_gate(
        CheckName.SCHEMA_CHECK,
        mode=GateMode.MONITOR,
        auto_monitored_at=timezone.now(),
        auto_monitor_reason="Failed 6 of 10 evaluations (60%) in the last 24 h",
    )
    [row] = api_a.get("/api/v1/gates").json()
    assert row["auto_monitor_reason"] == "Failed 6 of 10 evaluations (60%) in the last 24 h"
    assert row["auto_monitored_at"] is not None


def test_gates_list_query_count_does_not_grow_with_gates(api_a, org_a, client_acme, make_gate):
    make_gate(CheckName.SCHEMA_CHECK)
    api_a.get("/api/v1/gates")  # the key's first use is recorded once
    with CaptureQueriesContext(connection) as one:
        assert api_a.get("/api/v1/gates").status_code == 200
    for check in (CheckName.SEO_TAGS_PRESENT, CheckName.SCHEMA_VERSION, CheckName.SCOPE_LIMITS):
        gate = make_gate(check)
        add_evaluations(org_a, gate, [(Outcome.PASS, 1), (Outcome.FAIL, 30)])
    with CaptureQueriesContext(connection) as four:
        response = api_a.get("/api/v1/gates")
    assert len(response.json()) == 4
    assert len(four) == len(one)


def test_gate_detail_by_slug(api_a, make_gate):
    make_gate(CheckName.SCHEMA_CHECK, parameters={"allowed_types": ["Product"]})
    response = api_a.get("/api/v1/gates/schema-check")
    assert response.status_code == 200
    assert response.json()["parameters"] == {"allowed_types": ["Product"]}
    assert api_a.get("/api/v1/gates/no-such-gate").status_code == 404


def test_gates_list_shows_only_the_keys_organization(api_a, api_b, org_b, make_gate):
    make_gate(CheckName.SCHEMA_CHECK)
    make_gate(CheckName.SEO_TAGS_PRESENT, "b-seo", organization=org_b)
    assert [g["slug"] for g in api_a.get("/api/v1/gates").json()] == ["schema-check"]
    assert [g["slug"] for g in api_b.get("/api/v1/gates").json()] == ["b-seo"]


def test_another_organizations_gate_is_404(api_b, make_gate):
    make_gate(CheckName.SCHEMA_CHECK)
    response = api_b.get("/api/v1/gates/schema-check")
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "not_found"


def test_gates_need_the_events_read_scope(org_a, make_key, make_gate):
    make_gate(CheckName.SCHEMA_CHECK)
    _key, limited = make_key(org_a, scopes=["deliverables:read"])
    assert limited.get("/api/v1/gates").status_code == 403


def test_gates_need_a_key(make_gate):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/gates").status_code == 401


# --- one evaluation and its artifacts -------------------------------------------------------


def test_evaluation_detail(api_a, screenshot_failure):
    e = screenshot_failure
    response = api_a.get(f"/api/v1/evaluations/{e.pk}")
    assert response.status_code == 200, response.json()
    data = response.json()
    assert data["id"] == str(e.pk)
    assert (data["gate"], data["deliverable_id"], data["outcome"], data["mode"]) == (
        "screenshot-regression",
        "LP-1",
        "fail",
        "enforce",
    )
    assert data["reasons"] == e.reasons
    assert data["details"]["difference_percent"] > 5
    assert data["artifacts"] == ["difference.png"]
    assert data["ticket_id"] == str(e.ticket_id)
    assert data["billing_flag"] is False


def test_the_difference_image_is_served_as_png(api_a, screenshot_failure):
    response = api_a.get(f"/api/v1/evaluations/{screenshot_failure.pk}/artifacts/difference.png")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    # The portal's response, headers included: the API had a copy without them.
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox"
    image = Image.open(io.BytesIO(response.content))
    image.load()
    assert (image.format, image.size) == ("PNG", (256, 160))


def test_an_unknown_artifact_or_evaluation_is_404(api_a, screenshot_failure):
    base = f"/api/v1/evaluations/{screenshot_failure.pk}"
    assert api_a.get(f"{base}/artifacts/baseline.png").status_code == 404
    assert api_a.get(f"/api/v1/evaluations/{uuid.uuid4()}").status_code == 404
    assert api_a.get("/api/v1/evaluations/not-a-uuid").status_code == 404
    assert api_a.get("/api/v1/evaluations/not-a-uuid/artifacts/difference.png").status_code == 404


def test_another_organizations_evaluation_and_artifact_are_404(api_b, screenshot_failure):
    base = f"/api/v1/evaluations/{screenshot_failure.pk}"
    for url in (base, f"{base}/artifacts/difference.png"):
        response = api_b.get(url)
        assert response.status_code == 404, url
        assert b"PNG" not in response.content


def test_the_evaluation_list_is_not_exposed(api_a):
    # Evaluations are reached from a deliverable's trail or a gate, never enumerated.
    assert api_a.get("/api/v1/evaluations").status_code in (404, 405)
