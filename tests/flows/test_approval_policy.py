"""The organization's approval policy, and the kinds it governs beyond flows and owner rules:
gates in enforce mode and billing settings wait for a second admin; lifting a requirement
waits too, adding one applies at once."""

from decimal import Decimal

import pytest
from django_scopes import scope

from billing.models import BillingSettings
from flows.models import ApprovalPolicy, Change, ChangeStatus
from flows.services import changes, policy_steps
from gates.models import CheckName, GateMode, Outcome
from owners.models import EscalationPolicy, OwnerRule, Ticket, TicketSource
from owners.services import tickets
from tests.gates.conftest import page, published

pytestmark = pytest.mark.django_db


def _gate_tickets(org):
    with scope(organization=org):
        return Ticket.objects.filter(organization=org, source=TicketSource.GATE_FAILURE).count()


def test_an_enforced_gate_keeps_enforcing_until_a_second_admin_approves(
    org_a, client_acme, owner_map, make_gate, publish, owner, second_admin
):
    gate = make_gate(CheckName.SCHEMA_CHECK)
    with scope(organization=org_a):
        change = changes.propose(gate, {"mode": GateMode.MONITOR}, owner, reason="too noisy")
    assert (change.status, change.requires_approval) == (ChangeStatus.PROPOSED, True)
    assert change.diff() == [{"field": "mode", "before": "enforce", "after": "monitor"}]

    # Proposed, not applied: a failing page still opens a ticket.
    publish(org_a, published("LP-1", page("missing_jsonld.html")))
    assert _gate_tickets(org_a) == 1

    with scope(organization=org_a):
        changes.approve(change, second_admin)
    publish(org_a, published("LP-2", page("missing_jsonld.html")))
    assert _gate_tickets(org_a) == 1  # monitored now: recorded, no ticket
    with scope(organization=org_a):
        assert gate.evaluations.order_by("evaluated_at").last().outcome == Outcome.MONITOR
        # Back to enforce in one step.
        changes.rollback(change, second_admin)
        gate.refresh_from_db()
    assert gate.mode == GateMode.ENFORCE
    publish(org_a, published("LP-3", page("missing_jsonld.html")))
    assert _gate_tickets(org_a) == 2


def test_a_monitored_gate_changes_at_once_but_enforcing_it_waits(org_a, make_gate, owner):
    gate = make_gate(CheckName.SCHEMA_CHECK, mode=GateMode.MONITOR)
    with scope(organization=org_a):
        tuned = changes.propose(gate, {"playbook": "Add the JSON-LD block."}, owner)
        enforce = changes.propose(gate, {"mode": GateMode.ENFORCE}, owner)
        gate.refresh_from_db()
    assert tuned.status == ChangeStatus.APPLIED and gate.playbook == "Add the JSON-LD block."
    assert enforce.status == ChangeStatus.PROPOSED and gate.mode == GateMode.MONITOR


def test_billing_settings_wait_for_approval_and_roll_back_exactly(org_a, owner, second_admin):
    with scope(organization=org_a):
        settings = BillingSettings.objects.create(organization=org_a)
        change = changes.propose(settings, {"tax_rate": "0.25"}, owner)
        assert change.diff() == [{"field": "tax_rate", "before": "0.1900", "after": "0.2500"}]
        settings.refresh_from_db()
        assert settings.tax_rate == Decimal("0.19")
        with pytest.raises(changes.ChangeError) as same:
            changes.propose(settings, {"tax_rate": "0.190"}, owner)
        assert same.value.code == "nothing_changed"
        changes.approve(change, second_admin)
        settings.refresh_from_db()
        assert settings.tax_rate == Decimal("0.25")
        changes.rollback(change, owner)
        settings.refresh_from_db()
        assert settings.tax_rate == Decimal("0.19")
        with pytest.raises(changes.ChangeError) as bad:
            changes.propose(settings, {"tax_rate": "-1"}, owner)
    assert (bad.value.code, bad.value.field) == ("invalid", "tax_rate")


