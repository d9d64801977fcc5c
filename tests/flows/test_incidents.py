"""Incident mode: non-essential runs pause, their owners hear of it, the paused time is
credited when the incident ends; essential flows keep counting."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_scopes import scope

from deliveries.models import Event
from flows.models import FlowRun, Incident, IncidentRule, RunState
from flows.services import incidents, runs
from flows.services.changes import ChangeError
from owners.models import Notification
from owners.services.backlog_incidents import check
from tests.flows.conftest import at, intake
from tests.owners.test_backlog_incidents import LIMITS, drain, pending  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_runs(org_a, client_acme, make_flow, publish):
    """LP-1 in a non-essential flow, LP-1 in an essential one; both first due at +60."""
    make_flow()
    make_flow(slug="essential", name="Essential", essential=True)
    publish(org_a, intake())
    with scope(organization=org_a):
        return {r.flow.slug: r for r in FlowRun.objects.filter(organization=org_a)}


def _state(run):
    run.refresh_from_db()
    return run.state, run.due_at


def test_incident_pauses_non_essential_runs_and_credits_the_time(org_a, two_runs, owner, member):
    with scope(organization=org_a):
        incident = incidents.declare(org_a, owner, "CMS down", at=at(30))
        assert _state(two_runs["brief-to-live"]) == (RunState.PAUSED, None)
        assert _state(two_runs["essential"]) == (RunState.RUNNING, at(60))
        # Paused runs never breach; the essential one does.
        assert runs.breach_due_runs(org_a, now=at(100)) == 1
        assert FlowRun.objects.get(pk=two_runs["essential"].pk).state == RunState.BREACHED
        incidents.end(incident, owner, at=at(90))  # paused for 60 minutes
        run = two_runs["brief-to-live"]
        run.refresh_from_db()
        assert (run.state, run.credited_seconds) == (RunState.RUNNING, 3600)
        assert run.due_at == at(120)  # due at +60, plus the 60 minutes credited
        assert runs.breach_due_runs(org_a, now=at(119)) == 0
        assert list(incident.paused_runs.all()) == [run]
        steps = set(
            Event.objects.filter(
                organization=org_a, event_type__startswith="incident."
            ).values_list("event_type", flat=True)
        )
    assert steps == {"incident.declared", "incident.ended"}


def test_owner_on_duty_of_a_paused_flow_is_notified_once(org_a, two_runs, owner, member):
    with scope(organization=org_a):
        incidents.declare(org_a, owner, "CMS down", at=at(30))
        notes = list(Notification.objects.filter(organization=org_a, recipient=member))
    assert len(notes) == 1
    assert "Brief to live is paused" in notes[0].subject


def test_a_run_started_during_an_incident_starts_paused(
    org_a, client_acme, make_flow, publish, owner
):
    make_flow()
    with scope(organization=org_a):
        incident = incidents.declare(org_a, owner, "CMS down", at=at(-10))
    publish(org_a, intake(minutes=0))
    with scope(organization=org_a):
        run = FlowRun.objects.get(organization=org_a)
        assert (run.state, run.due_at) == (RunState.PAUSED, None)
        incidents.end(incident, owner, at=at(30))
        run.refresh_from_db()
    assert run.due_at == at(90)


def test_outcome_during_an_incident_completes_the_run(org_a, two_runs, owner, publish):
    from tests.flows.conftest import sitemap

    with scope(organization=org_a):
        incidents.declare(org_a, owner, "CMS down", at=at(30))
    publish(org_a, sitemap(minutes=40))
    assert _state(two_runs["brief-to-live"]) == (RunState.COMPLETED, None)


def test_one_open_incident_at_a_time_and_only_admins(org_a, two_runs, owner, member):
    with scope(organization=org_a):
        with pytest.raises(ChangeError) as exc:
            incidents.declare(org_a, member, "x")
        assert exc.value.code == "not_admin"
        with pytest.raises(ChangeError) as exc:
            incidents.declare(org_a, owner, "   ")
        assert exc.value.field == "title"
        incident = incidents.declare(org_a, owner, "CMS down", at=at(1))
        with pytest.raises(ChangeError) as exc:
            incidents.declare(org_a, owner, "Again", at=at(2))
        assert exc.value.code == "incident_open"
        assert Incident.objects.filter(organization=org_a).count() == 1
        incidents.end(incident, owner, at=at(3))
        with pytest.raises(ChangeError) as exc:
            incidents.end(incident, owner, at=at(4))
    assert exc.value.code == "invalid_status"


def test_portal_declare_and_end(client, owner, org_a, two_runs):
    client.force_login(owner)
    assert client.post("/o/org-a/incidents/declare", {"title": ""}).status_code == 400
    response = client.post("/o/org-a/incidents/declare", {"title": "CMS down"})
    assert response.status_code == 302
    page = client.get("/o/org-a/incidents/").content.decode()
    assert "CMS down" in page and "End the incident" in page
    with scope(organization=org_a):
        incident = Incident.objects.get(organization=org_a)
    client.post(f"/o/org-a/incidents/{incident.pk}/end")
    incident.refresh_from_db()
    assert incident.ended_at is not None


def test_members_cannot_declare_and_outsiders_get_404(
    as_member, as_outsider, org_a, owner, two_runs
):
    with scope(organization=org_a):
        incident = incidents.declare(org_a, owner, "CMS down")
    assert as_member.get("/o/org-a/incidents/").status_code == 200
    assert as_member.post("/o/org-a/incidents/declare", {"title": "x"}).status_code == 403
    assert as_member.post(f"/o/org-a/incidents/{incident.pk}/end").status_code == 403
    assert as_outsider.get("/o/org-a/incidents/").status_code == 404
    assert as_outsider.post(f"/o/org-a/incidents/{incident.pk}/end").status_code == 404
    assert as_outsider.post(f"/o/org-b/incidents/{incident.pk}/end").status_code == 404
    incident.refresh_from_db()
    assert incident.ended_at is None


# --- declared by rule: processing lag (IncidentRule) -----------------------------------------


def _open_incidents(org):
    with scope(organization=org):
        return list(Incident.objects.filter(organization=org, ended_at__isnull=True))


def test_processing_lag_declares_an_incident_by_rule_and_catching_up_ends_it(
    org_a,
    two_runs,
    owner,
    pending,  # noqa: F811
):
    now = timezone.now().replace(microsecond=0)
    with scope(organization=org_a):
        IncidentRule.objects.create(organization=org_a, on="processing.lagging")
    pending(org_a, 2, timedelta(minutes=50), now)
    with scope(organization=org_a):
        check(org_a, now, LIMITS)
    [incident] = _open_incidents(org_a)
    assert (incident.declared_by_rule, incident.declared_by, incident.started_at) == (
        "processing.lagging",
        None,
        now,
    )
    with scope(organization=org_a):
        assert _state(two_runs["brief-to-live"])[0] == RunState.PAUSED
        assert _state(two_runs["essential"])[0] == RunState.RUNNING
        drain(org_a)
        check(org_a, now + timedelta(minutes=3), LIMITS)
        incident.refresh_from_db()
        run = two_runs["brief-to-live"]
        run.refresh_from_db()
        declared = Event.objects.get(organization=org_a, event_type="incident.declared")
    assert incident.ended_at == now + timedelta(minutes=3)
    assert (run.state, run.credited_seconds) == (RunState.RUNNING, 180)
    assert (declared.actor_role, declared.actor_id) == ("meshline", "rule:processing.lagging")


def test_without_an_enabled_rule_lag_pauses_nothing(org_a, two_runs, owner, pending):  # noqa: F811
    now = timezone.now().replace(microsecond=0)
    with scope(organization=org_a):
        IncidentRule.objects.create(organization=org_a, on="processing.lagging", enabled=False)
    pending(org_a, 2, timedelta(minutes=50), now)
    with scope(organization=org_a):
        assert check(org_a, now, LIMITS) is not None  # the backlog incident itself opens
    assert _open_incidents(org_a) == []
    assert _state(two_runs["brief-to-live"])[0] == RunState.RUNNING


def test_a_rule_neither_doubles_nor_ends_an_admins_incident(
    org_a,
    two_runs,
    owner,
    pending,  # noqa: F811
):
    now = timezone.now().replace(microsecond=0)
    with scope(organization=org_a):
        IncidentRule.objects.create(organization=org_a, on="processing.lagging")
        manual = incidents.declare(org_a, owner, "CMS down", at=now - timedelta(hours=1))
    pending(org_a, 2, timedelta(minutes=50), now)
    with scope(organization=org_a):
        check(org_a, now, LIMITS)
        drain(org_a)
        check(org_a, now + timedelta(minutes=3), LIMITS)
    assert [i.pk for i in _open_incidents(org_a)] == [manual.pk]
