"""The owners admin: an organization's admin sees, edits, versions and dry-runs only their own
owner map, rotas, calendars and policies; every choice list is scoped."""

from datetime import UTC, date, datetime

import pytest
from django_scopes import scope, scopes_disabled

from meshline.models import Role
from meshline.services import create_user
from owners.models import (
    BacklogIncident,
    BusinessCalendar,
    EscalationPolicy,
    OwnerRule,
    Rota,
    Ticket,
    TicketSource,
    WebhookEndpoint,
)
from owners.services import tickets
from tests.conftest import PASSWORD
from tests.owners.factories import make_calendar, make_policy, make_role, make_rule

pytestmark = pytest.mark.django_db
DRY_RUN = "/admin/owners/ownerrule/dry-run/"


class Seed:
    pass


def _seed(organization, prefix, people):
    s = Seed()
    s.role = make_role(organization, f"{prefix.lower()}-seo", f"{prefix} SEO Owner", people=people)
    s.other_role = make_role(organization, f"{prefix.lower()}-creative", f"{prefix} Creative Lead")
    s.policy = make_policy(organization)
    s.policy.name = f"{prefix} Standard policy"
    s.policy.save()
    s.rule = make_rule(organization, s.role, s.policy, event_type="page.published")
    s.calendar = make_calendar(organization)
    s.calendar.name = f"{prefix} office hours"
    s.calendar.save()
    s.rota = s.role.rota
    s.webhook = WebhookEndpoint.objects.create(
        organization=organization, name=f"{prefix} pager", url="http://127.0.0.1:9/", secret="x"
    )
    s.ticket, _ = tickets.open_ticket(
        organization,
        source=TicketSource.INCIDENT,
        source_key="incident:1",
        title=f"{prefix} broken landing page",
        event_type="page.published",
        at=datetime(2026, 11, 23, 9, 0, tzinfo=UTC),
    )
    moment = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    s.incident = BacklogIncident.objects.create(
        organization=organization,
        opened_at=moment,
        measured_at=moment,
        lag_limit_seconds=1800,
        depth_limit=50_000,
        pending=7,
        lag_seconds=4000,
        peak_pending=7,
        peak_lag_seconds=4000,
        ticket_error=f"{prefix} has no rule for processing.lagging",
    )
    return s


@pytest.fixture
def a(org_a, owner, member):
    with scope(organization=org_a):
        return _seed(org_a, "Alpha", [member, owner])


@pytest.fixture
def b(org_b, outsider):
    with scope(organization=org_b):
        return _seed(org_b, "Bravo", [outsider])


@pytest.fixture
def as_owner(client, owner, a, b):
    client.force_login(owner)
    return client


CHANGELISTS = {
    "ownerrole": ("Alpha SEO Owner", "Bravo SEO Owner"),
    "ownerrule": ("Alpha SEO Owner", "Bravo SEO Owner"),
    "rota": ("Alpha SEO Owner", "Bravo SEO Owner"),
    "businesscalendar": ("Alpha office hours", "Bravo office hours"),
    "escalationpolicy": ("Alpha Standard policy", "Bravo Standard policy"),
    "webhookendpoint": ("Alpha pager", "Bravo pager"),
    "ticket": ("Alpha broken landing page", "Bravo broken landing page"),
    "backlogincident": ("Alpha has no rule", "Bravo has no rule"),
}


@pytest.mark.parametrize("model", CHANGELISTS)
def test_changelist_shows_only_own_rows(as_owner, model):
    ours, theirs = CHANGELISTS[model]

    response = as_owner.get(f"/admin/owners/{model}/")

    assert response.status_code == 200
    content = response.content.decode()
    assert ours in content
    assert theirs not in content
    assert response.context["cl"].result_count == (2 if model == "ownerrole" else 1)


def _b_paths(b):
    return {
        "ownerrole": b.role.pk,
        "ownerrule": b.rule.pk,
        "rota": b.rota.pk,
        "businesscalendar": b.calendar.pk,
        "escalationpolicy": b.policy.pk,
        "webhookendpoint": b.webhook.pk,
        "ticket": b.ticket.pk,
        "backlogincident": b.incident.pk,
    }


