"""Search rows in: from events and from the bulk day import; touches and revenue."""

import pytest
from django_scopes import scope

from reporting.models import CrmTouch, RevenueRow, SearchPerformance
from tests.reporting.conftest import revenue, search, touch

IMPORT = "/api/v1/search-performance/import?site=acme.example&date=2026-03-05"
CSV = (
    "page,impressions,clicks,ctr,position\n"
    "https://acme.example/lp/1,100,10,0.1,3.0\n"
    "http://ACME.example/lp/1/?utm_source=gsc,100,0,0,5.0\n"
    "https://acme.example/lp/2,50,5,0.1,\n"
    "https://acme.example/blog/unknown,7,1,0.14,9\n"
)


def rows(org):
    with scope(organization=org):
        return sorted(
            (
                r.url,
                r.deliverable.deliverable_id if r.deliverable else None,
                r.impressions,
                r.clicks,
                r.position,
            )
            for r in SearchPerformance.objects.filter(organization=org)
        )


def post_csv(api, body, url=IMPORT, content_type="text/csv"):
    return api.generic("POST", url, body.encode(), content_type=content_type)


def test_bulk_csv_matches_folds_and_reports_unmatched(api_a, org_a, pages):
    response = post_csv(api_a, CSV)
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["rows"], body["pages"], body["matched"], body["unmatched"]) == (4, 3, 3, 1)
    assert body["unmatched_sample"] == ["https://acme.example/blog/unknown"]
    assert rows(org_a) == [
        ("https://acme.example/blog/unknown", None, 7, 1, 9.0),
        ("https://acme.example/lp/1", "LP-1", 200, 10, 4.0),  # impression-weighted position
        ("https://acme.example/lp/2", "LP-2", 50, 5, None),
    ]


def test_resent_day_replaces_never_doubles(api_a, org_a, pages):
    assert post_csv(api_a, CSV).status_code == 200
    again = "page,impressions,clicks\nhttps://acme.example/lp/1,30,3\n"
    assert post_csv(api_a, again).status_code == 200
    assert post_csv(api_a, again).status_code == 200
    assert rows(org_a) == [("https://acme.example/lp/1", "LP-1", 30, 3, None)]


