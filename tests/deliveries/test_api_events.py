"""POST and GET /api/v1/events: ingest, idempotency, batches, bad input, reads, isolation."""

import json
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext, override_settings
from django_scopes import scope, scopes_disabled

from deliveries.models import Deliverable, Event, EventProcessing, ProcessingStatus
from deliveries.services import trail

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/events"


def post(api, body):
    return api.post(EVENTS, body, format="json")


def error_codes(response) -> list[str]:
    return [error["code"] for error in response.json()["errors"]]


def assert_error_body(response, code, field=None):
    """Machine-readable: a list of {code, message[, field]}; the expected code is in it."""
    errors = response.json()["errors"]
    assert errors, response.json()
    for error in errors:
        assert isinstance(error["code"], str) and error["code"]
        assert isinstance(error["message"], str) and error["message"]
    matching = [e for e in errors if e["code"] == code]
    assert matching, errors
    if field is not None:
        assert field in [e.get("field") for e in matching], errors


def numbered(event_body, n, **overrides):
    """n distinct valid events, each for its own deliverable."""
    return [
        event_body(
            idempotency_key=f"key-{i}",
            deliverable_id=f"LP-{i}",
            **overrides,
        )
        for i in range(n)
    ]


# --- single events ---------------------------------------------------------------------


def test_single_event_is_accepted_with_id_and_stored(api_a, org_a, client_acme, event_body):
    response = post(api_a, event_body())

    assert response.status_code == 202, response.json()
    data = response.json()
    assert data["status"] == "accepted"
    assert data["index"] == 0
    assert "errors" not in data
    with scope(organization=org_a):
        event = Event.objects.get(pk=data["id"])
        assert event.organization == org_a
        assert event.client == client_acme
        assert event.deliverable.deliverable_id == "LP-2041"
        assert event.event_type == "page.published"
        assert event.idempotency_key == "cms-evt-88123"
        assert event.occurred_at == datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
        assert event.actor_role == "cms" and event.actor_id == "wp-publisher"
        assert event.payload["url"] == "https://acme.example/lp/spring"
        assert event.processing.status == ProcessingStatus.PENDING


def test_duplicate_key_returns_first_event(api_a, client_acme, event_body, row_counts):
    first = post(api_a, event_body())
    before = row_counts()

    again = post(api_a, event_body())

    assert again.status_code == 200, again.json()
    assert again.json()["status"] == "duplicate"
    assert again.json()["id"] == first.json()["id"]
    assert row_counts() == before


def test_duplicate_with_same_instant_in_another_offset_is_a_duplicate(
    api_a, client_acme, event_body, row_counts
):
    first = post(api_a, event_body(occurred_at="2026-11-21T10:00:00Z"))
    before = row_counts()

    again = post(api_a, event_body(occurred_at="2026-11-21T11:00:00+01:00"))

    assert again.status_code == 200, again.json()
    assert again.json()["id"] == first.json()["id"]
    assert row_counts() == before


def test_same_key_with_different_content_is_a_conflict(
    api_a, org_a, client_acme, event_body, row_counts
):
    first = post(api_a, event_body())
    before = row_counts()

    conflict = post(api_a, event_body(payload={"url": "https://acme.example/other"}))

    assert conflict.status_code == 409, conflict.json()
    assert conflict.json()["status"] == "rejected"
    assert "id" not in conflict.json()
    assert_error_body(conflict, "idempotency_conflict", "idempotency_key")
    assert row_counts() == before
    with scope(organization=org_a):
        stored = Event.objects.get(pk=first.json()["id"])
    assert stored.payload["url"] == "https://acme.example/lp/spring"


def test_without_idempotency_key_the_key_is_derived_from_content(
    api_a, org_a, client_acme, event_body, row_counts
):
    body = event_body(idempotency_key=...)
    assert "idempotency_key" not in body

    first = post(api_a, body)
    before = row_counts()
    again = post(api_a, body)

    assert first.status_code == 202, first.json()
    assert again.status_code == 200, again.json()
    assert again.json() == {**first.json(), "status": "duplicate"}
    assert row_counts() == before
    with scope(organization=org_a):
        assert Event.objects.get(pk=first.json()["id"]).idempotency_key.startswith("sha256:")


def test_without_idempotency_key_different_content_is_a_new_event(
    api_a, client_acme, event_body, row_counts
):
    first = post(api_a, event_body(idempotency_key=...))
    second = post(api_a, event_body(idempotency_key=..., occurred_at="2026-11-21T10:00:01Z"))

    assert first.status_code == second.status_code == 202
    assert first.json()["id"] != second.json()["id"]
    assert row_counts()["events"] == 2