@pytest.mark.parametrize("model", CHANGELISTS)
def test_other_organizations_change_page_shows_nothing_of_theirs(as_owner, b, model):
    response = as_owner.get(f"/admin/owners/{model}/{_b_paths(b)[model]}/change/", follow=True)

    # Django's admin answers an object outside get_queryset like a missing one: a redirect
    # to the index with "doesn't exist" (or a 404); never the object.
    assert response.redirect_chain in ([("/admin/", 302)], [])
    if not response.redirect_chain:
        assert response.status_code == 404
    assert CHANGELISTS[model][1] not in response.content.decode()


@pytest.mark.parametrize(
    "model", ["ownerrole", "ownerrule", "rota", "businesscalendar", "escalationpolicy"]
)
def test_other_organizations_history_is_404(as_owner, b, model):
    pk = _b_paths(b)[model]
    with scopes_disabled():
        obj = {
            "ownerrole": b.role,
            "ownerrule": b.rule,
            "rota": b.rota,
            "businesscalendar": b.calendar,
            "escalationpolicy": b.policy,
        }[model]
        history_id = obj.history.earliest().history_id

    assert as_owner.get(f"/admin/owners/{model}/{pk}/history/").status_code == 404
    assert as_owner.get(f"/admin/owners/{model}/{pk}/history/{history_id}/").status_code == 404


def test_own_history_of_a_rule_is_shown_and_can_be_reverted(as_owner, a, b):
    with scope(organization=a.rule.organization):
        a.rule.respond_minutes = 5
        a.rule.save()
        original = a.rule.history.earliest()
    base = f"/admin/owners/ownerrule/{a.rule.pk}/history/"

    listing = as_owner.get(base)
    assert listing.status_code == 200
    assert f"{base}{original.history_id}/" in listing.content.decode()

    form_page = as_owner.get(f"{base}{original.history_id}/")
    assert form_page.status_code == 200
    form = form_page.context["adminform"].form
    assert form.initial["respond_minutes"] == 60
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and name in form.fields
    }
    response = as_owner.post(f"{base}{original.history_id}/", data)

    assert response.status_code == 302, response.context and response.context["errors"]
    # Owner rules are governed (flows.services.changes): the revert is proposed, and a
    # second admin's approval applies it.
    from django.contrib.auth import get_user_model

    from flows.models import Change
    from flows.services import changes
    from meshline.models import Role
    from meshline.services import create_user

    with scope(organization=a.rule.organization):
        a.rule.refresh_from_db()
        assert a.rule.respond_minutes == 5
        change = Change.objects.get(organization=a.rule.organization)
        assert change.proposed == {"respond_minutes": 60}
        second = create_user(
            "second-admin@a.example", a.rule.organization, Role.ADMIN, "correct-horse-battery"
        )
        changes.approve(change, get_user_model().objects.get(pk=second.pk))
        a.rule.refresh_from_db()
        assert a.rule.respond_minutes == 60
        assert a.rule.history.count() == 3


def test_own_object_with_another_organizations_version_is_404(as_owner, a, b):
    with scopes_disabled():
        b_version = b.rule.history.earliest().history_id

    response = as_owner.get(f"/admin/owners/ownerrule/{a.rule.pk}/history/{b_version}/")

    assert response.status_code == 404


def test_dry_run_shows_the_winning_rule(as_owner, org_a, a):
    response = as_owner.get(
        DRY_RUN,
        {
            "organization": org_a.pk,
            "event_type": "page.published",
            "client_tier": "enterprise",
            "deliverable_type": "landing_page",
        },
    )

    assert response.status_code == 200
    assert response.context["resolution"].rule == a.rule
    content = response.content.decode()
    assert f"Rule #{a.rule.pk}" in content
    assert "Alpha SEO Owner" in content
    assert "Warnings about this owner map" in content


def test_dry_run_for_another_organization_is_a_form_error(as_owner, org_b, b):
    response = as_owner.get(
        DRY_RUN,
        {
            "organization": org_b.pk,
            "event_type": "page.published",
            "client_tier": "enterprise",
            "deliverable_type": "landing_page",
        },
    )

    assert response.status_code == 200
    assert response.context["form"].errors["organization"]
    assert response.context["resolution"] is None
    content = response.content.decode()
    assert "Bravo" not in content and f"Rule #{b.rule.pk}" not in content


def test_dry_run_organization_choices_are_only_administered_ones(as_owner, org_a):
    form = as_owner.get(DRY_RUN).context["form"]

    assert list(form.fields["organization"].queryset) == [org_a]