def test_lifting_a_requirement_needs_a_second_admin_and_then_edits_apply(
    org_a, roles, owner, second_admin
):
    with scope(organization=org_a):
        rule = OwnerRule.objects.get(organization=org_a)
        policy = ApprovalPolicy.for_organization(org_a)
        lift = changes.propose(policy, {"owner_rules": False}, owner)
        assert lift.status == ChangeStatus.PROPOSED
        with pytest.raises(changes.ChangeError) as four_eyes:
            changes.approve(lift, owner)
        assert four_eyes.value.code == "four_eyes"
        assert changes.propose(rule, {"resolve_minutes": 90}, owner).status == "proposed"

        changes.approve(lift, second_admin)
        edit = changes.propose(rule, {"resolve_minutes": 120}, owner)
        rule.refresh_from_db()
        assert (edit.status, edit.requires_approval, rule.resolve_minutes) == (
            ChangeStatus.APPLIED,
            False,
            120,
        )
        # Putting the requirement back needs nobody else.
        policy.refresh_from_db()
        assert policy.owner_rules is False
        restore = changes.propose(policy, {"owner_rules": True}, owner)
        assert restore.status == ChangeStatus.APPLIED
        assert changes.propose(rule, {"resolve_minutes": 60}, owner).status == "proposed"


def test_the_changes_page_edits_the_policy_for_admins_only(
    client, org_a, owner, member, second_admin, outsider
):
    client.force_login(member)
    page_html = client.get("/o/org-a/changes/").content.decode()
    assert "Changes that need a second admin" in page_html and "Owner rules: yes" in page_html
    assert client.post("/o/org-a/changes/approval-policy", {}).status_code == 403

    client.force_login(owner)
    keep = {
        "flows": "on",
        "enforced_gates": "on",
        "billing_settings": "on",
        "escalation_policies": "on",
    }
    response = client.post("/o/org-a/changes/approval-policy", {**keep, "reason": "fast"})
    with scope(organization=org_a):
        change = Change.objects.get(organization=org_a)
        assert ApprovalPolicy.objects.get(organization=org_a).owner_rules is True
    assert response.status_code == 302 and response["Location"].endswith(f"/{change.pk}/")
    assert change.proposed == {"owner_rules": False} and change.status == "proposed"
    # Nothing changed: a form error, not a new proposal.
    again = client.post("/o/org-a/changes/approval-policy", {**keep, "owner_rules": "on"})
    assert again.status_code == 400 and "changes nothing" in again.content.decode()

    client.force_login(outsider)
    assert client.post("/o/org-a/changes/approval-policy", keep).status_code == 404
    assert client.get(f"/o/org-b/changes/{change.pk}/").status_code == 404


def test_an_enforced_gate_edited_in_the_admin_becomes_a_proposal(client, org_a, owner, make_gate):
    gate = make_gate(CheckName.SCHEMA_CHECK)
    client.force_login(owner)
    url = f"/admin/gates/gate/{gate.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items() if v is not False}
    data["mode"] = GateMode.OFF
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    gate.refresh_from_db()
    with scope(organization=org_a):
        change = Change.objects.get(organization=org_a)
    assert gate.mode == GateMode.ENFORCE
    assert (change.kind, change.proposed) == ("gate", {"mode": "off"})


def _steps(policy):
    return [(s["wait_minutes"], s["action"]) for s in policy_steps.current(policy)]


