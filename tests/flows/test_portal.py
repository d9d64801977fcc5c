"""Portal pages of flows: catalog, flow (funnel, runs, propose), changes (approve, roll
back), the deliverable section and the dashboard panel; outsiders get 404 everywhere."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope

from flows.models import Change, ChangeStatus, Flow
from flows.services import changes, runs
from tests.flows.conftest import at, intake, sitemap

pytestmark = pytest.mark.django_db


@pytest.fixture
def flow(org_a, client_acme, make_flow, publish):
    flow = make_flow()
    publish(org_a, intake("LP-1"), sitemap("LP-1", minutes=90), intake("LP-2"))
    with scope(organization=org_a):
        runs.breach_due_runs(org_a, now=at(61))
    return flow


@pytest.fixture
def as_owner(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def proposal(org_a, flow, owner, roles):
    with scope(organization=org_a):
        return changes.propose(flow, {"owner_role": roles["fallback"].pk}, owner)


def test_catalog_shows_measures_and_uninstalled_templates(as_member, flow):
    page = as_member.get("/o/org-a/flows/").content.decode()
    assert "Brief to live" in page
    assert "50.0 %" in page  # one of two runs completed
    assert 'href="/o/org-a/flows/brief-to-live/?breached=true">1<' in page
    assert "Lead to brief" in page  # a template not installed yet


def test_flow_page_has_funnel_runs_and_runbook(as_member, flow):
    response = as_member.get("/o/org-a/flows/brief-to-live/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Funnel" in page and "Chase the approver." in page
    assert "LP-1" in page and "LP-2" in page
    breached = as_member.get("/o/org-a/flows/brief-to-live/?breached=true").content.decode()
    assert "LP-2" in breached and "LP-1</a>" not in breached
    assert "Propose" not in page  # members read; admins change


def test_flow_page_query_count_does_not_grow_with_runs(as_member, org_a, flow, publish):
    as_member.get("/o/org-a/flows/brief-to-live/")
    with CaptureQueriesContext(connection) as few:
        as_member.get("/o/org-a/flows/brief-to-live/")
    publish(org_a, *(intake(f"LP-{n}") for n in range(10, 16)))
    with CaptureQueriesContext(connection) as more:
        as_member.get("/o/org-a/flows/brief-to-live/")
    assert len(more) == len(few)


def test_deliverable_page_and_dashboard_show_flows(as_member, flow):
    page = as_member.get("/o/org-a/deliverables/LP-2/").content.decode()
    assert "Flow runs" in page and "Breached" in page
    dashboard = as_member.get("/o/org-a/").content.decode()
    assert "completion rate" in dashboard and "mean time to outcome" in dashboard


def test_admin_proposes_from_the_flow_page(as_owner, org_a, flow, roles):
    response = as_owner.post(
        "/o/org-a/flows/brief-to-live/propose",
        {
            "owner_role": roles["fallback"].pk,
            "due_minutes": 180,
            "due_kind": "wall",
            "runbook": flow.runbook,
            "reason": "handover",
        },
    )
    with scope(organization=org_a):
        change = Change.objects.get(organization=org_a)
        flow.refresh_from_db()
    assert response.status_code == 302
    assert response["Location"] == f"/o/org-a/changes/{change.pk}/"
    assert change.proposed == {"owner_role": roles["fallback"].pk}
    assert change.status == ChangeStatus.PROPOSED
    assert flow.owner_role == roles["flow_owner"]
    detail = as_owner.get(response["Location"]).content.decode()
    assert "a second admin must approve it" in detail
    assert "Approve and apply" not in detail  # the proposer is not offered it


def test_bad_proposal_is_a_form_error_and_stores_nothing(as_owner, org_a, flow):
    response = as_owner.post(
        "/o/org-a/flows/brief-to-live/propose",
        {"due_minutes": -5, "due_kind": "wall", "runbook": ""},
    )
    assert response.status_code == 400
    assert "greater than or equal to 0" in response.content.decode()
    with scope(organization=org_a):
        assert not Change.objects.filter(organization=org_a).exists()


def test_unchanged_proposal_is_a_form_error(as_owner, org_a, flow, roles):
    response = as_owner.post(
        "/o/org-a/flows/brief-to-live/propose",
        {
            "owner_role": roles["flow_owner"].pk,
            "due_minutes": 180,
            "due_kind": "wall",
            "runbook": flow.runbook,
        },
    )
    assert response.status_code == 400
    assert "changes nothing" in response.content.decode()


def test_members_cannot_propose_or_decide(as_member, proposal):
    assert as_member.post("/o/org-a/flows/brief-to-live/propose", {}).status_code == 403
    assert as_member.post(f"/o/org-a/changes/{proposal.pk}/approve").status_code == 403
    assert (
        as_member.post("/o/org-a/flows/install", {"template": "lead-to-brief"}).status_code == 403
    )


def test_proposer_cannot_approve_in_the_portal(as_owner, proposal):
    response = as_owner.post(f"/o/org-a/changes/{proposal.pk}/approve")
    assert response.status_code == 400
    assert "second admin" in response.content.decode()
    proposal.refresh_from_db()
    assert proposal.status == ChangeStatus.PROPOSED


def test_second_admin_approves_then_rolls_back_in_the_portal(
    client, second_admin, proposal, flow, roles
):
    client.force_login(second_admin)
    response = client.post(f"/o/org-a/changes/{proposal.pk}/approve", {"note": "ok"})
    assert response.status_code == 302
    flow.refresh_from_db()
    assert flow.owner_role == roles["fallback"]
    assert "Roll back" in client.get(response["Location"]).content.decode()
    client.post(f"/o/org-a/changes/{proposal.pk}/rollback")
    flow.refresh_from_db()
    proposal.refresh_from_db()
    assert flow.owner_role == roles["flow_owner"]
    assert proposal.status == ChangeStatus.ROLLED_BACK
    listing = client.get("/o/org-a/changes/?status=rolled_back").content.decode()
    assert "Rolled back" in listing


def test_admin_installs_a_template_once(as_owner, org_a, flow):
    response = as_owner.post("/o/org-a/flows/install", {"template": "lead-to-brief"})
    assert response.status_code == 302
    as_owner.post("/o/org-a/flows/install", {"template": "lead-to-brief"})
    with scope(organization=org_a):
        assert Flow.objects.filter(organization=org_a, template="lead-to-brief").count() == 1
    assert as_owner.post("/o/org-a/flows/install", {"template": "nope"}).status_code == 302


def test_outsider_gets_404_on_every_route(as_outsider, proposal, flow):
    for path in (
        "/o/org-a/flows/",
        "/o/org-a/flows/brief-to-live/",
        "/o/org-a/changes/",
        f"/o/org-a/changes/{proposal.pk}/",
    ):
        assert as_outsider.get(path).status_code == 404, path
    for path in (
        "/o/org-a/flows/install",
        "/o/org-a/flows/brief-to-live/propose",
        f"/o/org-a/changes/{proposal.pk}/approve",
        f"/o/org-a/changes/{proposal.pk}/reject",
        f"/o/org-a/changes/{proposal.pk}/rollback",
    ):
        assert as_outsider.post(path).status_code == 404, path
    # Organization B's own pages do not show A's flow or change either.
    assert as_outsider.get("/o/org-b/flows/brief-to-live/").status_code == 404
    assert as_outsider.get(f"/o/org-b/changes/{proposal.pk}/").status_code == 404


def test_governed_flow_edit_in_the_admin_becomes_a_proposal(client, owner, org_a, flow, roles):
    client.force_login(owner)
    url = f"/admin/flows/flow/{flow.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items()}
    for name in (
        "client_tiers",
        "deliverable_types",
        "payload_conditions",
        "required_fields",
        "milestones",
    ):
        data[name] = form[name].value()
    data["owner_role"] = roles["fallback"].pk
    data = {k: v for k, v in data.items() if v is not False}
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    flow.refresh_from_db()
    with scope(organization=org_a):
        change = Change.objects.get(organization=org_a)
    assert flow.owner_role == roles["flow_owner"]
    assert change.proposed == {"owner_role": roles["fallback"].pk}


def test_flow_page_measures_one_client(as_member, org_a, flow, client_beta, publish):
    body = intake("BETA-1")
    body["client_id"] = client_beta.client_id
    publish(org_a, body)
    page = as_member.get("/o/org-a/flows/brief-to-live/?client=beta").content.decode()
    assert "Measures for Beta" in page
    assert (
        'href="/o/org-a/flows/brief-to-live/?client=beta"><span class="n">1</span> started' in page
    )
    assert 'href="/o/org-a/flows/brief-to-live/?state=completed&amp;client=beta"' in page
    everyone = as_member.get("/o/org-a/flows/brief-to-live/").content.decode()
    assert '<span class="n">3</span> started' in everyone
