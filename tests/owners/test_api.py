"""Owners API v1: owner map and dry run, roles and who is on duty, tickets; and isolation."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from deliveries.models import Deliverable, Event
from meshline.models import ApiScope, Membership, Role
from meshline.services import create_user
from owners.models import Ticket, TicketStatus
from tests.conftest import PASSWORD
from tests.owners.factories import make_policy, make_role, make_rule

pytestmark = pytest.mark.django_db
DRY_RUN = "/api/v1/owner-map/resolve"
KEYS = {
    "event_type": "page.published",
    "client_tier": "enterprise",
    "deliverable_type": "landing_page",
}


class Cast:
    pass


@pytest.fixture
def seeded(org_a, org_b, member, owner, outsider, client_acme, client_b_acme, open_ticket):
    """A's owner map, rota and tickets; B's own, including a role with the same slug."""
    s = Cast()
    now = timezone.now()
    with scope(organization=org_a):
        s.seo = make_role(org_a, people=[member, owner])
        s.creative = make_role(org_a, "creative-ops", "Creative Ops Lead")
        s.catch_all = make_rule(org_a, s.creative, position=1)
        s.rule = make_rule(
            org_a, s.seo, make_policy(org_a), event_type="page.published", position=10
        )
        s.deliverable = Deliverable.objects.create(
            organization=org_a, client=client_acme, deliverable_id="LP-1", type="landing_page"
        )
        s.overdue = open_ticket(
            "incident:overdue", deliverable=s.deliverable, at=now - timedelta(days=1)
        )
        s.fresh = open_ticket("incident:fresh", event_type="asset.uploaded", at=now)
    with scope(organization=org_b):
        s.b_seo = make_role(org_b, people=[outsider])
        s.b_only = make_role(org_b, "b-secret-role", "B's secret role")
        make_rule(org_b, s.b_only, event_type="page.published")
        s.b_ticket = open_ticket("incident:b", organization=org_b, at=now - timedelta(days=1))
    return s


def codes(response) -> list[tuple]:
    return [(e["code"], e.get("field")) for e in response.json()["errors"]]


# --- owner map ----------------------------------------------------------------------------


def test_owner_map_lists_own_active_rules_most_specific_first(api_a, api_b, seeded):
    response = api_a.get("/api/v1/owner-map")

    assert response.status_code == 200
    rows = response.json()
    assert [r["id"] for r in rows] == [seeded.rule.pk, seeded.catch_all.pk]
    assert rows[0]["owner_role"] == "seo-delivery-owner"
    assert rows[0]["escalation_policy"] == "Standard"
    assert [r["owner_role"] for r in api_b.get("/api/v1/owner-map").json()] == ["b-secret-role"]


def test_dry_run_names_the_winner_the_reasons_and_the_warnings(api_a, seeded):
    response = api_a.get(DRY_RUN, KEYS)

    assert response.status_code == 200
    body = response.json()
    assert body["rule"]["id"] == seeded.rule.pk
    assert body["rule"]["owner_role_name"] == "SEO Delivery Owner"
    assert body["reasons"][0].startswith(f"Rule #{seeded.rule.pk} ")
    assert [c["id"] for c in body["candidates"]] == [seeded.rule.pk, seeded.catch_all.pk]
    assert body["warnings"] == []


def test_dry_run_without_a_match_returns_no_rule(api_b, seeded):
    body = api_b.get(DRY_RUN, {**KEYS, "event_type": "asset.uploaded"}).json()

    assert body["rule"] is None and body["candidates"] == []
    assert "No active rule matches" in body["reasons"][0]
    assert any("have no owner" in w for w in body["warnings"])


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({**KEYS, "client_tier": "gold"}, [("invalid_choice", "client_tier")]),
        ({**KEYS, "deliverable_type": "poster"}, [("invalid_choice", "deliverable_type")]),
        ({"client_tier": "enterprise", "deliverable_type": "brief"}, [("required", "event_type")]),
        (
            {},
            [
                ("required", "event_type"),
                ("required", "client_tier"),
                ("required", "deliverable_type"),
            ],
        ),
    ],
)
def test_dry_run_rejects_bad_parameters_with_machine_readable_errors(
    api_a, seeded, params, expected
):
    response = api_a.get(DRY_RUN, params)

    assert response.status_code == 400
    assert sorted(codes(response)) == sorted(expected)


# --- roles and who is on duty -------------------------------------------------------------


def test_roles_list_only_the_organizations_roles(api_a, api_b, seeded):
    assert [r["slug"] for r in api_a.get("/api/v1/roles").json()] == [
        "creative-ops",
        "seo-delivery-owner",
    ]
    assert sorted(r["slug"] for r in api_b.get("/api/v1/roles").json()) == [
        "b-secret-role",
        "seo-delivery-owner",
    ]


def test_on_duty_answers_for_an_instant(api_a, seeded, member, owner):
    response = api_a.get(
        "/api/v1/roles/seo-delivery-owner/on-duty", {"at": "2026-11-23T10:00:00+01:00"}
    )

    assert response.status_code == 200
    assert response.json() == {
        "role": "seo-delivery-owner",
        "primary": member.email,
        "backup": owner.email,
        "layer": "weekly",
        "until": "2026-11-30T08:00:00Z",
    }
    later = api_a.get("/api/v1/roles/seo-delivery-owner/on-duty", {"at": "2026-11-30T08:00:00Z"})
    assert later.json()["primary"] == owner.email


def test_on_duty_for_a_role_without_a_rota_is_nobody(api_a, seeded):
    body = api_a.get("/api/v1/roles/creative-ops/on-duty").json()

    assert (body["primary"], body["backup"], body["until"]) == (None, None, None)


def test_on_duty_rejects_a_bad_instant(api_a, seeded):
    response = api_a.get("/api/v1/roles/seo-delivery-owner/on-duty", {"at": "next tuesday"})

    assert response.status_code == 400
    assert codes(response) == [("invalid", "at")]


def test_same_slug_in_another_organization_answers_with_its_own_people(api_b, seeded, outsider):
    body = api_b.get(
        "/api/v1/roles/seo-delivery-owner/on-duty", {"at": "2026-11-23T10:00:00Z"}
    ).json()

    assert body["primary"] == outsider.email


# --- tickets ------------------------------------------------------------------------------


def ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def test_ticket_list_shows_own_tickets_newest_first(api_a, seeded):
    response = api_a.get("/api/v1/tickets")

    rows = response.json()["results"]
    assert [r["id"] for r in rows] == [str(seeded.fresh.pk), str(seeded.overdue.pk)]
    assert str(seeded.b_ticket.pk) not in {r["id"] for r in rows}
    assert rows[1]["owner_role"] == "seo-delivery-owner"
    assert rows[1]["deliverable_id"] == "LP-1"


def test_ticket_list_filters(api_a, seeded):
    with scope(organization=seeded.overdue.organization):
        Ticket.objects.filter(pk=seeded.fresh.pk).update(status=TicketStatus.ACKNOWLEDGED)
    overdue, fresh = str(seeded.overdue.pk), str(seeded.fresh.pk)

    assert ids(api_a.get("/api/v1/tickets", {"status": "open"})) == {overdue}
    assert ids(api_a.get("/api/v1/tickets?status=open&status=acknowledged")) == {overdue, fresh}
    assert ids(api_a.get("/api/v1/tickets", {"status": "resolved"})) == set()
    assert ids(api_a.get("/api/v1/tickets", {"role": "seo-delivery-owner"})) == {overdue}
    assert ids(api_a.get("/api/v1/tickets", {"role": "creative-ops"})) == {fresh}
    # Opened a day ago: whoever was on duty then (member or owner, by the week).
    assignee = seeded.overdue.assignee.email
    assert ids(api_a.get("/api/v1/tickets", {"assignee": assignee})) == {overdue}
    assert ids(api_a.get("/api/v1/tickets", {"assignee": "nobody@a.example"})) == set()
    assert ids(api_a.get("/api/v1/tickets", {"overdue": "true"})) == {overdue}
    assert ids(api_a.get("/api/v1/tickets", {"overdue": "false"})) == {fresh}
    assert ids(api_a.get("/api/v1/tickets", {"deliverable": "LP-1"})) == {overdue}
    assert ids(api_a.get("/api/v1/tickets", {"deliverable": "LP-404"})) == set()


def test_ticket_list_rejects_an_unknown_status(api_a, seeded):
    response = api_a.get("/api/v1/tickets", {"status": "closed"})

    assert response.status_code == 400
    assert codes(response)[0][1] == "status"


def test_ticket_detail(api_a, seeded):
    response = api_a.get(f"/api/v1/tickets/{seeded.overdue.pk}")

    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(seeded.overdue.pk)
    assert body["rule_snapshot"]["id"] == seeded.rule.pk
    assert body["status"] == "open"


@pytest.mark.parametrize("ref", ["not-a-uuid", str(uuid.uuid4())])
def test_unknown_ticket_is_404(api_a, seeded, ref):
    response = api_a.get(f"/api/v1/tickets/{ref}")

    assert response.status_code == 404
    assert codes(response) == [("not_found", None)]


def test_acknowledge_then_resolve_through_the_api(api_a, seeded, api_key_a):
    url = f"/api/v1/tickets/{seeded.overdue.pk}"

    acknowledged = api_a.post(f"{url}/acknowledge")
    assert acknowledged.status_code == 200
    assert acknowledged.json()["status"] == "acknowledged"
    again = api_a.post(f"{url}/acknowledge")
    assert again.status_code == 409
    assert codes(again) == [("invalid_status", None)]

    resolved = api_a.post(f"{url}/resolve", {"note": "Schema fixed"}, format="json")
    assert resolved.status_code == 200
    assert (resolved.json()["status"], resolved.json()["closed_note"]) == (
        "resolved",
        "Schema fixed",
    )
    assert api_a.post(f"{url}/resolve", {}, format="json").status_code == 409

    with scope(organization=seeded.overdue.organization):
        actors = set(
            Event.objects.filter(
                event_type__in=["ticket.acknowledged", "ticket.resolved"],
                payload__ticket_id=str(seeded.overdue.pk),
            ).values_list("actor_role", "actor_id")
        )
    assert actors == {("api_key", f"test ({api_key_a[0].prefix})")}


def test_resolve_rejects_a_bad_body(api_a, seeded):
    response = api_a.post(
        f"/api/v1/tickets/{seeded.overdue.pk}/resolve", {"note": "x" * 5001}, format="json"
    )

    assert response.status_code == 400
    assert codes(response) == [("max_length", "note")]


# --- scopes -------------------------------------------------------------------------------


def test_key_without_tickets_write_cannot_act(make_key, org_a, seeded):
    _, client = make_key(org_a, scopes=[ApiScope.TICKETS_READ])
    url = f"/api/v1/tickets/{seeded.overdue.pk}"

    assert client.get(url).status_code == 200
    for action in ("acknowledge", "resolve"):
        response = client.post(f"{url}/{action}", {}, format="json")
        assert response.status_code == 403
        assert codes(response) == [("missing_scope", None)]
    with scope(organization=org_a):
        assert Ticket.objects.get(pk=seeded.overdue.pk).status == TicketStatus.OPEN


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/owner-map",
        DRY_RUN + "?event_type=x&client_tier=standard&deliverable_type=brief",
        "/api/v1/roles",
        "/api/v1/roles/seo-delivery-owner",
        "/api/v1/roles/seo-delivery-owner/on-duty",
    ],
)
def test_key_without_owners_read_is_forbidden(make_key, org_a, seeded, path):
    _, client = make_key(org_a, scopes=[ApiScope.TICKETS_READ, ApiScope.TICKETS_WRITE])

    response = client.get(path)

    assert response.status_code == 403
    assert codes(response) == [("missing_scope", None)]


def test_key_without_tickets_read_cannot_list(make_key, org_a, seeded):
    _, client = make_key(org_a, scopes=[ApiScope.OWNERS_READ])

    assert client.get("/api/v1/tickets").status_code == 403
    assert client.get(f"/api/v1/tickets/{seeded.overdue.pk}").status_code == 403


def test_no_key_is_401(seeded):
    from rest_framework.test import APIClient

    response = APIClient().get("/api/v1/tickets")

    assert response.status_code == 401
    assert codes(response) == [("missing_api_key", None)]


# --- tenant isolation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tickets/{s.overdue.pk}",
        "/api/v1/roles/creative-ops",
        "/api/v1/roles/creative-ops/on-duty",
    ],
)
def test_other_organization_gets_404_for_a_rows(api_b, seeded, path):
    response = api_b.get(path.format(s=seeded))

    assert response.status_code == 404
    assert "Creative" not in response.content.decode()


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_other_organization_cannot_act_on_a_ticket(api_b, seeded, action):
    response = api_b.post(f"/api/v1/tickets/{seeded.overdue.pk}/{action}", {}, format="json")

    assert response.status_code == 404
    with scopes_disabled():
        assert Ticket.objects.get(pk=seeded.overdue.pk).status == TicketStatus.OPEN


def test_a_never_sees_b_rows_in_any_list(api_a, seeded):
    b_markers = [str(seeded.b_ticket.pk), "b-secret-role", "B's secret", "outsider@b"]
    for path in ("/api/v1/owner-map", "/api/v1/roles", "/api/v1/tickets", DRY_RUN):
        content = api_a.get(path, KEYS if path == DRY_RUN else None).content.decode()
        for marker in b_markers:
            assert marker not in content, (path, marker)
    filtered = api_a.get("/api/v1/tickets", {"role": "b-secret-role"})
    assert ids(filtered) == set()


# --- query counts -------------------------------------------------------------------------


def test_ticket_list_query_count_does_not_grow_with_rows(api_a, org_a, seeded, open_ticket):
    def count_queries() -> int:
        api_a.get("/api/v1/tickets")  # warm-up: the key's last_used_at write happens once
        with CaptureQueriesContext(connection) as queries:
            response = api_a.get("/api/v1/tickets")
        assert response.status_code == 200
        return len(response.json()["results"]), len(queries)

    with scope(organization=org_a):
        open_ticket("incident:extra-0", deliverable=seeded.deliverable)
    rows_few, few = count_queries()
    with scope(organization=org_a):
        for n in range(1, 28):
            open_ticket(f"incident:extra-{n}", deliverable=seeded.deliverable)
    rows_many, many = count_queries()

    assert (rows_few, rows_many) == (3, 30)
    assert many == few


# --- the issuer's role --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("issuer_role", "allowed"),
    [("finance", False), ("viewer", False), ("account_manager", True), ("admin", True)],
)
def test_a_key_issued_by_finance_cannot_resolve(make_key, org_a, seeded, issuer_role, allowed):

    issuer = create_user(f"{issuer_role}@issuer.example", org_a, issuer_role, PASSWORD)
    _, client = make_key(org_a, created_by=issuer)
    url = f"/api/v1/tickets/{seeded.overdue.pk}"

    assert client.post(f"{url}/acknowledge").status_code == 200  # acknowledging is allowed
    response = client.post(f"{url}/resolve", {"note": "done"}, format="json")
    with scope(organization=org_a):
        status = Ticket.objects.get(pk=seeded.overdue.pk).status
    if allowed:
        assert response.status_code == 200
        assert status == TicketStatus.RESOLVED
    else:
        assert response.status_code == 403
        assert codes(response) == [("role_cannot_close", None)]
        assert status == TicketStatus.ACKNOWLEDGED


def test_a_key_whose_issuer_left_the_organization_cannot_resolve(make_key, org_a, seeded):

    issuer = create_user("left@a.example", org_a, Role.ACCOUNT_MANAGER, PASSWORD)
    _, client = make_key(org_a, created_by=issuer)
    Membership.objects.filter(user=issuer).delete()
    response = client.post(f"/api/v1/tickets/{seeded.overdue.pk}/resolve", {}, format="json")
    assert response.status_code == 403


def test_a_finance_issued_key_gets_404_on_another_tenants_ticket(make_key, org_a, seeded):

    issuer = create_user("fin@a.example", org_a, "finance", PASSWORD)
    _, client = make_key(org_a, created_by=issuer)
    response = client.post(f"/api/v1/tickets/{seeded.b_ticket.pk}/resolve", {}, format="json")
    assert response.status_code == 404
    with scope(organization=seeded.b_ticket.organization):
        assert Ticket.objects.get(pk=seeded.b_ticket.pk).status == TicketStatus.OPEN