def test_first_event_creates_its_deliverable_once(api_a, org_a, client_acme, event_body):
    post(api_a, event_body(idempotency_key="one"))
    post(api_a, event_body(idempotency_key="two", occurred_at="2026-11-22T10:00:00Z"))

    with scope(organization=org_a):
        deliverables = list(Deliverable.objects.filter(organization=org_a))
        assert deliverables[0].events.count() == 2
    assert [d.deliverable_id for d in deliverables] == ["LP-2041"]
    assert deliverables[0].client == client_acme


# --- batches ---------------------------------------------------------------------------


def test_batch_answers_per_event_in_order(api_a, client_acme, event_body, row_counts):
    stored = post(api_a, event_body(idempotency_key="already-there"))
    before = row_counts()
    batch = [
        event_body(idempotency_key="new-1", deliverable_id="LP-1"),
        event_body(idempotency_key="already-there"),
        event_body(idempotency_key="bad", event_type="page.exploded"),
        event_body(idempotency_key="new-2", deliverable_id="LP-2"),
        event_body(idempotency_key="already-there", payload={"url": "https://x.example/"}),
    ]

    response = post(api_a, {"events": batch})

    assert response.status_code == 200, response.json()
    data = response.json()
    results = data["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert [r["status"] for r in results] == [
        "accepted",
        "duplicate",
        "rejected",
        "accepted",
        "rejected",
    ]
    assert results[1]["id"] == stored.json()["id"]
    assert [e["code"] for e in results[2]["errors"]] == ["unknown_event_type"]
    assert [e["code"] for e in results[4]["errors"]] == ["idempotency_conflict"]
    assert "id" not in results[2] and "id" not in results[4]
    assert (data["accepted"], data["duplicates"], data["rejected"]) == (2, 1, 2)
    assert row_counts()["events"] == before["events"] + 2
    with scopes_disabled():
        assert set(Event.objects.values_list("idempotency_key", flat=True)) == {
            "already-there",
            "new-1",
            "new-2",
        }


def test_batch_repeat_of_same_key_is_a_duplicate_of_its_first_occurrence(
    api_a, client_acme, event_body, row_counts
):
    body = event_body(idempotency_key="twice")

    response = post(api_a, {"events": [body, body]})

    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "duplicate"]
    assert results[0]["id"] == results[1]["id"]
    assert row_counts()["events"] == 1


def test_batch_repeat_of_same_key_with_other_content_is_a_conflict(
    api_a, client_acme, event_body, row_counts
):
    response = post(
        api_a,
        {
            "events": [
                event_body(idempotency_key="twice"),
                event_body(idempotency_key="twice", occurred_at="2026-11-22T10:00:00Z"),
            ]
        },
    )

    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected"]
    assert [e["code"] for e in results[1]["errors"]] == ["idempotency_conflict"]
    assert row_counts()["events"] == 1


def test_batch_repeat_of_a_rejected_event_is_rejected(api_a, client_acme, event_body, row_counts):
    # Both name a deliverable that already belongs to another client: neither may be stored.
    post(api_a, event_body(idempotency_key="first"))
    body = event_body(idempotency_key="mismatch", client_id="beta")
    from deliveries.models import Client

    with scope(organization=client_acme.organization):
        Client.objects.create(organization=client_acme.organization, client_id="beta", name="B")
    before = row_counts()

    response = post(api_a, {"events": [body, body]})

    results = response.json()["results"]
    assert [r["status"] for r in results] == ["rejected", "rejected"]
    assert "id" not in results[1]
    assert row_counts() == before


def test_batch_of_500_is_accepted(api_a, client_acme, event_body, row_counts):
    response = post(api_a, {"events": numbered(event_body, 500)})

    assert response.status_code == 200
    assert response.json()["accepted"] == 500
    assert len({r["id"] for r in response.json()["results"]}) == 500
    assert row_counts() == {"events": 500, "deliverables": 500, "processing": 500}


def test_batch_of_501_is_refused_and_nothing_stored(api_a, client_acme, event_body, row_counts):
    response = post(api_a, {"events": numbered(event_body, 501)})

    assert response.status_code == 400
    assert_error_body(response, "batch_too_large", "events")
    assert row_counts() == {"events": 0, "deliverables": 0, "processing": 0}


def test_empty_batch_is_refused(api_a, client_acme, row_counts):
    response = post(api_a, {"events": []})

    assert response.status_code == 400
    assert_error_body(response, "empty_batch", "events")
    assert row_counts()["events"] == 0


def test_batch_with_unknown_top_level_key_is_refused_and_nothing_stored(
    api_a, client_acme, event_body, row_counts
):
    response = post(api_a, {"events": [event_body()], "source": "cms"})

    assert response.status_code == 400
    assert_error_body(response, "unknown_field", "source")
    assert row_counts()["events"] == 0


