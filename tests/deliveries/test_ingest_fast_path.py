"""The ingest hot path's shortcuts (see bench/ingest.py) change cost, never the outcome.

On PostgreSQL events are stored with SQL and COPY instead of the ORM, and the API key is
found with fixed SQL; an event's size is derived from the canonical JSON its digest needs
instead of encoding it a second time. Each is checked here against the plain way.
"""

import hashlib
import json
import uuid
from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_scopes import scope, scopes_disabled
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deliveries import registry
from deliveries.models import Event, EventProcessing, ProcessingStatus
from deliveries.services import ingest
from meshline.auth import find_api_key
from meshline.models import ApiKey

pytestmark = pytest.mark.django_db

text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=12,
)


@given(
    payload=st.dictionaries(text, json_values, max_size=6),
    offset=st.sampled_from(["Z", "+00:00", "+05:30", "-08:00"]),
    key=st.sampled_from(["absent", "null", "value"]),
    key_value=text.filter(str.strip),
    correlation=st.sampled_from([None, "c-1", "ünïcødé"]),
)
@settings(max_examples=300, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_size_derived_from_canonical_json_is_the_encoded_size(
    payload, offset, key, key_value, correlation
):
    raw = {
        "event_type": "intake.received",
        "deliverable_id": "LP-1",
        "client_id": "acme",
        "actor": {"role": "cms", "id": "wp"},
        "occurred_at": f"2026-11-21T10:00:00{offset}",
        "payload": payload,
        "correlation_id": correlation,
    }
    if key == "null":
        raw["idempotency_key"] = None
    elif key == "value":
        raw["idempotency_key"] = key_value
    data = dict(raw)
    data["occurred_at"] = ingest._parse_occurred_at(raw["occurred_at"], [])
    data["schema_version"] = 1

    canonical = ingest._canonical(data)

    assert ingest._size_from_canonical(raw, canonical, data) == len(
        json.dumps(raw, separators=(",", ":"), ensure_ascii=False).encode()
    )
    assert ingest._digest(data) == reference_digest(data)


def reference_digest(data):
    """The digest as first shipped: stored digests must keep matching."""
    canonical = {
        k: (v.isoformat() if isinstance(v, datetime) else v)
        for k, v in data.items()
        if k not in {"idempotency_key", "schema_version"}
    }
    canonical["occurred_at"] = data["occurred_at"].astimezone(UTC).isoformat()
    encoded = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(encoded.encode()).hexdigest()


def test_oversize_event_that_is_also_invalid_is_answered_too_large(
    org_a, client_acme, event_body, settings
):
    settings.MESHLINE_MAX_EVENT_BYTES = 1024
    big_and_invalid = event_body(payload={"html": "x" * 2000})  # no url: schema violation
    with scope(organization=org_a):
        (result,) = ingest.ingest_events(org_a, [big_and_invalid])
    assert [e["code"] for e in result.errors] == ["too_large"]


def _stored(organization, ids):
    fields = [
        "organization_id",
        "event_type",
        "schema_version",
        "client_id",
        "deliverable_id",
        "correlation_id",
        "content_digest",
        "actor_role",
        "actor_id",
        "occurred_at",
        "payload",
        "source",
    ]
    with scopes_disabled():
        events = {str(e["id"]): e for e in Event.objects.filter(id__in=ids).values("id", *fields)}
        processing = {
            str(p["event_id"]): p
            for p in EventProcessing.objects.filter(event_id__in=ids).values(
                "event_id", "status", "attempts", "processed_at", "last_error"
            )
        }
    return [
        (
            {k: events[i][k] for k in fields},
            {k: v for k, v in processing[i].items() if k != "event_id"},
        )
        for i in ids
    ]


@pytest.mark.postgres
@pytest.mark.parametrize("size", [1, 3])
def test_sql_storage_stores_what_the_orm_stores(org_a, client_acme, event_body, monkeypatch, size):
    """Same events through the PostgreSQL path and through the ORM: same rows."""
    payload = {"url": "https://acme.example/é", "html": '<p>"q"\\ \t\n ✓</p>', "n": [1, 2.5]}

    def bodies(prefix):
        return [
            event_body(
                idempotency_key=f"{prefix}-{i}",
                occurred_at="2026-11-21T11:00:00+01:00",
                correlation_id=None if i else "c",
                payload=payload,
            )
            for i in range(size)
        ]

    assert isinstance(ingest._storage(), ingest.PostgresStorage)
    with scope(organization=org_a):
        fast = [r.event_id for r in ingest.ingest_events(org_a, bodies("fast"))]
        monkeypatch.setattr(ingest, "_storage", lambda: ingest.OrmStorage)
        orm = [r.event_id for r in ingest.ingest_events(org_a, bodies("orm"))]

    assert None not in fast and None not in orm
    assert _stored(org_a, fast) == _stored(org_a, orm)
    assert _stored(org_a, fast)[0][1]["status"] == ProcessingStatus.PENDING


@pytest.mark.postgres
@pytest.mark.parametrize("size", [1, 3])
def test_sql_storage_reports_a_key_taken_meanwhile_as_integrity_error(
    org_a, client_acme, event_body, size
):
    """What _store retries on: a concurrent request committed one of the keys first."""
    with scope(organization=org_a):
        (first,) = ingest.ingest_events(org_a, [event_body(idempotency_key="taken")])
    with scopes_disabled():
        deliverable_pk = Event.objects.get(pk=first.event_id).deliverable_id
    now = timezone.now()

    def row(key):
        return (
            *(uuid.uuid4(), org_a.pk, "page.published", 1, client_acme.pk, deliverable_pk),
            *("", key, "d" * 64, "cms", "wp", now, now, {"url": "https://a.example/"}, "api"),
        )

    rows = [row(f"free-{i}") for i in range(size - 1)] + [row("taken")]
    storage = ingest._storage()
    with pytest.raises(IntegrityError), transaction.atomic():
        storage.insert(org_a, rows, now)


@pytest.mark.postgres
def test_batch_copy_is_in_the_query_log(api_a, client_acme, event_body):
    bodies = [event_body(idempotency_key=f"k-{i}", deliverable_id=f"LP-{i}") for i in range(3)]
    with CaptureQueriesContext(connection) as queries:
        response = api_a.post("/api/v1/events", {"events": bodies}, format="json")
    assert response.json()["accepted"] == 3
    copies = [q for q in queries.captured_queries if q["sql"].startswith("COPY ")]
    assert len(copies) == 1  # logged once (Django's debug cursor), timed over the whole COPY


def test_api_key_lookup_matches_the_orm(org_a, api_key_a):
    _, plaintext = api_key_a
    prefix = ApiKey.split(plaintext)
    found = find_api_key(prefix)
    with scopes_disabled():
        expected = ApiKey.objects.select_related("organization").get(prefix=prefix)
    for field in ApiKey._meta.concrete_fields:
        assert getattr(found, field.attname) == getattr(expected, field.attname), field.name
    for field in type(org_a)._meta.concrete_fields:
        assert getattr(found.organization, field.attname) == getattr(
            expected.organization, field.attname
        )
    assert found.scopes == expected.scopes and isinstance(found.scopes, list)
    assert find_api_key("0" * 12) is None
    registry.clear_cache()
