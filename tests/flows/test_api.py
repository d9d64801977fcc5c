"""Flows API: catalog with measures, runs with filters, changes decided by an admin's key."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope

from flows.models import ChangeStatus
from flows.services import changes, measures, runs
from owners.models import OwnerRule
from tests.flows.conftest import intake, sitemap

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow(org_a, client_acme, make_flow, publish):
    """One completed run (LP-1) and one breached run (LP-2)."""
    flow = make_flow()
    publish(org_a, intake("LP-1"), sitemap("LP-1", minutes=90), intake("LP-2"))
    with scope(organization=org_a):
        runs.breach_due_runs(org_a, now=intake_plus(61))
    return flow


def intake_plus(minutes):
    from tests.flows.conftest import at

    return at(minutes)


@pytest.fixture
def proposal(org_a, flow, owner, roles):
    with scope(organization=org_a):
        return changes.propose(flow, {"owner_role": roles["fallback"].pk}, owner)


def test_flow_list_has_measures(api_a, flow):
    [body] = api_a.get("/api/v1/flows").json()
    assert body["slug"] == "brief-to-live"
    assert body["owner_role"] == "flow-owner"
    assert body["measures"]["started"] == 2
    assert body["measures"]["completed"] == 1
    assert body["measures"]["breached"] == 1
    assert body["measures"]["completion_rate"] == 50.0
    assert body["measures"]["mean_minutes_to_outcome"] == 90.0


def test_flow_measures_per_client(api_a, org_a, flow, client_beta, publish):
    from tests.flows.conftest import intake as intake_event

    body = intake_event("BETA-1")
    body["client_id"] = client_beta.client_id
    publish(org_a, body)
    [beta] = api_a.get(f"/api/v1/flows?client={client_beta.client_id}").json()
    assert (beta["measures"]["started"], beta["measures"]["completed"]) == (1, 0)
    acme = api_a.get("/api/v1/flows/brief-to-live?client=acme").json()
    assert (acme["measures"]["started"], acme["measures"]["completed"]) == (2, 1)
    response = api_a.get("/api/v1/flows?client=nobody")
    assert response.status_code == 400
    assert response.json()["errors"][0] == {
        "code": "not_found",
        "field": "client",
        "message": "No client 'nobody' in this organization.",
    }


def test_flow_list_query_count_does_not_grow_with_flows(api_a, flow, make_flow):
    api_a.get("/api/v1/flows")  # the key's last use is written once a minute: not counted
    with CaptureQueriesContext(connection) as one:
        assert api_a.get("/api/v1/flows").status_code == 200
    for index in range(3):
        make_flow(slug=f"other-{index}")
    with CaptureQueriesContext(connection) as four:
        response = api_a.get("/api/v1/flows")
    assert len(response.json()) == 4
    assert len(four) == len(one)


def test_flow_runs_filter_by_state_breached_and_client(api_a, flow):
    assert [
        r["deliverable_id"] for r in api_a.get("/api/v1/flow-runs?state=breached").json()["results"]
    ] == ["LP-2"]
    done = api_a.get("/api/v1/flow-runs?breached=false").json()["results"]
    assert [r["deliverable_id"] for r in done] == ["LP-1"]
    assert len(api_a.get("/api/v1/flow-runs?client=acme").json()["results"]) == 2
    assert api_a.get("/api/v1/flow-runs?client=other").json()["results"] == []
    runs_of_flow = api_a.get("/api/v1/flows/brief-to-live/runs?state=completed").json()
    assert [r["deliverable_id"] for r in runs_of_flow["results"]] == ["LP-1"]


@pytest.mark.parametrize(
    "path", ["/api/v1/flow-runs?state=sideways", "/api/v1/flows/brief-to-live/runs?state=sideways"]
)
def test_bad_filter_is_a_400_in_the_error_shape(api_a, flow, path):
    response = api_a.get(path)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "state"


def test_tickets_api_names_the_run_that_opened_a_breach_ticket(api_a, flow):
    [ticket] = api_a.get("/api/v1/tickets?source=flow").json()["results"]
    assert ticket["opened_by"]["kind"] == "flow_breach"
    assert ticket["opened_by"]["flow"] == "brief-to-live"
    assert ticket["opened_by"]["deliverable_id"] == "LP-2"


def test_flow_runs_query_count_does_not_grow_with_rows(api_a, org_a, flow, publish):
    api_a.get("/api/v1/flow-runs")  # the key's last use is written once a minute: not counted
    with CaptureQueriesContext(connection) as few:
        assert api_a.get("/api/v1/flow-runs").status_code == 200
    publish(org_a, *(intake(f"LP-{n}") for n in range(10, 16)))
    with CaptureQueriesContext(connection) as more:
        response = api_a.get("/api/v1/flow-runs")
    assert len(response.json()["results"]) == 8
    assert len(more) == len(few)


def test_second_admins_key_approves(org_a, proposal, make_key, second_admin, flow, roles):
    _key, client = make_key(org_a, created_by=second_admin)
    response = client.post(
        f"/api/v1/changes/{proposal.pk}/approve", {"note": "fine"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["status"] == ChangeStatus.APPLIED
    assert response.json()["decided_by"] == "second@a.example"
    flow.refresh_from_db()
    assert flow.owner_role == roles["fallback"]
    response = client.post(f"/api/v1/changes/{proposal.pk}/rollback")
    assert response.json()["status"] == ChangeStatus.ROLLED_BACK
    flow.refresh_from_db()
    assert flow.owner_role == roles["flow_owner"]


def test_proposers_key_cannot_approve(org_a, proposal, make_key, owner):
    _key, client = make_key(org_a, created_by=owner)
    response = client.post(f"/api/v1/changes/{proposal.pk}/approve")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "four_eyes"


def test_non_admins_key_cannot_approve(org_a, proposal, make_key, member):
    _key, client = make_key(org_a, created_by=member)
    response = client.post(f"/api/v1/changes/{proposal.pk}/approve")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "not_admin"


def test_key_without_a_person_cannot_approve(api_a, proposal):
    response = api_a.post(f"/api/v1/changes/{proposal.pk}/approve")
    assert response.status_code == 403


def test_key_without_the_approve_scope_is_refused(org_a, proposal, make_key, second_admin):
    _key, client = make_key(org_a, created_by=second_admin, scopes=["changes:read"])
    assert client.get(f"/api/v1/changes/{proposal.pk}").status_code == 200
    response = client.post(f"/api/v1/changes/{proposal.pk}/approve")
    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "missing_scope"


def test_deciding_twice_is_a_409(org_a, proposal, make_key, second_admin):
    _key, client = make_key(org_a, created_by=second_admin)
    assert client.post(f"/api/v1/changes/{proposal.pk}/reject").status_code == 200
    response = client.post(f"/api/v1/changes/{proposal.pk}/approve")
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "invalid_status"


def test_change_detail_has_diff_and_dry_run(api_a, proposal):
    body = api_a.get(f"/api/v1/changes/{proposal.pk}").json()
    assert body["status"] == "proposed"
    assert body["diff"][0]["field"] == "owner_role"
    assert body["dry_run"][0]["owner"] == ["Flow Owner", "Account Manager"]
    assert api_a.get("/api/v1/changes?status=proposed").json()["results"][0]["id"] == str(
        proposal.pk
    )


def test_another_tenant_gets_404_on_every_route(api_b, org_b, make_key, outsider, proposal, flow):
    with scope(organization=flow.organization):
        run = flow.runs.first()
    for path in (
        "/api/v1/flows/brief-to-live",
        "/api/v1/flows/brief-to-live/runs",
        f"/api/v1/flow-runs/{run.pk}",
        f"/api/v1/changes/{proposal.pk}",
    ):
        assert api_b.get(path).status_code == 404, path
    assert api_b.get("/api/v1/flows").json() == []
    assert api_b.get("/api/v1/flow-runs").json()["results"] == []
    assert api_b.get("/api/v1/changes").json()["results"] == []
    _key, admin_b = make_key(org_b, created_by=outsider)
    for action in ("approve", "reject", "rollback"):
        response = admin_b.post(f"/api/v1/changes/{proposal.pk}/{action}")
        assert response.status_code == 404, action
    proposal.refresh_from_db()
    assert proposal.status == ChangeStatus.PROPOSED


def test_malformed_ids_are_json_404s(api_a, flow):
    assert api_a.get("/api/v1/flow-runs/not-a-uuid").status_code == 404
    assert api_a.get("/api/v1/changes/not-a-uuid").json()["errors"][0]["code"] == "not_found"


def test_dashboard_panel_mean_matches_the_per_flow_mean(org_a, flow, client_acme):
    from flows.services import measures

    with scope(organization=org_a):
        total = measures.overall(org_a)
        [per] = measures.per_flow(org_a).values()
    assert (total.started, total.completed, total.breached) == (2, 1, 1)
    assert total.mean_minutes == per.mean_minutes == 90.0
    assert total.completion_rate == 50.0


def test_an_admins_key_proposes_and_a_second_admins_key_approves(
    org_a, flow, roles, make_key, owner, second_admin
):
    _key, proposer = make_key(org_a, created_by=owner)
    body = {
        "kind": "flow",
        "target": "brief-to-live",
        "fields": {"owner_role": "account-manager", "due_minutes": 240},
        "reason": "Account managers chase late briefs",
    }
    response = proposer.post("/api/v1/changes", body, format="json")
    assert response.status_code == 201, response.json()
    proposed = response.json()
    assert (proposed["status"], proposed["requires_approval"]) == ("proposed", True)
    assert {d["field"]: d["after"] for d in proposed["diff"]} == {
        "owner_role": roles["fallback"].pk,
        "due_minutes": 240,
    }
    flow.refresh_from_db()
    assert flow.owner_role == roles["flow_owner"]  # nothing applied yet
    # The proposer's key cannot approve it; a second admin's can.
    url = f"/api/v1/changes/{proposed['id']}/approve"
    assert proposer.post(url).status_code == 403
    _key, approver = make_key(org_a, created_by=second_admin)
    assert approver.post(url).json()["status"] == "applied"
    flow.refresh_from_db()
    assert (flow.owner_role, flow.due_minutes) == (roles["fallback"], 240)


@pytest.mark.parametrize(
    "body,field,code",
    [
        (
            {"kind": "flow", "target": "nope", "fields": {"due_minutes": 5}},
            "target",
            "does_not_exist",
        ),
        (
            {"kind": "owner_rule", "target": "9" * 30, "fields": {"position": 1}},
            "target",
            "does_not_exist",
        ),
        (
            {"kind": "flow", "target": "brief-to-live", "fields": {"slug": "x"}},
            "slug",
            "unknown_field",
        ),
        (
            {"kind": "flow", "target": "brief-to-live", "fields": {"owner_role": "ghost"}},
            "owner_role",
            "does_not_exist",
        ),
        (
            {"kind": "flow", "target": "brief-to-live", "fields": {"due_minutes": -1}},
            "due_minutes",
            "invalid",
        ),
        (
            {"kind": "flow", "target": "brief-to-live", "fields": {"due_minutes": 180}},
            None,
            "nothing_changed",
        ),
        ({"kind": "rota", "target": "x", "fields": {"a": 1}}, "kind", "invalid_choice"),
        ({"kind": "flow", "target": "brief-to-live", "fields": {}}, "fields", "invalid"),
        (
            {"kind": "flow", "target": "brief-to-live", "fields": {"owner_role": [1]}},
            "owner_role",
            "invalid",
        ),
        (
            {"kind": "owner_rule", "target": "RULE", "fields": {"escalation_policy": "x"}},
            "escalation_policy",
            "invalid",
        ),
        (
            {
                "kind": "escalation_policy",
                "target": "POLICY",
                "fields": {"steps": [{"people": [[1]]}]},
            },
            "steps",
            "invalid",
        ),
        (
            {
                "kind": "escalation_policy",
                "target": "POLICY",
                "fields": {"steps": [{"target_role": "x", "action": "notify_role"}]},
            },
            "steps",
            "invalid",
        ),
    ],
)
def test_a_bad_proposal_is_a_400_naming_what_is_wrong(
    org_a, flow, roles, make_key, owner, body, field, code
):
    with scope(organization=org_a):
        rule = OwnerRule.objects.get(organization=org_a)
    body = {**body, "target": body.get("target", "")}
    if body["target"] == "RULE":
        body["target"] = str(rule.pk)
    elif body["target"] == "POLICY":
        body["target"] = str(rule.escalation_policy_id)
    _key, client = make_key(org_a, created_by=owner)
    response = client.post("/api/v1/changes", body, format="json")
    assert response.status_code == 400, response.json()
    [error] = response.json()["errors"]
    assert (error.get("field"), error["code"]) == (field, code)


def test_proposals_need_an_admins_key_and_see_only_their_own_tenant(
    org_a, org_b, flow, make_key, member, outsider, api_a
):
    body = {"kind": "flow", "target": "brief-to-live", "fields": {"due_minutes": 200}}
    _key, members = make_key(org_a, created_by=member)
    assert members.post("/api/v1/changes", body, format="json").status_code == 403
    assert api_a.post("/api/v1/changes", body, format="json").status_code == 403  # no person
    _key, b_admin = make_key(org_b, created_by=outsider)
    other = b_admin.post("/api/v1/changes", body, format="json")
    assert other.status_code == 400 and other.json()["errors"][0]["field"] == "target"
    flow.refresh_from_db()
    assert flow.due_minutes == 180


def test_the_approval_policy_is_proposed_through_the_api_too(org_a, make_key, owner):
    _key, client = make_key(org_a, created_by=owner)
    lift = {"kind": "approval_policy", "fields": {"owner_rules": False}}
    assert client.post("/api/v1/changes", lift, format="json").json()["status"] == "proposed"
    add = {"kind": "approval_policy", "fields": {"owner_rules": True}}
    assert client.post("/api/v1/changes", add, format="json").status_code == 400  # no change


def test_manual_handoffs_count_the_reassignments_of_runs_tickets(
    org_a, flow, api_a, as_member, owner, member
):
    from importlib import import_module

    from django.apps import apps

    from owners.models import Ticket
    from owners.services import tickets

    with scope(organization=org_a):
        ticket = Ticket.objects.get(organization=org_a, flow_link__run__flow=flow)
        actor = tickets.Actor.for_user(owner)
        tickets.reassign(ticket, actor, owner)
        tickets.reassign(ticket, actor, member)
        assert measures.per_flow(org_a)[flow.pk].handoffs == 2
    [listed] = api_a.get("/api/v1/flows").json()
    assert listed["measures"]["manual_handoffs"] == 2
    page = as_member.get("/o/org-a/flows/brief-to-live/?handed_off=true").content.decode()
    assert "manual handoffs" in page
    assert "LP-2" in page and "LP-1" not in page  # only the run whose ticket moved
    # Tickets reassigned before the counter existed get it from their trail entries.
    with scope(organization=org_a):
        Ticket.objects.filter(pk=ticket.pk).update(reassignments=0)
        migration = import_module("owners.migrations.0008_ticket_reassignments")
        migration.count_past_reassignments(apps, None)
        ticket.refresh_from_db()
    assert ticket.reassignments == 2