def test_batch_events_must_be_a_list(api_a, client_acme, event_body, row_counts):
    response = post(api_a, {"events": event_body()})

    assert response.status_code == 400
    assert_error_body(response, "invalid_type", "events")
    assert row_counts()["events"] == 0


def test_batch_entry_that_is_not_an_object_is_rejected_alone(
    api_a, client_acme, event_body, row_counts
):
    response = post(api_a, {"events": [event_body(), 42]})

    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected"]
    assert results[1]["errors"][0]["code"] == "invalid_type"
    assert row_counts()["events"] == 1


# --- bad input (issue item 9): a specific 4xx, machine-readable errors, nothing stored ----


def test_malformed_json_is_a_400_and_nothing_stored(api_a, client_acme, row_counts):
    response = api_a.post(
        EVENTS, '{"event_type": "page.published", ', content_type="application/json"
    )

    assert response.status_code == 400
    assert_error_body(response, "parse_error")
    assert row_counts()["events"] == 0


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/xml"],
)
def test_wrong_content_type_is_a_415_and_nothing_stored(
    api_a, client_acme, event_body, row_counts, content_type
):
    response = api_a.post(EVENTS, json.dumps(event_body()), content_type=content_type)

    assert response.status_code == 415
    assert_error_body(response, "unsupported_media_type")
    assert row_counts()["events"] == 0


@pytest.mark.parametrize("body", [[], ["x"], "an event", 42, None])
def test_body_that_is_not_an_object_is_a_400(api_a, client_acme, row_counts, body):
    response = api_a.post(EVENTS, json.dumps(body), content_type="application/json")

    assert response.status_code == 400
    assert_error_body(response, "invalid_type")
    assert row_counts()["events"] == 0


def nested(depth: int) -> dict:
    """A payload ``depth`` objects deep, with the url the schema requires."""
    payload: dict = {"leaf": 1}
    for _ in range(depth - 1):
        payload = {"n": payload}
    return {"url": "https://a.example/", **payload}


