"""The gates admin: an organization's admin sees and restores only their own gates.

Both organizations have gates and evaluations, so every "only A" assertion has something of
B's to leave out.
"""

import pytest
from django.contrib.messages import get_messages
from django_scopes import scope, scopes_disabled

from gates import services
from gates.models import CheckName, Gate, GateEvaluation, GateMode
from tests.gates.conftest import page, published


@pytest.fixture
def seeded(
    org_a, org_b, owner, outsider, client_acme, client_b_acme, owner_map, make_gate, publish
):
    """Each organization: a gate tripped to monitor, and one evaluation."""
    gate_a = make_gate(CheckName.SCHEMA_CHECK, name="A's JSON-LD gate")
    gate_b = make_gate(CheckName.SCHEMA_CHECK, name="B's secret gate", organization=org_b)
    publish(org_a, published("LP-A", page("product_landing.html")))
    publish(org_b, published("LP-B", page("product_landing.html")))
    for gate in (gate_a, gate_b):
        with scopes_disabled():
            Gate.objects.filter(pk=gate.pk).update(
                mode=GateMode.MONITOR, auto_monitor_reason="Failed 6 of 10 evaluations"
            )
            gate.refresh_from_db()
    with scopes_disabled():
        evaluation_b = GateEvaluation.objects.get(organization=org_b)
    return gate_a, gate_b, evaluation_b


@pytest.fixture
def as_owner(client, owner):
    client.force_login(owner)
    return client


def test_org_admin_sees_only_their_gates(as_owner, seeded):
    response = as_owner.get("/admin/gates/gate/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "A&#x27;s JSON-LD gate" in html
    assert "secret" not in html


def test_org_admin_sees_only_their_evaluations(as_owner, seeded):
    response = as_owner.get("/admin/gates/gateevaluation/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "A&#x27;s JSON-LD gate" in html
    assert "secret" not in html
    assert "LP-B" not in html


def test_evaluations_are_read_only(as_owner, seeded):
    assert as_owner.get("/admin/gates/gateevaluation/add/").status_code == 403


def test_restore_action_puts_the_gate_back_to_enforce(as_owner, seeded, org_a):
    gate_a, _, _ = seeded
    response = as_owner.post(
        "/admin/gates/gate/",
        {"action": "restore_enforce", "_selected_action": [gate_a.pk], "index": 0},
        follow=True,
    )
    assert response.status_code == 200
    assert "Restored 1 gate(s) to enforce." in [str(m) for m in response.context["messages"]]
    with scope(organization=org_a):
        gate_a.refresh_from_db()
        last = gate_a.history.first()
    assert (gate_a.mode, gate_a.auto_monitor_reason) == (GateMode.ENFORCE, "")
    assert last.history_change_reason == "restored to enforce"


def test_restore_action_cannot_reach_another_organizations_gate(as_owner, seeded):
    _, gate_b, _ = seeded
    as_owner.post(
        "/admin/gates/gate/",
        {"action": "restore_enforce", "_selected_action": [gate_b.pk], "index": 0},
    )
    with scopes_disabled():
        gate_b.refresh_from_db()
    assert gate_b.mode == GateMode.MONITOR


@pytest.mark.parametrize(
    "path",
    [
        "/admin/gates/gate/{gate_b.pk}/change/",
        "/admin/gates/gate/{gate_b.pk}/history/",
        "/admin/gates/gate/{gate_b.pk}/delete/",
        "/admin/gates/gateevaluation/{evaluation_b.pk}/change/",
    ],
)
def test_another_organizations_gate_is_not_shown(as_owner, seeded, path):
    _, gate_b, evaluation_b = seeded
    response = as_owner.get(path.format(gate_b=gate_b, evaluation_b=evaluation_b))
    # Django's admin answers an object outside get_queryset with a redirect to the index
    # and a "doesn't exist" message; the history view answers 404.
    assert response.status_code in (302, 404)
    if response.status_code == 302:
        assert response.url == "/admin/"
        assert any("exist" in str(m) for m in get_messages(response.wsgi_request))
    assert "secret" not in response.content.decode()


def test_history_of_another_organizations_gate_is_404(as_owner, seeded):
    _, gate_b, _ = seeded
    assert as_owner.get(f"/admin/gates/gate/{gate_b.pk}/history/").status_code == 404


def test_the_outsider_sees_only_organization_b(client, outsider, seeded):
    client.force_login(outsider)
    html = client.get("/admin/gates/gate/").content.decode()
    assert "B&#x27;s secret gate" in html
    assert "JSON-LD gate" not in html


def test_the_restore_service_records_the_version(org_a, make_gate):
    gate = make_gate(CheckName.SCHEMA_CHECK, mode=GateMode.MONITOR, auto_monitor_reason="x")
    with scope(organization=org_a):
        services.restore_gate(gate)
        versions = list(gate.history.values_list("mode", flat=True))
    assert versions == ["enforce", "monitor"]


def test_members_who_are_not_admins_cannot_use_the_gates_admin(client, member, seeded):
    client.force_login(member)
    response = client.get("/admin/gates/gate/")
    assert response.status_code in (302, 403)