def test_json_lines_import(api_a, org_a, pages):
    body = '{"page": "https://acme.example/lp/3", "impressions": 9, "clicks": 2}\n\n'
    response = post_csv(api_a, body, content_type="application/x-ndjson")
    assert response.status_code == 200
    assert rows(org_a) == [("https://acme.example/lp/3", "LP-3", 9, 2, None)]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("page,impressions,clicks\nhttps://acme.example/lp/1,-1,0\n", "invalid_impressions"),
        ("page,impressions,clicks\nhttps://acme.example/lp/1,5,6\n", "invalid_clicks"),
        ("page,impressions,clicks\nftp://acme.example/x,5,1\n", "invalid_url"),
        ("page,impressions,clicks\nhttps://other.example/x,5,1\n", "wrong_site"),
        ("page,impressions,clicks,date\nhttps://acme.example/x,5,1,2026-03-06\n", "wrong_date"),
        ("url,views\nhttps://acme.example/x,5\n", "invalid_header"),
    ],
)
def test_bad_row_is_400_and_stores_nothing_of_the_day(api_a, org_a, pages, body, code):
    assert post_csv(api_a, CSV).status_code == 200
    before = rows(org_a)
    good_then_bad = body.replace("\n", "\nhttps://acme.example/lp/2,1,0\n", 1)
    response = post_csv(api_a, good_then_bad if code != "invalid_header" else body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == code
    assert rows(org_a) == before  # the earlier day is intact, nothing half-stored


def test_bad_date_and_non_utf8_are_400(api_a, pages):
    bad_date = post_csv(api_a, CSV, url="/api/v1/search-performance/import?site=acme.example")
    assert bad_date.json()["errors"][0] == {
        "code": "invalid_date",
        "field": "date",
        "message": "Use YYYY-MM-DD.",
    }
    latin = api_a.generic(
        "POST",
        IMPORT,
        "page,impressions,clicks\nhttps://acme.example/é,1,0\n".encode("latin-1"),
        content_type="text/csv",
    )
    assert latin.status_code == 400
    assert latin.json()["errors"][0]["code"] == "invalid_encoding"


def test_import_needs_the_write_scope(make_key, org_a, pages):
    _key, client = make_key(org_a, scopes=["reporting:read"])
    assert post_csv(client, CSV).status_code == 403


def test_other_tenant_import_never_matches_our_deliverables(api_b, org_a, org_b, pages):
    assert post_csv(api_b, CSV).json()["matched"] == 0
    assert rows(org_a) == []


def test_events_store_search_touch_and_revenue_once(org_a, pages, publish):
    publish(
        org_a,
        search("LP-1", "2026-03-05", 100, 4),
        touch("LP-1", "T-1", "2026-03-06T10:00:00Z", touch_type="mql"),
        revenue("LP-1", "INV-1", 250.5, "2026-03-07"),
    )
    # The same page and day again (a corrected event) replaces the row.
    corrected = search("LP-1", "2026-03-05", 120, 6) | {"idempotency_key": "gsc-fix"}
    publish(org_a, corrected)
    assert rows(org_a) == [("https://acme.example/lp/1", "LP-1", 120, 6, None)]
    with scope(organization=org_a):
        t = CrmTouch.objects.get(organization=org_a)
        assert (t.touch_id, t.touch_type, t.contact_id) == ("T-1", "mql", "c-1")
        r = RevenueRow.objects.get(organization=org_a)
        assert (r.reference, str(r.amount), r.currency) == ("INV-1", "250.50", "EUR")


def test_crm_touch_version_1_payload_still_accepted(org_a, pages, publish):
    publish(
        org_a,
        touch("LP-1", "T-old", "2026-03-06T10:00:00Z")
        | {"payload": {"touch_id": "T-old", "channel": "email"}},
    )
    with scope(organization=org_a):
        assert CrmTouch.objects.get(organization=org_a).touch_type == "visit"


def test_a_replayed_export_never_overwrites_newer_numbers(
    api_a, org_a, pages, publish, replay_events
):
    """Newer by when Meshline was told: a later export event, then the day's bulk import."""
    first = publish(org_a, search("LP-1", "2026-03-05", 100, 3))
    publish(org_a, search("LP-1", "2026-03-05", 200, 6) | {"idempotency_key": "gsc-again"})
    assert rows(org_a) == [("https://acme.example/lp/1", "LP-1", 200, 6, None)]
    replay_events(org_a, first)
    assert rows(org_a) == [("https://acme.example/lp/1", "LP-1", 200, 6, None)]
    again = "page,impressions,clicks\nhttps://acme.example/lp/1,30,3\n"
    assert post_csv(api_a, again).status_code == 200
    replay_events(org_a, first)
    assert rows(org_a) == [("https://acme.example/lp/1", "LP-1", 30, 3, None)]


def _ingested(org, *bodies) -> list[str]:
    """Stored, not yet processed: each body its own request (its own received_at)."""
    from deliveries.services import ingest_events

    ids = []
    with scope(organization=org):
        for body in bodies:
            [result] = ingest_events(org, [body])
            ids.append(result.event_id)
    return ids


def test_in_one_batch_the_export_received_last_wins_whatever_the_order(org_a, pages, monkeypatch):
    from deliveries.services.processing import process_batch

    monkeypatch.setattr("deliveries.services.processing.dispatch_events", lambda *args: True)
    earlier, later = _ingested(
        org_a,
        search("LP-1", "2026-03-05", 100, 3),
        search("LP-1", "2026-03-05", 200, 6) | {"idempotency_key": "gsc-again"},
    )
    with scope(organization=org_a):
        assert process_batch(org_a, [later, earlier]).processed == 2
    assert rows(org_a) == [("https://acme.example/lp/1", "LP-1", 200, 6, None)]


def test_a_batch_of_exports_costs_the_same_statements_for_two_pages_or_twenty(
    org_a, client_acme, monkeypatch
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from deliveries.services.processing import process_batch

    monkeypatch.setattr("deliveries.services.processing.dispatch_events", lambda *args: True)

    def statements(prefix: str, count: int) -> int:
        ids = _ingested(
            org_a, *(search(f"{prefix}-{n}", "2026-03-05", 10 * n, n) for n in range(count))
        )
        with scope(organization=org_a), CaptureQueriesContext(connection) as queries:
            assert process_batch(org_a, ids).processed == count
        return len(queries)

    statements("WARM", 2)
    assert statements("FEW", 2) == statements("MANY", 20)
    with scope(organization=org_a):
        assert SearchPerformance.objects.filter(organization=org_a).count() == 24