BAD_EVENTS = {
    # name: (overrides, expected code, expected field)
    "missing event_type": ({"event_type": ...}, "required", "event_type"),
    "missing deliverable_id": ({"deliverable_id": ...}, "required", "deliverable_id"),
    "missing client_id": ({"client_id": ...}, "required", "client_id"),
    "missing actor": ({"actor": ...}, "required", "actor"),
    "missing occurred_at": ({"occurred_at": ...}, "required", "occurred_at"),
    "missing payload": ({"payload": ...}, "required", "payload"),
    "null payload": ({"payload": None}, "required", "payload"),
    "unknown field": ({"colour": "blue"}, "unknown_field", "colour"),
    "unknown actor field": (
        {"actor": {"role": "cms", "id": "wp", "team": "x"}},
        "unknown_field",
        "actor.team",
    ),
    "actor without id": ({"actor": {"role": "cms"}}, "required", "actor.id"),
    "deliverable_id not a string": ({"deliverable_id": 2041}, "invalid_type", "deliverable_id"),
    "client_id not a string": ({"client_id": ["acme"]}, "invalid_type", "client_id"),
    "event_type not a string": ({"event_type": 7}, "invalid_type", "event_type"),
    "correlation_id not a string": ({"correlation_id": 7}, "invalid_type", "correlation_id"),
    "idempotency_key not a string": ({"idempotency_key": 7}, "invalid_type", "idempotency_key"),
    "actor not an object": ({"actor": "cms"}, "invalid_type", "actor"),
    "payload not an object": ({"payload": ["url"]}, "invalid_type", "payload"),
    "occurred_at not a string": ({"occurred_at": 1700000000}, "invalid_type", "occurred_at"),
    "occurred_at not a date": ({"occurred_at": "yesterday"}, "invalid_datetime", "occurred_at"),
    "occurred_at without time zone": (
        {"occurred_at": "2026-11-21T10:00:00"},
        "timezone_required",
        "occurred_at",
    ),
    "occurred_at a bare date": ({"occurred_at": "2026-11-21"}, "timezone_required", "occurred_at"),
    "blank deliverable_id": ({"deliverable_id": "   "}, "blank", "deliverable_id"),
    "too long deliverable_id": ({"deliverable_id": "x" * 101}, "too_long", "deliverable_id"),
    "unknown event type": ({"event_type": "page.exploded"}, "unknown_event_type", "event_type"),
    "internal event type": ({"event_type": "gate.failed"}, "reserved_event_type", "event_type"),
    "payload wrong type": ({"payload": {"url": 5}}, "payload_invalid", "payload.url"),
    "payload pattern": ({"payload": {"url": "ftp://x"}}, "payload_invalid", "payload.url"),
    "payload missing required": ({"payload": {"html": "<p>"}}, "payload_invalid", "payload"),
    "payload bad hint": (
        {"payload": {"url": "https://a.example/", "deliverable_type": "poster"}},
        "payload_invalid",
        "payload.deliverable_type",
    ),
    "unknown client": ({"client_id": "nobody"}, "unknown_client", "client_id"),
    # References outside the documented pattern (ASCII letters, digits, '.', '_', ':', '-').
    "deliverable_id with a slash": (
        {"deliverable_id": "SLASH/../x"},
        "invalid_reference",
        "deliverable_id",
    ),
    "deliverable_id with percent": (
        {"deliverable_id": "LP-50%"},
        "invalid_reference",
        "deliverable_id",
    ),
    "deliverable_id dot-dot": ({"deliverable_id": ".."}, "invalid_reference", "deliverable_id"),
    "deliverable_id with emoji": (
        {"deliverable_id": "LP-🚀"},
        "invalid_reference",
        "deliverable_id",
    ),
    "deliverable_id full-width": (
        {"deliverable_id": "\uff2c\uff30-1"},
        "invalid_reference",
        "deliverable_id",
    ),
    "deliverable_id with bidi override": (
        {"deliverable_id": "BAD\u202e1"},
        "invalid_reference",
        "deliverable_id",
    ),
    "deliverable_id with trailing newline": (
        {"deliverable_id": "BAD-1\n"},
        "invalid_reference",
        "deliverable_id",
    ),
    "deliverable_id with inner space": (
        {"deliverable_id": "LP 1"},
        "invalid_reference",
        "deliverable_id",
    ),
    "client_id with surrounding space": ({"client_id": " acme "}, "invalid_reference", "client_id"),
    "deliverable_id with NUL": (
        {"deliverable_id": "LP\x001"},
        "invalid_reference",
        "deliverable_id",
    ),
    # NUL anywhere: PostgreSQL refuses it in text and JSONB.
    "idempotency_key with NUL": ({"idempotency_key": "k\x00"}, "invalid_text", "idempotency_key"),
    "correlation_id with NUL": ({"correlation_id": "c\x00"}, "invalid_text", "correlation_id"),
    "actor id with NUL": ({"actor": {"role": "cms", "id": "w\x00p"}}, "invalid_text", "actor.id"),
    "payload value with NUL": (
        {"payload": {"url": "https://a.example/", "notes": ["ok", "n\x00"]}},
        "invalid_text",
        "payload.notes.1",
    ),
    "payload key with NUL": (
        {"payload": {"url": "https://a.example/", "k\x00": 1}},
        "invalid_text",
        "payload.k\\u0000",
    ),
    "payload nested too deep": ({"payload": nested(100)}, "too_deep", "payload"),
    # Instants PostgreSQL or Python cannot hold.
    "occurred_at offset beyond +15:59": (
        {"occurred_at": "2026-11-21T10:00:00+16:00"},
        "invalid_timezone",
        "occurred_at",
    ),
    "occurred_at offset beyond -15:59": (
        {"occurred_at": "2026-11-21T10:00:00-23:59"},
        "invalid_timezone",
        "occurred_at",
    ),
    "occurred_at in year 1": (
        {"occurred_at": "0001-01-01T00:00:00+01:00"},
        "out_of_range",
        "occurred_at",
    ),
    "occurred_at in year 1 UTC": (
        {"occurred_at": "0001-01-01T00:00:00Z"},
        "out_of_range",
        "occurred_at",
    ),
    "occurred_at in year 9999": (
        {"occurred_at": "9999-12-31T23:00:00-05:00"},
        "out_of_range",
        "occurred_at",
    ),
}


@pytest.mark.parametrize("case", BAD_EVENTS.values(), ids=BAD_EVENTS.keys())
def test_invalid_event_is_rejected_with_specific_error_and_nothing_stored(
    api_a, client_acme, event_body, row_counts, case
):
    overrides, code, field = case

    response = post(api_a, event_body(**overrides))

    assert response.status_code == 400, response.json()
    assert response.json()["status"] == "rejected"
    assert "id" not in response.json()
    assert_error_body(response, code, field)
    assert row_counts() == {"events": 0, "deliverables": 0, "processing": 0}


@pytest.mark.parametrize("case", BAD_EVENTS.values(), ids=BAD_EVENTS.keys())
def test_invalid_event_in_batch_is_rejected_beside_valid_ones(
    api_a, client_acme, event_body, row_counts, case
):
    overrides, code, field = case
    bad = event_body(**{"idempotency_key": "bad", "deliverable_id": "LP-bad", **overrides})

    response = post(api_a, {"events": [event_body(), bad]})

    assert response.status_code == 200
    good_result, bad_result = response.json()["results"]
    assert good_result["status"] == "accepted"
    assert bad_result["status"] == "rejected"
    assert (code, field) in [(e["code"], e.get("field")) for e in bad_result["errors"]]
    assert row_counts() == {"events": 1, "deliverables": 1, "processing": 1}


