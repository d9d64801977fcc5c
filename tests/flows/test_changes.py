"""Four-eyes changes: proposed (diff + dry run), invisible until a second admin approves,
rolled back in one step, every step in the trail."""

import pytest
from django_scopes import scope

from deliveries.models import Event
from flows.models import Change, ChangeStatus, Flow
from flows.services import changes, runs
from owners.models import OwnerRule, Ticket, TicketSource
from tests.flows.conftest import at, intake

pytestmark = pytest.mark.django_db


@pytest.fixture
def running(org_a, client_acme, make_flow, publish):
    """The flow with one run of LP-1, running (first milestone due at +60)."""
    flow = make_flow()
    publish(org_a, intake())
    return flow


def _breach_owner(org, ref, minutes):
    with scope(organization=org):
        runs.breach_due_runs(org, now=at(minutes))
        ticket = Ticket.objects.filter(
            organization=org, source=TicketSource.FLOW, deliverable__deliverable_id=ref
        ).get()
    return ticket.owner_role


def test_owner_change_is_invisible_until_approved_then_rolls_back(
    org_a, running, roles, owner, second_admin, publish
):
    new_owner = roles["fallback"]
    with scope(organization=org_a):
        change = changes.propose(running, {"owner_role": new_owner.pk}, owner, at=at(1))
        assert change.status == ChangeStatus.PROPOSED
        assert change.diff() == [
            {"field": "owner_role", "before": roles["flow_owner"].pk, "after": new_owner.pk}
        ]
        dry_run = change.dry_run
        assert [item["owner"] for item in dry_run] == [["Flow Owner", "Account Manager"]]
        running.refresh_from_db()
        assert running.owner_role == roles["flow_owner"]  # nothing applied yet

        with pytest.raises(changes.ChangeError) as exc:
            changes.approve(change, owner)
        assert exc.value.code == "four_eyes"

        changes.approve(change, second_admin, note="ok", at=at(2))
        running.refresh_from_db()
        assert running.owner_role == new_owner
        # Applied: the same proposal now changes nothing.
        assert changes.current_dry_run(change) == []

        changes.rollback(change, second_admin, at=at(3))
        running.refresh_from_db()
        assert running.owner_role == roles["flow_owner"]
        # The prior behaviour is back: the dry run shows exactly what it showed before.
        assert changes.current_dry_run(change) == dry_run
        steps = list(
            Event.objects.filter(organization=org_a, event_type__startswith="config.")
            .order_by("occurred_at")
            .values_list("event_type", flat=True)
        )
    assert steps == ["config.proposed", "config.applied", "config.rolled_back"]
    assert _breach_owner(org_a, "LP-1", 61) == roles["flow_owner"]


def test_breach_before_approval_goes_to_the_current_owner(
    org_a, running, roles, owner, second_admin
):
    with scope(organization=org_a):
        change = changes.propose(running, {"owner_role": roles["fallback"].pk}, owner)
    assert _breach_owner(org_a, "LP-1", 61) == roles["flow_owner"]
    with scope(organization=org_a):
        change = changes.approve(change, second_admin)
    assert change.status == ChangeStatus.APPLIED


def test_due_time_change_moves_open_runs_and_rollback_moves_them_back(
    org_a, running, owner, second_admin
):
    milestones = [dict(m) for m in running.milestones]
    milestones[0]["due_minutes"] = 600
    with scope(organization=org_a):
        change = changes.propose(running, {"milestones": milestones}, owner)
        assert change.dry_run[0]["due_at"] == [at(60).isoformat(), at(120).isoformat()]
        changes.approve(change, second_admin)
        run = running.runs.get()
        assert (run.due_at, run.due_for) == (at(120), "page.published")
        changes.rollback(change, second_admin)
        run.refresh_from_db()
        assert (run.due_at, run.due_for) == (at(60), "asset.approved")


def test_unflagged_flow_applies_at_once_and_still_rolls_back(org_a, make_flow, owner, roles):
    flow = make_flow(affects_client_sla=False)
    with scope(organization=org_a):
        change = changes.propose(flow, {"runbook": "New steps."}, owner)
        assert change.status == ChangeStatus.APPLIED
        assert not change.requires_approval
        changes.rollback(change, owner)
        flow.refresh_from_db()
    assert flow.runbook == "1. Chase the approver.\n2. Publish."


def test_setting_a_flag_on_an_unflagged_flow_needs_approval(org_a, make_flow, owner):
    flow = make_flow(affects_client_sla=False)
    with scope(organization=org_a):
        change = changes.propose(flow, {"affects_billing": True}, owner)
        flow.refresh_from_db()
    assert change.status == ChangeStatus.PROPOSED
    assert flow.affects_billing is False


