"""Search Console rows forwarded by a scheduled job: one search_export.processed per row,
for the deliverable the endpoint's URL pattern finds; unmatched rows fail until fixed."""

import pytest
from django_scopes import scope, scopes_disabled

from connectors import mapping, services
from connectors.models import ConnectorKind, InboundDelivery, InboxState
from reporting.models import SearchPerformance
from tests.connectors.conftest import StubEndpoint, fixture

ROWS = fixture("search_console_rows.json")
PATTERN = "https://acme.example/lp/{ref}"


def test_matched_rows_become_page_days_and_an_unmatched_one_is_reported():
    with pytest.raises(mapping.MappingError) as caught:
        mapping.map_payload(StubEndpoint("search_console", {"deliverable_url": PATTERN}), ROWS, "d")
    assert "1 of 3 rows match no deliverable (https://acme.example/blog/spring-tips)" in str(
        caught.value
    )
    events = mapping.map_payload(
        StubEndpoint("search_console", {"deliverable_url": PATTERN, "unmatched": "skip"}),
        ROWS,
        "d",
    )
    assert [(e["deliverable_id"], e["payload"]) for e in events] == [
        (
            "LP-1",
            {
                "date": "2026-03-01",
                "url": "https://acme.example/lp/LP-1",
                "impressions": 400,
                "clicks": 20,
                "ctr": 0.05,
                "position": 3.2,
            },
        ),
        (
            "LP-2",
            {
                "date": "2026-03-01",
                "url": "https://acme.example/lp/LP-2?utm_source=x",
                "impressions": 150,
                "clicks": 3,
                "ctr": 0.02,
                "position": 8.75,
            },
        ),
    ]
    # Final numbers for the same day are a new event (reporting keeps the latest).
    final = {"rows": [{**ROWS["rows"][0], "clicks": 25}]}
    [again] = mapping.map_payload(
        StubEndpoint("search_console", {"deliverable_url": PATTERN}), final, "d"
    )
    assert again["idempotency_key"] != events[0]["idempotency_key"]


@pytest.mark.parametrize(
    "options,problem",
    [
        ({}, "Set deliverable_url with {ref}"),
        ({"deliverable_url": "https://acme.example/lp/"}, "Set deliverable_url with {ref}"),
        ({"deliverable_url": "https://x/{ref}/{ref}"}, "Set deliverable_url with {ref}"),
        ({"deliverable_url": PATTERN, "dimensions": "page,query"}, "includes date and page"),
        ({"deliverable_url": PATTERN, "unmatched": "drop"}, "unmatched is fail or skip"),
    ],
)
def test_options_are_checked(options, problem):
    [found] = mapping.check_options("search_console", options)
    assert problem in found


def test_the_template_is_literal_text_not_a_regular_expression():
    """Tenant text never runs as a regex: dots match dots, and (a+)+ is just characters."""
    lookalike = {
        "rows": [{**ROWS["rows"][0], "keys": ["2026-03-01", "https://acmeXexample/lp/LP-1"]}]
    }
    with pytest.raises(mapping.MappingError, match="1 of 1 rows match no deliverable"):
        mapping.map_payload(
            StubEndpoint("search_console", {"deliverable_url": PATTERN}), lookalike, "d"
        )
    odd = {"deliverable_url": "https://acme.example/(a+)+/{ref}"}
    row = {**ROWS["rows"][0], "keys": ["2026-03-01", "https://acme.example/(a+)+/LP-9"]}
    [event] = mapping.map_payload(StubEndpoint("search_console", odd), {"rows": [row]}, "d")
    assert event["deliverable_id"] == "LP-9"


def test_too_many_rows_point_to_the_bulk_import():
    many = {"rows": [ROWS["rows"][0]] * (mapping.SEARCH_CONSOLE_MAX_ROWS + 1)}
    with pytest.raises(mapping.MappingError, match="search-performance/import"):
        mapping.map_payload(StubEndpoint("search_console", {"deliverable_url": PATTERN}), many, "d")


def test_a_dead_lettered_day_replays_into_search_rows_once(
    org_a, client_acme, post_hook, django_capture_on_commit_callbacks
):
    with scope(organization=org_a):
        endpoint, _ = services.create_endpoint(
            org_a,
            name="Acme Search Console job",
            kind=ConnectorKind.SEARCH_CONSOLE,
            client=client_acme,
            mapping_config={"deliverable_url": PATTERN},
        )
    assert post_hook(endpoint, ROWS, msg_id="gsc-2026-03-01").status_code == 202
    with scopes_disabled():
        [delivery] = InboundDelivery.objects.filter(endpoint=endpoint)
    assert delivery.state == InboxState.DEAD
    assert "match no deliverable" in delivery.error
    with scope(organization=org_a):
        endpoint.mapping = {"deliverable_url": PATTERN, "unmatched": "skip"}
        endpoint.save()
    for _ in range(2):  # the second replay finds no dead letter: nothing changes
        with scope(organization=org_a), django_capture_on_commit_callbacks(execute=True):
            services.replay(org_a)
        with scope(organization=org_a):
            rows = sorted(
                SearchPerformance.objects.filter(organization=org_a).values_list(
                    "url", "clicks", "deliverable__deliverable_id"
                )
            )
        assert rows == [
            ("https://acme.example/lp/LP-1", 20, "LP-1"),
            ("https://acme.example/lp/LP-2", 3, "LP-2"),
        ]
    with scopes_disabled():
        delivery.refresh_from_db()
    assert delivery.state == InboxState.MAPPED