def post_raw(api, text: str):
    """Post JSON text as it is: ``1e400`` has no Python value that json.dumps writes back."""
    return api.post(EVENTS, text, content_type="application/json")


@pytest.mark.parametrize("number", ["1e400", "-1e400"])
def test_number_beyond_a_double_is_a_400_naming_the_field(
    api_a, client_acme, event_body, row_counts, number
):
    text = json.dumps(event_body()).replace('"html"', f'"n": {number}, "html"')

    response = post_raw(api_a, text)

    assert response.status_code == 400, response.content
    assert_error_body(response, "invalid_number", "payload.n")
    assert row_counts() == {"events": 0, "deliverables": 0, "processing": 0}


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_json_literals_are_a_400(api_a, client_acme, event_body, row_counts, literal):
    text = json.dumps(event_body()).replace('"html"', f'"n": {literal}, "html"')

    response = post_raw(api_a, text)

    assert response.status_code == 400
    assert_error_body(response, "parse_error")
    assert row_counts() == {"events": 0, "deliverables": 0, "processing": 0}


def test_body_nested_ten_thousand_levels_is_a_400(api_a, client_acme, row_counts):
    text = '{"events": [' + '{"n": ' * 10_000 + "1" + "}" * 10_000 + "]}"

    response = post_raw(api_a, text)

    assert response.status_code == 400
    assert_error_body(response, "parse_error")
    assert row_counts() == {"events": 0, "deliverables": 0, "processing": 0}


def test_payload_at_the_depth_limit_is_accepted(api_a, client_acme, event_body):
    # The payload object is level 1: 63 objects below it reach the limit of 64.
    response = post(api_a, event_body(payload=nested(64)))

    assert response.status_code == 202, response.json()


def test_batch_stores_good_events_and_rejects_each_bad_one_with_index_and_field(
    api_a, org_a, client_acme, event_body, row_counts, unscoped
):
    events = [
        event_body(idempotency_key="good-1", deliverable_id="LP-1"),
        event_body(idempotency_key="nul\x00key", deliverable_id="LP-2"),
        event_body(idempotency_key="slash", deliverable_id="SLASH/../x"),
        event_body(idempotency_key="good-2", deliverable_id="LP-3"),
        event_body(idempotency_key="offset", occurred_at="2026-11-21T10:00:00+16:00"),
        event_body(idempotency_key="year-1", occurred_at="0001-01-01T00:00:00+01:00"),
        event_body(idempotency_key="newline", deliverable_id="BAD-1\n"),
        event_body(idempotency_key="huge", payload={"url": "https://a.example/", "n": "HUGE"}),
        event_body(idempotency_key="good-3", deliverable_id="BAD-1"),
    ]
    text = json.dumps({"events": events}).replace('"HUGE"', "1e400")

    response = post_raw(api_a, text)

    assert response.status_code == 200, response.content
    body = response.json()
    assert [r["status"] for r in body["results"]] == [
        "accepted",
        "rejected",
        "rejected",
        "accepted",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "accepted",
    ]
    rejected = {
        r["index"]: [(e["code"], e["field"]) for e in r["errors"]]
        for r in body["results"]
        if r["status"] == "rejected"
    }
    assert rejected == {
        1: [("invalid_text", "idempotency_key")],
        2: [("invalid_reference", "deliverable_id")],
        4: [("invalid_timezone", "occurred_at")],
        5: [("out_of_range", "occurred_at")],
        6: [("invalid_reference", "deliverable_id")],
        7: [("invalid_number", "payload.n")],
    }
    assert (body["accepted"], body["rejected"]) == (3, 6)
    assert row_counts() == {"events": 3, "deliverables": 3, "processing": 3}
    assert set(Deliverable.objects.values_list("deliverable_id", flat=True)) == {
        "LP-1",
        "LP-3",
        "BAD-1",
    }


def test_all_contract_errors_of_an_event_are_reported_together(api_a, client_acme, event_body):
    response = post(
        api_a,
        event_body(deliverable_id=5, occurred_at="2026-11-21T10:00:00", colour="blue"),
    )

    fields = {e.get("field"): e["code"] for e in response.json()["errors"]}
    assert fields == {
        "colour": "unknown_field",
        "deliverable_id": "invalid_type",
        "occurred_at": "timezone_required",
    }