def test_rollback_refused_when_a_later_change_edited_the_row(
    org_a, running, owner, second_admin, roles
):
    with scope(organization=org_a):
        first = changes.propose(running, {"runbook": "one"}, owner)
        changes.approve(first, second_admin)
        running.refresh_from_db()
        second = changes.propose(running, {"runbook": "two"}, owner)
        changes.approve(second, second_admin)
        with pytest.raises(changes.ChangeError) as exc:
            changes.rollback(first, second_admin)
        assert exc.value.code == "superseded"
        changes.rollback(second, second_admin)
        changes.rollback(first, second_admin)
        running.refresh_from_db()
    assert running.runbook == "1. Chase the approver.\n2. Publish."


def test_stale_proposal_is_refused_on_approval(org_a, running, owner, second_admin):
    with scope(organization=org_a):
        stale = changes.propose(running, {"runbook": "A"}, owner)
        newer = changes.propose(running, {"runbook": "B"}, owner)
        changes.approve(newer, second_admin)
        with pytest.raises(changes.ChangeError) as exc:
            changes.approve(stale, second_admin)
        stale.refresh_from_db()
    assert exc.value.code == "stale"
    assert stale.status == ChangeStatus.PROPOSED


@pytest.mark.parametrize(
    ("fields", "code", "field"),
    [
        ({"slug": "other"}, "unknown_field", "slug"),
        ({"milestones": [{"event_type": "x", "due_minutes": -1}]}, "invalid", "milestones"),
        ({"due_kind": "lunar"}, "invalid", "due_kind"),
        ({"owner_role": 999_999}, "does_not_exist", "owner_role"),
        ({"runbook": "1. Chase the approver.\n2. Publish."}, "nothing_changed", None),
    ],
)
def test_bad_proposals_are_refused_and_nothing_is_stored(
    org_a, running, owner, fields, code, field
):
    with scope(organization=org_a):
        with pytest.raises(changes.ChangeError) as exc:
            changes.propose(running, fields, owner)
        assert not Change.objects.filter(organization=org_a).exists()
    assert (exc.value.code, exc.value.field) == (code, field)


def test_another_tenants_role_is_not_a_valid_owner(org_a, org_b, running, owner):
    from tests.owners.factories import make_role

    with scope(organization=org_b):
        foreign = make_role(org_b, slug="theirs", name="Theirs")
    with scope(organization=org_a), pytest.raises(changes.ChangeError) as exc:
        changes.propose(running, {"owner_role": foreign.pk}, owner)
    assert exc.value.code == "does_not_exist"


def test_only_admins_propose_and_decide(org_a, running, owner, member, roles):
    with scope(organization=org_a):
        with pytest.raises(changes.ChangeError) as exc:
            changes.propose(running, {"runbook": "x"}, member)
        assert exc.value.code == "not_admin"
        change = changes.propose(running, {"runbook": "x"}, owner)
        with pytest.raises(changes.ChangeError) as exc:
            changes.approve(change, member)
    assert exc.value.code == "not_admin"


def test_owner_rule_change_shows_tickets_it_would_reroute(
    org_a, client_acme, roles, owner, second_admin
):
    from deliveries.models import Deliverable
    from owners.services.tickets import open_ticket

    with scope(organization=org_a):
        rule = OwnerRule.objects.get(organization=org_a)
        deliverable = Deliverable.objects.create(
            organization=org_a, client=client_acme, deliverable_id="LP-9", type="landing_page"
        )
        ticket, _ = open_ticket(
            org_a,
            source=TicketSource.MANUAL,
            source_key="t1",
            title="Fix it",
            event_type="page.published",
            deliverable=deliverable,
            at=at(0),
        )
        change = changes.propose(
            rule, {"owner_role": roles["flow_owner"].pk, "resolve_minutes": 480}, owner
        )
        assert change.status == ChangeStatus.PROPOSED  # owner rules always need approval
        [item] = change.dry_run
        assert item["id"] == str(ticket.pk)
        assert item["owner"] == ["Account Manager", "Flow Owner"]
        assert item["resolve_due_at"] == [at(240).isoformat(), at(480).isoformat()]
        changes.approve(change, second_admin)
        rule.refresh_from_db()
        assert (rule.owner_role, rule.resolve_minutes) == (roles["flow_owner"], 480)
        changes.rollback(change, second_admin)
        rule.refresh_from_db()
    assert (rule.owner_role, rule.resolve_minutes) == (roles["fallback"], 240)


def test_rejected_change_never_applies(org_a, running, owner, second_admin):
    with scope(organization=org_a):
        change = changes.propose(running, {"runbook": "x"}, owner)
        changes.reject(change, second_admin, note="no")
        with pytest.raises(changes.ChangeError) as exc:
            changes.approve(change, second_admin)
        flow = Flow.objects.get(pk=running.pk)
    assert exc.value.code == "invalid_status"
    assert flow.runbook != "x"