def test_escalation_steps_change_by_proposal_and_roll_back(org_a, roles, owner, second_admin):
    with scope(organization=org_a):
        policy = EscalationPolicy.objects.get(organization=org_a)
        before = _steps(policy)
        steps = [
            {"position": 1, "wait_minutes": 10, "wait_kind": "wall", "action": "notify_primary"},
            {"position": 2, "wait_minutes": 60, "wait_kind": "wall", "action": "notify_backup"},
        ]
        change = changes.propose(policy, {"steps": steps, "repeat": 2}, owner)
        assert change.status == ChangeStatus.PROPOSED
        assert _steps(policy) == before  # nothing applied yet
        changes.approve(change, second_admin)
        policy.refresh_from_db()
        assert _steps(policy) == [(10, "notify_primary"), (60, "notify_backup")]
        assert policy.repeat == 2
        # A ticket opened now escalates by the new steps.
        ticket, _ = tickets.open_ticket(
            org_a, source="manual", source_key="t", title="T", event_type="page.published"
        )
        assert [s["wait_minutes"] for s in ticket.policy_snapshot["steps"]] == [10, 60]
        changes.rollback(change, second_admin)
        policy.refresh_from_db()
        assert (_steps(policy), policy.repeat) == (before, 0)
        # Bad steps are a specific error, naming the step.
        with pytest.raises(changes.ChangeError) as bad:
            changes.propose(policy, {"steps": [{"position": 1, "action": "notify_role"}]}, owner)
    assert (bad.value.field, bad.value.code) == ("steps", "invalid")
    assert "Step 1" in str(bad.value) and "target_role" in str(bad.value)


def test_an_escalation_step_edited_in_the_admin_becomes_a_proposal(client, org_a, roles, owner):
    with scope(organization=org_a):
        policy = EscalationPolicy.objects.get(organization=org_a)
        [step] = policy.steps.all()
    client.force_login(owner)
    url = f"/admin/owners/escalationpolicy/{policy.pk}/change/"
    page = client.get(url)
    form = page.context["adminform"].form
    data = {name: form[name].value() for name in form.fields}
    data = {k: ("" if v is None else v) for k, v in data.items()}
    for formset in page.context["inline_admin_formsets"]:
        management = formset.formset.management_form
        data.update({f"{management.prefix}-{k}": v for k, v in management.initial.items()})
        prefix = formset.formset.prefix
        data.update(
            {
                f"{prefix}-0-id": step.pk,
                f"{prefix}-0-policy": policy.pk,
                f"{prefix}-0-position": step.position,
                f"{prefix}-0-wait_minutes": 45,
                f"{prefix}-0-wait_kind": step.wait_kind,
                f"{prefix}-0-action": step.action,
            }
        )
    response = client.post(url, data)
    assert response.status_code == 302, response.context and response.context.get("errors")
    with scope(organization=org_a):
        step.refresh_from_db()
        change = Change.objects.get(organization=org_a)
    assert step.wait_minutes == 30  # unchanged until approved
    assert change.kind == "escalation_policy"
    assert [s["wait_minutes"] for s in change.proposed["steps"]] == [45]


def test_a_governed_row_is_added_switched_off_and_cannot_be_deleted_while_it_acts(
    client, org_a, roles, owner, make_gate
):
    client.force_login(owner)
    added = client.post(
        "/admin/owners/ownerrule/add/",
        {
            "organization": org_a.pk,
            "event_type": "page.published",
            "owner_role": roles["flow_owner"].pk,
            "respond_minutes": 60,
            "resolve_minutes": 480,
            "position": 10,
            "is_active": "on",
        },
        follow=True,
    )
    assert "Created inactive" in added.content.decode()
    with scope(organization=org_a):
        new_rule = OwnerRule.objects.get(organization=org_a, event_type="page.published")
        acting = OwnerRule.objects.get(organization=org_a, event_type="")
    assert new_rule.is_active is False  # routes nothing until a second admin approves
    # The rule that routes today cannot be deleted; the inactive one can.
    assert client.get(f"/admin/owners/ownerrule/{acting.pk}/delete/").status_code == 403
    assert (
        client.post(f"/admin/owners/ownerrule/{new_rule.pk}/delete/", {"post": "yes"}).status_code
        == 302
    )
    gate = make_gate(CheckName.SCHEMA_CHECK)
    assert client.get(f"/admin/gates/gate/{gate.pk}/delete/").status_code == 403
    bulk = client.post(
        "/admin/owners/ownerrule/",
        {"action": "delete_selected", "_selected_action": [acting.pk], "post": "yes"},
    )
    assert bulk.status_code == 403  # Django's bulk delete checks each selected row
    with scope(organization=org_a):
        assert OwnerRule.objects.filter(pk=acting.pk).exists()
        assert not OwnerRule.objects.filter(pk=new_rule.pk).exists()