def test_deliverable_of_another_client_is_rejected(
    api_a, client_acme, client_beta, event_body, row_counts
):
    post(api_a, event_body())
    before = row_counts()

    response = post(api_a, event_body(idempotency_key="beta-1", client_id="beta"))

    assert response.status_code == 400
    assert_error_body(response, "deliverable_client_mismatch", "client_id")
    assert row_counts() == before


def test_body_over_the_size_limit_is_a_413_and_nothing_stored(
    api_a, client_acme, event_body, row_counts
):
    big = event_body(payload={"url": "https://acme.example/", "html": "x" * 5000})
    with override_settings(MESHLINE_MAX_BODY_BYTES=2048):
        small = post(api_a, event_body(idempotency_key="small"))
        response = post(api_a, big)
        batch = post(api_a, {"events": numbered(event_body, 20)})

    assert small.status_code == 202  # the limit is not hit by every request
    assert response.status_code == 413
    assert_error_body(response, "too_large")
    assert batch.status_code == 413
    assert row_counts()["events"] == 1


def test_event_over_the_event_size_limit_is_rejected(api_a, client_acme, event_body, row_counts):
    big = event_body(payload={"url": "https://acme.example/", "html": "x" * 2000})
    with override_settings(MESHLINE_MAX_EVENT_BYTES=1024):
        single = post(api_a, big)
        batch = post(api_a, {"events": [event_body(idempotency_key="ok"), big]})

    assert single.status_code == 400
    assert_error_body(single, "too_large")
    results = batch.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected"]
    assert results[1]["errors"][0]["code"] == "too_large"
    assert row_counts()["events"] == 1


# --- reading events --------------------------------------------------------------------


@pytest.fixture
def four_events(api_a, client_acme, client_beta, event_body):
    """Four events of organization A, by name, across two clients and three deliverables."""
    bodies = {
        "lp1_published": event_body(
            idempotency_key="e1", deliverable_id="LP-1", occurred_at="2026-01-01T10:00:00Z"
        ),
        "as1_uploaded": event_body(
            idempotency_key="e2",
            deliverable_id="AS-1",
            event_type="asset.uploaded",
            payload={"asset_id": "a1", "size_bytes": 10},
            occurred_at="2026-01-02T10:00:00Z",
        ),
        "lp2_published": event_body(
            idempotency_key="e3",
            deliverable_id="LP-2",
            client_id="beta",
            occurred_at="2026-01-03T10:00:00Z",
        ),
        "lp1_change": event_body(
            idempotency_key="e4",
            deliverable_id="LP-1",
            event_type="change.requested",
            payload={"summary": "Bigger logo"},
            occurred_at="2026-01-04T10:00:00Z",
        ),
    }
    response = post(api_a, {"events": list(bodies.values())})
    assert response.json()["accepted"] == 4, response.json()
    return {name: r["id"] for name, r in zip(bodies, response.json()["results"], strict=True)}


def listed_ids(api, query=""):
    response = api.get(f"{EVENTS}{query}")
    assert response.status_code == 200, response.json()
    return {event["id"] for event in response.json()["results"]}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", {"lp1_published", "as1_uploaded", "lp2_published", "lp1_change"}),
        ("?event_type=page.published", {"lp1_published", "lp2_published"}),
        ("?deliverable=LP-1", {"lp1_published", "lp1_change"}),
        ("?client=beta", {"lp2_published"}),
        ("?client=acme&event_type=page.published", {"lp1_published"}),
        ("?occurred_after=2026-01-02T10:00:00Z", {"as1_uploaded", "lp2_published", "lp1_change"}),
        ("?occurred_before=2026-01-03T10:00:00Z", {"lp1_published", "as1_uploaded"}),
        (
            "?occurred_after=2026-01-02T00:00:00Z&occurred_before=2026-01-03T00:00:00Z",
            {"as1_uploaded"},
        ),
        ("?event_type=crm.touch", set()),
        ("?deliverable=LP-404", set()),
    ],
)
def test_event_list_filters(api_a, four_events, query, expected):
    assert listed_ids(api_a, query) == {four_events[name] for name in expected}


def test_event_list_rejects_a_bad_time_filter(api_a, four_events):
    response = api_a.get(f"{EVENTS}?occurred_after=last-tuesday")

    assert response.status_code == 400
    assert_error_body(response, "invalid", "occurred_after")


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ("occurred_after=0001-01-01T00:00:00%2B05:00", "out_of_range", "occurred_after"),
        ("occurred_before=9999-12-31T23:00:00-05:00", "out_of_range", "occurred_before"),
        ("received_after=2026-01-01T00:00:00%2B16:00", "invalid_timezone", "received_after"),
        ("received_before=2026-01-01T00:00:00-16:30", "invalid_timezone", "received_before"),
    ],
)
def test_event_list_rejects_a_time_filter_meshline_cannot_hold(
    api_a, four_events, query, code, field
):
    response = api_a.get(f"{EVENTS}?{query}")

    assert response.status_code == 400, response.content
    assert_error_body(response, code, field)


