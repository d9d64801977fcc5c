"""GateFilter: one FilterSet for the portal's gates page and GET /api/v1/gates."""

import pytest

from gates.models import CheckName, GateMode

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_gates(make_gate, org_b):
    make_gate(CheckName.SCHEMA_CHECK)
    make_gate(CheckName.SEO_TAGS_PRESENT, mode=GateMode.MONITOR)
    make_gate(CheckName.SCREENSHOT_REGRESSION, mode=GateMode.MONITOR)
    make_gate(CheckName.SEO_TAGS_PRESENT, "b-meta", organization=org_b, mode=GateMode.MONITOR)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", ["schema-check", "screenshot-regression", "seo-tags-present"]),
        ("?mode=monitor", ["screenshot-regression", "seo-tags-present"]),
        ("?check_name=seo_tags_present", ["seo-tags-present"]),
        ("?mode=enforce&check_name=seo_tags_present", []),
    ],
)
def test_api_gates_filter_by_mode_and_check_within_the_tenant(api_a, three_gates, query, expected):
    response = api_a.get(f"/api/v1/gates{query}")

    assert response.status_code == 200, response.json()
    assert sorted(g["slug"] for g in response.json()) == expected


def test_api_gates_filter_refuses_an_unknown_mode(api_a, three_gates):
    response = api_a.get("/api/v1/gates?mode=sometimes")

    assert response.status_code == 400
    assert [(e["code"], e["field"]) for e in response.json()["errors"]] == [
        ("invalid_choice", "mode")
    ]


def test_portal_gates_page_filters_with_the_same_filterset(as_member, three_gates):
    response = as_member.get("/o/org-a/gates/?mode=monitor")

    assert response.status_code == 200
    assert [row["gate"].slug for row in response.context["gates"]] == [
        "screenshot-regression",
        "seo-tags-present",
    ]
    assert 'name="check_name"' in response.content.decode()


def test_portal_gates_page_shows_a_bad_filter_as_a_form_error(as_member, three_gates):
    response = as_member.get("/o/org-a/gates/?mode=sometimes")

    assert response.status_code == 200
    assert response.context["filter"].form.errors["mode"]


def test_outsider_cannot_filter_anothers_gates(as_outsider, three_gates):
    assert as_outsider.get("/o/org-a/gates/?mode=monitor").status_code == 404