def test_rule_add_form_offers_only_own_roles_and_policies(as_owner, a, b):
    response = as_owner.get("/admin/owners/ownerrule/add/")

    fields = response.context["adminform"].form.fields
    assert set(fields["owner_role"].queryset) == {a.role, a.other_role}
    assert set(fields["backup_role"].queryset) == {a.role, a.other_role}
    assert set(fields["escalation_policy"].queryset) == {a.policy}
    assert "Bravo" not in response.content.decode()


def test_rule_cannot_be_saved_with_another_organizations_role(as_owner, org_a, b):
    response = as_owner.post(
        "/admin/owners/ownerrule/add/",
        {
            "organization": org_a.pk,
            "owner_role": b.role.pk,
            "respond_minutes": 60,
            "resolve_minutes": 480,
            "position": 100,
            "is_active": "on",
        },
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["owner_role"]
    with scopes_disabled():
        assert OwnerRule.objects.filter(organization=org_a).count() == 1


def test_policy_step_inline_offers_only_own_roles_people_and_webhooks(
    as_owner, a, b, owner, member, viewer, outsider
):
    response = as_owner.get(f"/admin/owners/escalationpolicy/{a.policy.pk}/change/")

    [steps] = response.context["inline_admin_formsets"]
    with scopes_disabled():  # as in the admin request
        fields = steps.formset.empty_form.fields
        assert set(fields["target_role"].queryset) == {a.role, a.other_role}
        assert set(fields["webhook"].queryset) == {a.webhook}
        assert set(fields["people"].queryset) == {owner, member, viewer}
    assert "outsider@b.example" not in response.content.decode()


def test_rota_inlines_offer_only_own_people(as_owner, a, outsider, owner):
    response = as_owner.get(f"/admin/owners/rota/{a.rota.pk}/change/")

    formsets = {
        f.formset.model.__name__: f.formset for f in response.context["inline_admin_formsets"]
    }
    assert set(formsets) == {"RotaLayer", "RotaOverride"}
    with scopes_disabled():  # as in the admin request
        people = set(formsets["RotaOverride"].empty_form.fields["person"].queryset)
        roles = set(response.context["adminform"].form.fields["role"].queryset)
    assert owner in people and outsider not in people
    assert roles == {a.role, a.other_role}
    assert "outsider@b.example" not in response.content.decode()


def _calendar_form(org, **overrides):
    data = {
        "organization": org.pk,
        "name": "Client hours",
        "timezone": "Europe/Berlin",
        "working_hours": '{"0": [["09:00", "17:00"]]}',
        "holidays-TOTAL_FORMS": "0",
        "holidays-INITIAL_FORMS": "0",
        "holidays-MIN_NUM_FORMS": "0",
        "holidays-MAX_NUM_FORMS": "1000",
    }
    data.update(overrides)
    return data


@pytest.mark.parametrize(
    "working_hours",
    [
        "{not json",
        '{"9": [["09:00", "17:00"]]}',
        '{"0": [["nine", "five"]]}',
        '["09:00", "17:00"]',
        '{"0": [["17:00", "09:00"]]}',
    ],
)
def test_calendar_with_bad_working_hours_is_a_form_error(as_owner, org_a, working_hours):
    response = as_owner.post(
        "/admin/owners/businesscalendar/add/", _calendar_form(org_a, working_hours=working_hours)
    )

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["working_hours"]
    with scopes_disabled():
        assert not BusinessCalendar.objects.filter(name="Client hours").exists()


def test_calendar_with_good_working_hours_is_saved_in_the_organization(as_owner, org_a):
    response = as_owner.post("/admin/owners/businesscalendar/add/", _calendar_form(org_a))

    assert response.status_code == 302
    with scopes_disabled():
        calendar = BusinessCalendar.objects.get(name="Client hours")
    assert calendar.organization == org_a
    assert calendar.working_hours == {"0": [["09:00", "17:00"]]}


def test_calendar_cannot_be_added_to_another_organization(as_owner, org_b):
    response = as_owner.post("/admin/owners/businesscalendar/add/", _calendar_form(org_b))

    assert response.status_code == 200
    assert response.context["adminform"].form.errors["organization"]
    with scopes_disabled():
        assert not BusinessCalendar.objects.filter(name="Client hours").exists()


def test_policy_inline_steps_take_the_policys_organization(as_owner, org_a, a):
    response = as_owner.post(
        "/admin/owners/escalationpolicy/add/",
        {
            "organization": org_a.pk,
            "name": "Urgent",
            "repeat": 1,
            "steps-TOTAL_FORMS": "1",
            "steps-INITIAL_FORMS": "0",
            "steps-MIN_NUM_FORMS": "0",
            "steps-MAX_NUM_FORMS": "1000",
            "steps-0-position": "0",
            "steps-0-wait_minutes": "15",
            "steps-0-wait_kind": "wall",
            "steps-0-action": "notify_role",
            "steps-0-target_role": a.other_role.pk,
        },
    )

    assert response.status_code == 302, response.context and response.context["errors"]
    with scope(organization=org_a):
        policy = EscalationPolicy.objects.get(name="Urgent")
        [step] = policy.steps.all()
        assert (step.organization_id, step.target_role) == (org_a.pk, a.other_role)


def test_ticket_change_page_shows_the_snapshot(as_owner, a):
    response = as_owner.get(f"/admin/owners/ticket/{a.ticket.pk}/change/")

    assert response.status_code == 200
    assert "Alpha broken landing page" in response.content.decode()
    assert as_owner.get("/admin/owners/ticket/add/").status_code == 403


def test_member_who_is_not_staff_is_sent_to_the_login(client, member, a):
    client.force_login(member)

    for path in ("/admin/owners/ownerrule/", DRY_RUN):
        response = client.get(path)
        assert response.status_code == 302
        assert response.url.startswith("/admin/login/")


@pytest.fixture
def staff_member(org_a):
    """Staff (e.g. an admin of another organization) but only an account manager in A."""
    user = create_user("staff-am@a.example", org_a, Role.ACCOUNT_MANAGER, PASSWORD)
    user.is_staff = True
    user.save()
    return user


@pytest.mark.parametrize(
    "path",
    [
        "/admin/owners/ownerrule/",
        "/admin/owners/ownerrole/",
        "/admin/owners/rota/",
        "/admin/owners/ticket/",
        DRY_RUN,
    ],
)
def test_staff_without_the_admin_role_is_forbidden(client, staff_member, org_a, a, path):
    client.force_login(staff_member)

    response = client.get(path, {"organization": org_a.pk} if path == DRY_RUN else None)

    assert response.status_code == 403
    assert "Alpha" not in response.content.decode()


def test_other_organizations_rows_are_untouched_by_a_posted_change(as_owner, org_a, b):
    as_owner.post(
        f"/admin/owners/ownerrole/{b.role.pk}/change/",
        {"organization": org_a.pk, "slug": "stolen", "name": "Stolen"},
    )

    with scopes_disabled():
        b.role.refresh_from_db()
        assert (b.role.slug, b.role.organization_id) == ("bravo-seo", b.rule.organization_id)
        assert Rota.objects.filter(role=b.role).exists()
        assert Ticket.objects.filter(organization=b.rule.organization_id).count() == 1


def _layer_form(org, role, **layer):
    data = {
        "organization": org.pk,
        "role": role.pk,
        "timezone": "Europe/Berlin",
        "layers-TOTAL_FORMS": "1",
        "layers-INITIAL_FORMS": "0",
        "layers-MIN_NUM_FORMS": "0",
        "layers-MAX_NUM_FORMS": "1000",
        "layers-0-name": "weekly",
        "layers-0-priority": "1",
        "layers-0-frequency": "weekly",
        "layers-0-interval": "1",
        "layers-0-handoff_time": "09:00",
        "layers-0-start_date": "2026-01-05",
        "layers-0-people": "[]",
        "layers-0-windows": "[]",
        "overrides-TOTAL_FORMS": "0",
        "overrides-INITIAL_FORMS": "0",
        "overrides-MIN_NUM_FORMS": "0",
        "overrides-MAX_NUM_FORMS": "1000",
    }
    data.update({f"layers-0-{key}": value for key, value in layer.items()})
    return data


def test_rota_with_a_layer_is_built_in_the_admin(as_owner, org_a, a, member, owner):
    response = as_owner.post(
        "/admin/owners/rota/add/",
        _layer_form(org_a, a.other_role, people=f"[{owner.pk}, {member.pk}]"),
    )

    assert response.status_code == 302, response.context and response.context["errors"]
    with scope(organization=org_a):
        rota = Rota.objects.get(role=a.other_role)
        [layer] = rota.layers.all()
        assert (layer.organization_id, layer.people) == (org_a.pk, [owner.pk, member.pk])


@pytest.mark.parametrize(
    "windows",
    ['[{"weekdays": [0], "start": "nine", "end": "18:00"}]', '[{"start": "09:00"}]'],
)
def test_rota_layer_with_bad_windows_is_a_form_error(as_owner, org_a, a, member, windows):
    rota_url = f"/admin/owners/rota/{a.rota.pk}/change/"
    data = _layer_form(org_a, a.role, people=f"[{member.pk}]", windows=windows)

    response = as_owner.post(rota_url, data)

    assert response.status_code == 200
    assert response.context["errors"]
    with scope(organization=org_a):
        assert a.rota.layers.count() == 1


def test_rota_layer_with_someone_from_another_organization_is_refused(as_owner, org_a, a, outsider):
    response = as_owner.post(
        f"/admin/owners/rota/{a.rota.pk}/change/",
        _layer_form(org_a, a.role, people=f"[{outsider.pk}]"),
    )

    assert response.status_code == 200
    assert "Not members of this organization" in response.content.decode()
    with scope(organization=org_a):
        assert a.rota.layers.count() == 1


# --- seeding public holidays --------------------------------------------------------------

CALENDARS = "/admin/owners/businesscalendar/"


def _seed_holidays(client, calendars, **fields):
    data = {
        "action": "seed_public_holidays",
        "_selected_action": [c.pk for c in calendars],
        "country": "DE",
        "subdivision": "BE",
        "years": "2027",
        **fields,
    }
    return client.post(CALENDARS, data, follow=True)


def _holidays(calendar):
    with scopes_disabled():
        return dict(calendar.holidays.values_list("date", "name"))


def test_seeding_berlin_2027_adds_the_librarys_holidays_once(as_owner, a):
    import holidays

    expected = holidays.country_holidays("DE", subdiv="BE", years=2027)
    response = _seed_holidays(as_owner, [a.calendar])
    assert f"Added {len(expected)} holidays to 1 calendar(s)." in response.content.decode()
    seeded = _holidays(a.calendar)
    assert set(seeded) == set(expected)
    assert seeded[date(2027, 1, 1)] == expected[date(2027, 1, 1)]  # New Year
    assert date(2027, 3, 26) in seeded  # Good Friday
    assert date(2027, 3, 8) in seeded  # Women's Day: Berlin only, not national
    again = _seed_holidays(as_owner, [a.calendar])
    assert "Added 0 holidays to 1 calendar(s)." in again.content.decode()
    assert _holidays(a.calendar) == seeded


def test_seeding_keeps_a_hand_entered_holiday_and_adds_the_rest(as_owner, a):
    with scopes_disabled():
        a.calendar.holidays.create(
            organization=a.calendar.organization, date=date(2027, 1, 1), name="Office closed"
        )
    _seed_holidays(as_owner, [a.calendar], subdivision="", years="2027")
    seeded = _holidays(a.calendar)
    assert seeded[date(2027, 1, 1)] == "Office closed"
    assert date(2027, 3, 8) not in seeded  # national holidays only without a region


def test_seeding_never_touches_another_organizations_calendar(as_owner, a, b):
    response = _seed_holidays(as_owner, [a.calendar, b.calendar])
    assert "to 1 calendar(s)." in response.content.decode()
    assert _holidays(b.calendar) == {}


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"country": "XX"}, "No holiday calendar for country &#x27;XX&#x27;"),
        ({"subdivision": "ZZ"}, "DE has no region &#x27;ZZ&#x27;"),
        ({"country": ""}, "Country: This field is required."),
        ({"years": "next year"}, "Years must be like 2027, 2027,2028 or 2027-2029."),
        ({"years": "2020-2040"}, "Give 1 to 10 years between 1900 and 2100."),
    ],
)
def test_seeding_with_bad_input_is_a_message_and_stores_nothing(as_owner, a, fields, message):
    response = _seed_holidays(as_owner, [a.calendar], **fields)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert _holidays(a.calendar) == {}