def forged_cursor(position: str) -> str:
    """A cursor as DRF encodes one (base64 of its query string), around any position."""
    from base64 import b64encode
    from urllib.parse import quote, urlencode

    return quote(b64encode(urlencode({"p": position}).encode()).decode())


@pytest.mark.parametrize(
    "cursor",
    ["garbage", forged_cursor("not-a-uuid"), forged_cursor("")],
    ids=["undecodable", "position not a uuid", "empty position"],
)
def test_event_list_forged_cursor_is_a_400(api_a, four_events, cursor):
    response = api_a.get(f"{EVENTS}?cursor={cursor}")

    assert response.status_code == 400, response.content
    assert_error_body(response, "invalid_cursor", "cursor")


def test_event_list_cursor_pagination_walks_every_event_once(api_a, client_acme, event_body):
    created = post(api_a, {"events": numbered(event_body, 7)}).json()["results"]
    expected = {r["id"] for r in created}

    seen: list[str] = []
    url = f"{EVENTS}?limit=2"
    pages = 0
    while url:
        response = api_a.get(url)
        assert response.status_code == 200
        page = response.json()
        assert len(page["results"]) <= 2
        seen += [event["id"] for event in page["results"]]
        url = page["next"]
        pages += 1
        assert pages <= 10, "pagination does not end"

    assert pages == 4
    assert len(seen) == len(set(seen)) == 7
    assert set(seen) == expected
    assert seen == sorted(seen, key=uuid.UUID, reverse=True)  # newest first


def test_event_detail_includes_processing_state(api_a, client_acme, event_body):
    event_id = post(api_a, event_body()).json()["id"]

    response = api_a.get(f"{EVENTS}/{event_id}")

    assert response.status_code == 200
    data = response.json()
    assert data["id"] == event_id
    assert data["event_type"] == "page.published"
    assert data["client_id"] == "acme"
    assert data["deliverable_id"] == "LP-2041"
    assert data["actor"] == {"role": "cms", "id": "wp-publisher"}
    assert data["occurred_at"] == "2026-11-21T10:00:00Z"
    assert data["processing"]["status"] == "pending"
    assert data["processing"]["processed_at"] is None


