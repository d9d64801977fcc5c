"""GET /api/v1/deliverables, its detail and trail; deliverables made by events; lifecycle."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope

from deliveries.models import Deliverable, DeliverableType, LifecycleState

pytestmark = pytest.mark.django_db

EVENTS = "/api/v1/events"
DELIVERABLES = "/api/v1/deliverables"


def post(api, body):
    response = api.post(EVENTS, body, format="json")
    assert response.status_code in (200, 202), response.json()
    return response


def refs(response) -> list[str]:
    assert response.status_code == 200, response.json()
    return sorted(row["deliverable_id"] for row in response.json()["results"])


def published(event_body, ref, at, client="acme", **payload):
    return event_body(
        idempotency_key=f"{ref}-published-{at}",
        deliverable_id=ref,
        client_id=client,
        occurred_at=at,
        payload={"url": f"https://acme.example/{ref}", **payload},
    )


def uploaded(event_body, ref, at, client="acme", **payload):
    return event_body(
        idempotency_key=f"{ref}-uploaded-{at}",
        event_type="asset.uploaded",
        deliverable_id=ref,
        client_id=client,
        occurred_at=at,
        payload={"asset_id": "a-1", "size_bytes": 1024, **payload},
    )


@pytest.fixture
def catalogue(api_a, client_acme, client_beta, event_body, django_capture_on_commit_callbacks):
    """Three processed deliverables: a published landing page, an SEO page and an asset."""
    with django_capture_on_commit_callbacks(execute=True):
        post(
            api_a,
            {
                "events": [
                    published(event_body, "LP-1", "2026-01-01T10:00:00Z", title="Spring sale"),
                    published(
                        event_body,
                        "SEO-1",
                        "2026-01-02T10:00:00Z",
                        client="beta",
                        deliverable_type="seo_page",
                        title="Winter guide",
                    ),
                    uploaded(event_body, "AS-1", "2026-01-03T10:00:00Z", title="Hero image"),
                ]
            },
        )


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["AS-1", "LP-1", "SEO-1"]),
        ("?client=beta", ["SEO-1"]),
        ("?client=acme", ["AS-1", "LP-1"]),
        ("?state=published", ["LP-1", "SEO-1"]),
        ("?state=in_production", ["AS-1"]),
        ("?state=new", []),
        ("?type=seo_page", ["SEO-1"]),
        ("?type=asset", ["AS-1"]),
        ("?type=landing_page", ["LP-1"]),
        ("?q=lp-", ["LP-1"]),
        ("?q=guide", ["SEO-1"]),
        ("?client=acme&state=published", ["LP-1"]),
        ("?client=nobody", []),
    ],
)
def test_deliverable_list_filters(api_a, catalogue, query, expected):
    assert refs(api_a.get(f"{DELIVERABLES}{query}")) == expected


@pytest.mark.parametrize("query", ["?state=flying", "?type=poster"])
def test_deliverable_list_rejects_unknown_choices(api_a, catalogue, query):
    response = api_a.get(f"{DELIVERABLES}{query}")

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "invalid_choice"


def test_deliverable_detail(api_a, catalogue):
    response = api_a.get(f"{DELIVERABLES}/LP-1")

    assert response.status_code == 200
    data = response.json()
    assert data["deliverable_id"] == "LP-1"
    assert data["client_id"] == "acme"
    assert data["type"] == "landing_page"
    assert data["title"] == "Spring sale"
    assert data["url"] == "https://acme.example/LP-1"
    assert data["state"] == "published"
    assert data["state_changed_at"] == "2026-01-01T10:00:00Z"
    assert data["last_event_at"] == "2026-01-01T10:00:00Z"


def test_unknown_deliverable_is_a_json_404(api_a, catalogue):
    for path in (f"{DELIVERABLES}/LP-404", f"{DELIVERABLES}/LP-404/trail"):
        response = api_a.get(path)
        assert response.status_code == 404
        assert response.json()["errors"][0]["code"] == "not_found"


def test_first_event_creates_deliverable_with_type_hint_from_payload(
    api_a, org_a, client_acme, event_body
):
    post(api_a, published(event_body, "SEO-9", "2026-01-01T10:00:00Z", deliverable_type="seo_page"))
    # A later event's hint does not retype it: the first event creates it.
    post(api_a, published(event_body, "SEO-9", "2026-01-02T10:00:00Z", deliverable_type="brief"))

    with scope(organization=org_a):
        deliverable = Deliverable.objects.get(organization=org_a, deliverable_id="SEO-9")
    assert deliverable.type == DeliverableType.SEO_PAGE
    assert deliverable.client == client_acme
    assert deliverable.state == LifecycleState.NEW  # not processed yet


@pytest.mark.parametrize(
    ("event_type", "payload", "expected"),
    [
        ("asset.uploaded", {"asset_id": "a", "size_bytes": 1}, "asset"),
        ("page.published", {"url": "https://a.example/"}, "landing_page"),
        ("change.requested", {"summary": "More blue"}, "other"),
    ],
)
def test_deliverable_type_without_hint_follows_the_event_type(
    api_a, org_a, client_acme, event_body, event_type, payload, expected
):
    post(api_a, event_body(event_type=event_type, payload=payload))

    assert api_a.get(f"{DELIVERABLES}/LP-2041").json()["type"] == expected


# --- trail -----------------------------------------------------------------------------


def test_trail_lists_events_in_occurrence_order_with_the_deliverable(
    api_a, client_acme, event_body
):
    # Submitted out of order: the trail is ordered by when things happened.
    bodies = [
        published(event_body, "LP-1", "2026-01-03T10:00:00Z"),
        uploaded(event_body, "LP-1", "2026-01-01T10:00:00Z"),
        event_body(
            idempotency_key="approved",
            event_type="asset.approved",
            deliverable_id="LP-1",
            occurred_at="2026-01-02T10:00:00Z",
            payload={"asset_id": "a-1"},
        ),
        published(event_body, "LP-OTHER", "2026-01-02T12:00:00Z"),
    ]
    for body in bodies:
        post(api_a, body)

    response = api_a.get(f"{DELIVERABLES}/LP-1/trail")

    assert response.status_code == 200
    data = response.json()
    assert [e["event_type"] for e in data["results"]] == [
        "asset.uploaded",
        "asset.approved",
        "page.published",
    ]
    assert [e["occurred_at"] for e in data["results"]] == [
        "2026-01-01T10:00:00Z",
        "2026-01-02T10:00:00Z",
        "2026-01-03T10:00:00Z",
    ]
    assert {e["deliverable_id"] for e in data["results"]} == {"LP-1"}
    assert all("processing" in e for e in data["results"])
    assert data["deliverable"]["deliverable_id"] == "LP-1"
    assert data["deliverable"]["client_id"] == "acme"


def test_trail_paginates_in_order_without_gaps(api_a, client_acme, event_body):
    times = [f"2026-01-{day:02}T10:00:00Z" for day in (5, 1, 4, 2, 3)]
    post(api_a, {"events": [published(event_body, "LP-1", at) for at in times]})

    seen, url = [], f"{DELIVERABLES}/LP-1/trail?limit=2"
    while url:
        page = api_a.get(url).json()
        seen += [e["occurred_at"] for e in page["results"]]
        url = page["next"]

    assert seen == sorted(times)


# --- lifecycle -------------------------------------------------------------------------


def test_out_of_order_event_never_moves_state_backwards(
    api_a, client_acme, event_body, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(api_a, published(event_body, "LP-1", "2026-01-02T10:00:00Z"))
    with django_capture_on_commit_callbacks(execute=True):
        post(api_a, uploaded(event_body, "LP-1", "2026-01-01T10:00:00Z"))

    data = api_a.get(f"{DELIVERABLES}/LP-1").json()
    assert data["state"] == "published"
    assert data["state_changed_at"] == "2026-01-02T10:00:00Z"
    assert data["last_event_at"] == "2026-01-02T10:00:00Z"


def test_events_in_order_advance_the_state(
    api_a, client_acme, event_body, django_capture_on_commit_callbacks
):
    states = []
    for body in (
        uploaded(event_body, "LP-1", "2026-01-01T10:00:00Z"),
        published(event_body, "LP-1", "2026-01-02T10:00:00Z"),
    ):
        with django_capture_on_commit_callbacks(execute=True):
            post(api_a, body)
        states.append(api_a.get(f"{DELIVERABLES}/LP-1").json()["state"])

    assert states == ["in_production", "published"]


def test_out_of_order_events_in_one_batch_end_at_the_latest_state(
    api_a, client_acme, event_body, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        post(
            api_a,
            {
                "events": [
                    published(event_body, "LP-1", "2026-01-02T10:00:00Z"),
                    uploaded(event_body, "LP-1", "2026-01-01T10:00:00Z"),
                ]
            },
        )

    data = api_a.get(f"{DELIVERABLES}/LP-1").json()
    assert data["state"] == "published"
    assert data["last_event_at"] == "2026-01-02T10:00:00Z"


def test_unprocessed_deliverable_stays_new(api_a, client_acme, event_body):
    # Outside django_capture_on_commit_callbacks the after-commit task never runs.
    post(api_a, published(event_body, "LP-1", "2026-01-02T10:00:00Z"))

    assert api_a.get(f"{DELIVERABLES}/LP-1").json()["state"] == "new"


# --- tenant isolation ------------------------------------------------------------------


def test_other_tenant_deliverable_and_trail_are_404(api_b, catalogue):
    for path in (f"{DELIVERABLES}/LP-1", f"{DELIVERABLES}/LP-1/trail"):
        response = api_b.get(path)
        assert response.status_code == 404, path
        assert response.json()["errors"][0]["code"] == "not_found"


def test_deliverable_list_shows_only_own_tenant(api_a, api_b, catalogue, client_b_acme, event_body):
    post(api_b, published(event_body, "B-1", "2026-01-01T10:00:00Z"))

    assert refs(api_a.get(DELIVERABLES)) == ["AS-1", "LP-1", "SEO-1"]
    assert refs(api_b.get(DELIVERABLES)) == ["B-1"]
    assert refs(api_b.get(f"{DELIVERABLES}?client=acme")) == ["B-1"]


def test_same_deliverable_id_in_each_tenant_keeps_separate_trails(
    api_a, api_b, client_acme, client_b_acme, event_body
):
    a_id = post(api_a, published(event_body, "LP-1", "2026-01-01T10:00:00Z")).json()["id"]
    b_id = post(api_b, published(event_body, "LP-1", "2026-01-01T10:00:00Z")).json()["id"]

    a_trail = api_a.get(f"{DELIVERABLES}/LP-1/trail").json()["results"]
    b_trail = api_b.get(f"{DELIVERABLES}/LP-1/trail").json()["results"]

    assert [e["id"] for e in a_trail] == [a_id]
    assert [e["id"] for e in b_trail] == [b_id]


# --- query counts ----------------------------------------------------------------------


def _queries(api, path) -> tuple[int, list]:
    with CaptureQueriesContext(connection) as queries:
        response = api.get(path)
    assert response.status_code == 200
    return len(queries), response.json()["results"]


def test_deliverable_list_query_count_does_not_grow_with_rows(api_a, client_acme, event_body):
    bodies = [published(event_body, f"LP-{i:02}", "2026-01-01T10:00:00Z") for i in range(30)]
    post(api_a, {"events": bodies[:3]})
    api_a.get(DELIVERABLES)  # warm up: the first use of a key records last_used_at
    few, rows = _queries(api_a, DELIVERABLES)
    assert len(rows) == 3
    post(api_a, {"events": bodies[3:]})
    many, rows = _queries(api_a, DELIVERABLES)

    assert len(rows) == 30
    assert many == few <= 3


def test_trail_query_count_does_not_grow_with_events(api_a, client_acme, event_body):
    times = [f"2026-01-01T10:{minute:02}:00Z" for minute in range(30)]
    bodies = [published(event_body, "LP-1", at) for at in times]
    post(api_a, {"events": bodies[:3]})
    api_a.get(f"{DELIVERABLES}/LP-1/trail")
    few, rows = _queries(api_a, f"{DELIVERABLES}/LP-1/trail")
    assert len(rows) == 3
    post(api_a, {"events": bodies[3:]})
    many, rows = _queries(api_a, f"{DELIVERABLES}/LP-1/trail")

    assert len(rows) == 30
    # Later issues add a fixed number of look-ups (gate results, tickets) to the trail.
    assert many == few <= 8


def forged_cursor(position: str) -> str:
    """A cursor as DRF encodes one (base64 of its query string), around any position."""
    from base64 import b64encode
    from urllib.parse import quote, urlencode

    return quote(b64encode(urlencode({"p": position}).encode()).decode())


@pytest.mark.parametrize(
    ("path", "position"),
    [
        (DELIVERABLES, "not-a-number"),
        (f"{DELIVERABLES}/LP-1/trail", "2026-01-01T00:00:00+16:00"),
        (f"{DELIVERABLES}/LP-1/trail", "0001-01-01T00:00:00+05:00"),
        (f"{DELIVERABLES}/LP-1/trail", "yesterday"),
        ("/api/v1/clients", "acme\x00"),
        ("/api/v1/tickets", "not-a-date"),
    ],
)
def test_forged_cursor_is_a_400_on_every_paginated_list(api_a, catalogue, path, position):
    for cursor in ("garbage", forged_cursor(position)):
        response = api_a.get(f"{path}?cursor={cursor}")

        assert response.status_code == 400, (cursor, response.content)
        assert [(e["code"], e["field"]) for e in response.json()["errors"]] == [
            ("invalid_cursor", "cursor")
        ]


def test_a_real_next_cursor_still_works(api_a, catalogue):
    first = api_a.get(f"{DELIVERABLES}?limit=1").json()

    second = api_a.get(first["next"])

    assert second.status_code == 200
    assert second.json()["results"][0]["deliverable_id"] != first["results"][0]["deliverable_id"]


def test_custom_type_hints_that_cannot_be_stored_are_ignored(api_a, org_a, client_acme, event_body):
    """An organization's own type need not declare deliverable_type or title."""
    registered = api_a.post(
        "/api/v1/event-types",
        {"name": "brief.drafted", "payload_schema": {"type": "object"}},
        format="json",
    )
    assert registered.status_code == 201, registered.json()

    response = api_a.post(
        EVENTS,
        event_body(event_type="brief.drafted", payload={"title": 5, "deliverable_type": "x" * 40}),
        format="json",
    )

    assert response.status_code == 202, response.json()
    with scope(organization=org_a):
        deliverable = Deliverable.objects.get(deliverable_id="LP-2041")
    assert (deliverable.type, deliverable.title) == (DeliverableType.OTHER, "")