def test_event_detail_shows_processed_after_commit(
    api_a, client_acme, event_body, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        event_id = post(api_a, event_body()).json()["id"]
    # The request's one dispatch, then (processing runs eagerly inside it) the latency
    # observation processing leaves for its own commit.
    assert len(callbacks) == 2

    processing = api_a.get(f"{EVENTS}/{event_id}").json()["processing"]

    assert processing["status"] == "processed"
    assert processing["attempts"] == 1
    assert processing["processed_at"] is not None


def test_duplicate_does_not_dispatch_processing_again(
    api_a, client_acme, event_body, django_capture_on_commit_callbacks
):
    post(api_a, event_body())
    with django_capture_on_commit_callbacks() as callbacks:
        post(api_a, event_body())
    assert callbacks == []


@pytest.mark.parametrize(
    "event_id",
    ["not-a-uuid", "12345", "01a207b0-cef9-71e6-a2bb-f981100fd91c", "zzzzzzzz" * 4],
)
def test_unknown_or_malformed_event_id_is_a_json_404(api_a, client_acme, event_body, event_id):
    post(api_a, event_body())

    response = api_a.get(f"{EVENTS}/{event_id}")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert_error_body(response, "not_found")


# --- query counts ----------------------------------------------------------------------


def count_queries(callable_) -> tuple[int, object]:
    with CaptureQueriesContext(connection) as queries:
        response = callable_()
    return len(queries), response


def capture(callable_) -> tuple[list[str], object]:
    with CaptureQueriesContext(connection) as queries:
        response = callable_()
    return [query["sql"] for query in queries], response


def assert_same_queries_but_insert_chunks(small: list[str], large: list[str]) -> None:
    """Batch size must not change the number of queries.

    SQLite alone caps a statement at 999 parameters, so Django splits one bulk INSERT into
    chunks there; every other statement, and on PostgreSQL the total, must stay the same.
    """

    def split(sqls):
        inserts = [sql for sql in sqls if sql.lstrip().upper().startswith("INSERT")]
        return inserts, [sql for sql in sqls if sql not in inserts]

    small_inserts, small_other = split(small)
    large_inserts, large_other = split(large)
    assert len(large_other) == len(small_other)
    if connection.vendor == "sqlite":
        assert len(small_inserts) <= len(large_inserts) <= 2 * len(small_inserts)
    else:
        assert len(large) == len(small)


def test_event_list_query_count_does_not_grow_with_rows(api_a, client_acme, event_body):
    post(api_a, {"events": numbered(event_body, 3)})
    api_a.get(EVENTS)  # warm up: the first use of a key records last_used_at
    few, response = count_queries(lambda: api_a.get(EVENTS))
    assert len(response.json()["results"]) == 3

    post(api_a, {"events": [*numbered(event_body, 30)][3:]})
    many, response = count_queries(lambda: api_a.get(EVENTS))

    assert len(response.json()["results"]) == 30
    assert many == few
    assert few <= 3


def test_batch_ingest_query_count_does_not_grow_with_batch_size(api_a, client_acme, event_body):
    post(api_a, event_body(idempotency_key="warm-up"))  # key touch and event registry load

    small, response = capture(lambda: post(api_a, {"events": numbered(event_body, 10)}))
    assert response.json()["accepted"] == 10
    bodies = [event_body(idempotency_key=f"big-{i}", deliverable_id=f"BIG-{i}") for i in range(100)]
    large, response = capture(lambda: post(api_a, {"events": bodies}))

    assert response.json()["accepted"] == 100
    assert len(small) <= 10
    assert_same_queries_but_insert_chunks(small, large)


def test_batch_of_duplicates_query_count_does_not_grow(api_a, client_acme, event_body):
    ten, hundred = numbered(event_body, 10), numbered(event_body, 100)
    post(api_a, {"events": hundred})

    small, response = capture(lambda: post(api_a, {"events": ten}))
    assert response.json()["duplicates"] == 10
    large, response = capture(lambda: post(api_a, {"events": hundred}))

    assert response.json()["duplicates"] == 100
    assert len(large) == len(small)


# --- tenant isolation ------------------------------------------------------------------


def test_other_tenant_event_is_404(api_a, api_b, client_acme, event_body):
    event_id = post(api_a, event_body()).json()["id"]

    response = api_b.get(f"{EVENTS}/{event_id}")

    assert response.status_code == 404
    assert_error_body(response, "not_found")
    assert api_a.get(f"{EVENTS}/{event_id}").status_code == 200


def test_event_list_shows_only_own_tenant(api_a, api_b, client_acme, client_b_acme, event_body):
    a_id = post(api_a, event_body(idempotency_key="a")).json()["id"]
    b_id = post(api_b, event_body(idempotency_key="b")).json()["id"]

    assert listed_ids(api_a) == {a_id}
    assert listed_ids(api_b) == {b_id}
    assert listed_ids(api_b, "?client=acme") == {b_id}
    assert listed_ids(api_b, "?deliverable=LP-2041") == {b_id}


def test_references_and_idempotency_keys_are_per_tenant(
    api_a, api_b, org_a, org_b, client_acme, client_b_acme, event_body, unscoped
):
    a = post(api_a, event_body())
    b = post(api_b, event_body())  # the very same body, key included

    assert a.status_code == b.status_code == 202
    assert a.json()["id"] != b.json()["id"]
    event_a = Event.objects.select_related("client", "deliverable").get(pk=a.json()["id"])
    event_b = Event.objects.select_related("client", "deliverable").get(pk=b.json()["id"])
    assert (event_a.organization, event_a.client, event_a.deliverable.organization) == (
        org_a,
        client_acme,
        org_a,
    )
    assert (event_b.organization, event_b.client, event_b.deliverable.organization) == (
        org_b,
        client_b_acme,
        org_b,
    )
    assert event_a.deliverable != event_b.deliverable
    assert EventProcessing.objects.get(pk=event_b.pk).organization == org_b


def test_other_tenant_client_is_unknown_when_submitting(api_b, client_acme, event_body, row_counts):
    response = post(api_b, event_body())

    assert response.status_code == 400
    assert_error_body(response, "unknown_client", "client_id")
    assert row_counts()["events"] == 0


def test_event_list_filters_by_source(api_a, org_a, four_events):
    with scope(organization=org_a):
        deliverable = Deliverable.objects.get(organization=org_a, deliverable_id="LP-1")
        entry = trail.record(
            org_a, "ticket.opened", key="source-filter-1", deliverable=deliverable, payload={}
        )
    submitted = set(four_events.values())
    assert listed_ids(api_a, "?source=api") == submitted
    assert listed_ids(api_a, "?source=api&source=webhook") == submitted
    assert listed_ids(api_a, "?source=meshline") == {str(entry.pk)}
    assert listed_ids(api_a) == submitted | {str(entry.pk)}


def test_event_list_rejects_an_unknown_source(api_a, four_events):
    response = api_a.get(f"{EVENTS}?source=carrier-pigeon")

    assert response.status_code == 400
    assert_error_body(response, "invalid_choice", "source")
