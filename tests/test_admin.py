"""The tenant-aware Django admin: an organization's admin sees and edits only their own rows.

Rows are seeded in both organizations so that every "only A" assertion has something of
B's to leave out.
"""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.messages import get_messages
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django_scopes import scope, scopes_disabled
from rest_framework.test import APIClient

from deliveries.models import Client, Deliverable, Event, Tier
from deliveries.services import ingest_events, process_event
from meshline.models import ApiKey, Membership, Organization, Role

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _ingest(organization, ref, client_ref, title):
    event = {
        "event_type": "intake.received",
        "deliverable_id": ref,
        "client_id": client_ref,
        "idempotency_key": f"{ref}-intake",
        "actor": {"role": "pm_tool", "id": "asana"},
        "occurred_at": T0.isoformat(),
        "payload": {"deliverable_type": "landing_page", "title": title},
    }
    with scope(organization=organization):
        [result] = ingest_events(organization, [event])
        assert result.status == "accepted", result.as_dict()
        process_event(result.event_id)


class Seed:
    """What was created for each organization, by primary key."""

    def __init__(self, org_a, org_b, client_a, client_b, key_a, key_b):
        self.org_a, self.org_b = org_a, org_b
        self.client_a, self.client_b = client_a, client_b
        self.key_a, self.key_a_plaintext = key_a
        self.key_b, self.key_b_plaintext = key_b
        with scopes_disabled():
            self.deliverable_a = Deliverable.objects.get(organization=org_a)
            self.deliverable_b = Deliverable.objects.get(organization=org_b)
            self.event_a = Event.objects.get(organization=org_a)
            self.event_b = Event.objects.get(organization=org_b)
        self.membership_b = Membership.objects.get(organization=org_b)


@pytest.fixture
def seed(
    org_a, org_b, owner, member, viewer, outsider, client_acme, client_b_acme, api_key_a, api_key_b
):
    with scope(organization=org_a):
        Client.objects.create(
            organization=org_a, client_id="globex", name="Globex", tier=Tier.PREMIUM
        )
    _ingest(org_a, "LP-A1", "acme", "A's landing page")
    _ingest(org_b, "LP-B1", "acme", "Secret B launch")
    return Seed(org_a, org_b, client_acme, client_b_acme, api_key_a, api_key_b)


@pytest.fixture
def as_owner(client, owner):
    client.force_login(owner)
    return client


@pytest.fixture
def superuser(django_user_model):
    return django_user_model.objects.create_superuser(
        "root@meshline.example", "root@meshline.example", "x"
    )


CHANGELISTS = [
    "/admin/deliveries/client/",
    "/admin/deliveries/deliverable/",
    "/admin/deliveries/event/",
    "/admin/meshline/apikey/",
    "/admin/meshline/membership/",
    "/admin/meshline/organization/",
]
B_MARKERS = ["B&#x27;s Acme", "LP-B1", "Secret B launch", "outsider@b.example", "Organization B"]


def _organizations_of(response) -> set[int]:
    rows = response.context["cl"].result_list
    assert rows, "the changelist should not be empty"
    return {getattr(row, "organization_id", row.pk) for row in rows}


@pytest.mark.parametrize("url", CHANGELISTS)
def test_org_admin_changelists_show_only_their_organizations_rows(as_owner, seed, url):
    response = as_owner.get(url)
    assert response.status_code == 200
    assert _organizations_of(response) == {seed.org_a.pk}
    content = response.content.decode()
    for marker in B_MARKERS:
        assert marker not in content


def test_org_admin_sees_every_row_of_their_organization(as_owner, seed):
    clients = as_owner.get("/admin/deliveries/client/").context["cl"].result_list
    assert sorted(c.client_id for c in clients) == ["acme", "globex"]
    memberships = as_owner.get("/admin/meshline/membership/").context["cl"].result_list
    assert sorted(m.user.email for m in memberships) == [
        "member@a.example",
        "owner@a.example",
        "viewer@a.example",
    ]


def test_other_admin_sees_only_their_own_organization(client, outsider, seed):
    client.force_login(outsider)
    response = client.get("/admin/deliveries/deliverable/")
    assert _organizations_of(response) == {seed.org_b.pk}
    assert "LP-A1" not in response.content.decode()


def test_admin_index_lists_the_tenant_models(as_owner, seed):
    response = as_owner.get("/admin/")
    assert response.status_code == 200
    content = response.content.decode()
    for url in CHANGELISTS:
        assert f'href="{url}"' in content
    # Users and groups are the operators' business, not an organization admin's.
    assert 'href="/admin/auth/user/"' not in content


@pytest.mark.parametrize(
    "path",
    [
        "/admin/deliveries/client/{s.client_b.pk}/change/",
        "/admin/deliveries/deliverable/{s.deliverable_b.pk}/change/",
        "/admin/deliveries/event/{s.event_b.pk}/change/",
        "/admin/meshline/apikey/{s.key_b.pk}/change/",
        "/admin/meshline/membership/{s.membership_b.pk}/change/",
        "/admin/meshline/organization/{s.org_b.pk}/change/",
        "/admin/deliveries/client/{s.client_b.pk}/history/",
        "/admin/deliveries/client/{s.client_b.pk}/delete/",
    ],
)
def test_other_organizations_rows_are_not_shown(as_owner, seed, path):
    response = as_owner.get(path.format(s=seed))
    # Django's admin answers an object outside get_queryset with a redirect to the index
    # and a "doesn't exist" message; either way nothing of B's may be rendered.
    assert response.status_code in (302, 404)
    if response.status_code == 302:
        assert response.url == "/admin/"
        assert any("exist" in str(m) for m in get_messages(response.wsgi_request))
    followed = as_owner.get("/admin/")
    for marker in B_MARKERS:
        assert marker not in response.content.decode()
        assert marker not in followed.content.decode()


def test_other_organizations_client_cannot_be_changed_by_post(as_owner, seed):
    as_owner.post(
        f"/admin/deliveries/client/{seed.client_b.pk}/change/",
        {
            "organization": seed.org_a.pk,
            "client_id": "stolen",
            "name": "Stolen",
            "tier": "standard",
        },
    )
    with scopes_disabled():
        seed.client_b.refresh_from_db()
    assert (seed.client_b.organization_id, seed.client_b.name) == (seed.org_b.pk, "B's Acme")


def _choices(response, field) -> set:
    return set(response.context["adminform"].form.fields[field].queryset)


def test_foreign_key_choices_are_limited_to_the_organization(as_owner, seed):
    response = as_owner.get(f"/admin/deliveries/deliverable/{seed.deliverable_a.pk}/change/")
    assert response.status_code == 200
    clients = _choices(response, "client")
    assert {c.client_id for c in clients} == {"acme", "globex"}
    assert {c.organization_id for c in clients} == {seed.org_a.pk}
    assert _choices(response, "organization") == {seed.org_a}
    assert "B&#x27;s Acme" not in response.content.decode()

    for url in ["/admin/meshline/membership/add/", "/admin/deliveries/client/add/"]:
        response = as_owner.get(url)
        assert response.status_code == 200
        assert _choices(response, "organization") == {seed.org_a}
        assert "Organization B" not in response.content.decode()

    response = as_owner.get(f"/admin/meshline/apikey/{seed.key_a.pk}/change/")
    assert _choices(response, "organization") == {seed.org_a}


def test_membership_user_choices_do_not_reveal_other_organizations_users(as_owner, seed):
    response = as_owner.get("/admin/meshline/membership/add/")
    emails = {user.email for user in _choices(response, "user")}
    assert emails == {"owner@a.example", "member@a.example", "viewer@a.example"}
    assert "outsider@b.example" not in response.content.decode()


def test_org_admin_cannot_pull_another_organizations_user_into_theirs(as_owner, outsider, seed):
    response = as_owner.post(
        "/admin/meshline/membership/add/",
        {"user": outsider.pk, "organization": seed.org_a.pk, "role": Role.ADMIN},
    )
    assert response.status_code == 200
    assert "user" in response.context["adminform"].form.errors
    assert not Membership.objects.filter(user=outsider, organization=seed.org_a).exists()


def test_org_admin_cannot_create_rows_in_another_organization(as_owner, seed):
    response = as_owner.post(
        "/admin/deliveries/client/add/",
        {
            "organization": seed.org_b.pk,
            "client_id": "planted",
            "name": "Planted",
            "tier": "standard",
        },
    )
    assert response.status_code == 200  # the form again, with an error
    assert "organization" in response.context["adminform"].form.errors
    with scopes_disabled():
        assert not Client.objects.filter(client_id="planted").exists()


def test_org_admin_can_add_a_client_to_their_organization(as_owner, seed):
    response = as_owner.post(
        "/admin/deliveries/client/add/",
        {
            "organization": seed.org_a.pk,
            "client_id": "initech",
            "name": "Initech",
            "tier": "standard",
        },
    )
    assert response.status_code == 302
    with scope(organization=seed.org_a):
        assert Client.objects.get(client_id="initech").organization == seed.org_a


@pytest.mark.parametrize("who", ["member", "viewer"])
@pytest.mark.parametrize("url", ["/admin/", *CHANGELISTS])
def test_non_admin_members_cannot_use_the_admin(client, seed, request, who, url):
    client.force_login(request.getfixturevalue(who))
    response = client.get(url)
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")


def test_staff_flag_alone_does_not_open_an_organizations_rows(client, member, seed):
    """A staff user who administers no organization (an admin demoted to account manager)."""
    member.is_staff = True
    member.save()
    client.force_login(member)
    index = client.get("/admin/")
    assert index.status_code == 200
    assert 'href="/admin/deliveries/client/"' not in index.content.decode()
    for url in CHANGELISTS:
        assert client.get(url).status_code == 403
    assert client.get(f"/admin/deliveries/client/{seed.client_a.pk}/change/").status_code == 403


def test_event_admin_is_read_only(as_owner, seed):
    assert as_owner.get("/admin/deliveries/event/add/").status_code == 403
    change_url = f"/admin/deliveries/event/{seed.event_a.pk}/change/"
    response = as_owner.get(change_url)
    assert response.status_code == 200  # viewable
    assert response.context["has_change_permission"] is False
    assert response.context["has_delete_permission"] is False
    assert 'name="_save"' not in response.content.decode()
    assert as_owner.post(change_url, {"event_type": "page.published"}).status_code == 403
    assert as_owner.get(f"/admin/deliveries/event/{seed.event_a.pk}/delete/").status_code == 403
    assert (
        as_owner.post(
            f"/admin/deliveries/event/{seed.event_a.pk}/delete/", {"post": "yes"}
        ).status_code
        == 403
    )
    changelist = as_owner.get("/admin/deliveries/event/")
    assert "delete_selected" not in changelist.content.decode()
    assert 'href="/admin/deliveries/event/add/"' not in changelist.content.decode()
    as_owner.post(
        "/admin/deliveries/event/",
        {"action": "delete_selected", "_selected_action": [seed.event_a.pk], "post": "yes"},
    )
    with scopes_disabled():
        assert Event.objects.filter(pk=seed.event_a.pk).exists()
        assert Event.objects.get(pk=seed.event_a.pk).event_type == "intake.received"


def test_api_keys_are_not_created_or_deleted_in_the_admin(as_owner, seed):
    assert as_owner.get("/admin/meshline/apikey/add/").status_code == 403
    assert as_owner.get(f"/admin/meshline/apikey/{seed.key_a.pk}/delete/").status_code == 403
    response = as_owner.get(f"/admin/meshline/apikey/{seed.key_a.pk}/change/")
    assert response.status_code == 200
    assert seed.key_a_plaintext not in response.content.decode()


def _api(plaintext):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {plaintext}")
    return api


def test_revoke_action_revokes_the_key_and_the_api_refuses_it(as_owner, seed):
    assert _api(seed.key_a_plaintext).get("/api/v1/clients").status_code == 200
    response = as_owner.post(
        "/admin/meshline/apikey/",
        {"action": "revoke", "_selected_action": [seed.key_a.pk], "index": 0},
        follow=True,
    )
    assert response.status_code == 200
    assert "Revoked 1 key(s)." in [str(m) for m in response.context["messages"]]
    with scopes_disabled():
        seed.key_a.refresh_from_db()
    assert seed.key_a.revoked_at is not None
    refused = _api(seed.key_a_plaintext).get("/api/v1/clients")
    assert refused.status_code == 401
    assert "revoked" in refused.content.decode()
    # Organization B's key is untouched.
    assert _api(seed.key_b_plaintext).get("/api/v1/clients").status_code == 200


def test_revoke_action_cannot_reach_another_organizations_key(as_owner, seed):
    as_owner.post(
        "/admin/meshline/apikey/",
        {"action": "revoke", "_selected_action": [seed.key_b.pk], "index": 0},
    )
    with scopes_disabled():
        seed.key_b.refresh_from_db()
    assert seed.key_b.revoked_at is None
    assert _api(seed.key_b_plaintext).get("/api/v1/clients").status_code == 200


def test_superuser_sees_both_organizations(client, superuser, seed):
    client.force_login(superuser)
    for url in [
        "/admin/deliveries/client/",
        "/admin/deliveries/deliverable/",
        "/admin/meshline/apikey/",
    ]:
        response = client.get(url)
        assert response.status_code == 200
        assert _organizations_of(response) == {seed.org_a.pk, seed.org_b.pk}
    response = client.get(f"/admin/deliveries/deliverable/{seed.deliverable_b.pk}/change/")
    assert response.status_code == 200
    assert {c.organization_id for c in _choices(response, "client")} == {
        seed.org_a.pk,
        seed.org_b.pk,
    }
    assert _choices(response, "organization") == set(Organization.objects.all())


def test_org_admin_sets_the_organization_time_zone_and_a_bad_one_is_a_field_error(as_owner, seed):
    url = f"/admin/meshline/organization/{seed.org_a.pk}/change/"
    form = {"slug": seed.org_a.slug, "name": seed.org_a.name}
    response = as_owner.post(url, {**form, "timezone": "Mars/Olympus"})
    assert response.status_code == 200
    assert response.context["adminform"].form.errors["timezone"] == [
        "'Mars/Olympus' is not an IANA time zone (e.g. Europe/Berlin)."
    ]
    seed.org_a.refresh_from_db()
    assert seed.org_a.timezone == "UTC"

    assert as_owner.post(url, {**form, "timezone": "Europe/Berlin"}).status_code == 302
    seed.org_a.refresh_from_db()
    assert seed.org_a.timezone == "Europe/Berlin"


@pytest.mark.parametrize("url", ["/admin/", "/admin/deliveries/client/", "/admin/owners/ticket/"])
def test_admin_pages_ask_who_administers_what_once(as_owner, seed, url):
    """Every model admin's permission checks asked the database again (163 queries for the
    index page); the answer is kept for the request."""
    with CaptureQueriesContext(connection) as queries:
        assert as_owner.get(url).status_code == 200
    assert len(queries) <= 15, [q["sql"][:120] for q in queries.captured_queries]


def test_a_revoked_key_cannot_be_unrevoked_by_saving_the_model(seed):
    with scopes_disabled():
        seed.key_a.revoke()
        revoked_at = seed.key_a.revoked_at
        key = ApiKey.objects.get(pk=seed.key_a.pk)
        key.revoked_at = None
        with pytest.raises(ValidationError, match="cannot be undone"):
            key.save()
        key.revoked_at = revoked_at + timedelta(days=1)
        with pytest.raises(ValidationError, match="cannot be undone"):
            key.save()
        assert ApiKey.objects.get(pk=seed.key_a.pk).revoked_at == revoked_at
    assert _api(seed.key_a_plaintext).get("/api/v1/clients").status_code == 401


def test_revoked_at_is_read_only_in_the_admin_and_a_revoked_key_cannot_be_edited(as_owner, seed):
    url = f"/admin/meshline/apikey/{seed.key_a.pk}/change/"
    form = as_owner.get(url).context["adminform"].form
    assert "revoked_at" not in form.fields
    # Posting revoked_at to an active key's form does not revoke or set it.
    data = {"organization": seed.org_a.pk, "name": "renamed", "scopes": '["events:read"]'}
    assert as_owner.post(url, {**data, "revoked_at": ""}).status_code == 302
    with scopes_disabled():
        seed.key_a.refresh_from_db()
        assert seed.key_a.name == "renamed"
        seed.key_a.revoke()
    # Once revoked: shown, not editable.
    response = as_owner.get(url)
    assert response.status_code == 200
    assert not response.context["has_change_permission"]
    assert as_owner.post(url, {**data, "name": "revived", "revoked_at": ""}).status_code == 403
    with scopes_disabled():
        seed.key_a.refresh_from_db()
    assert seed.key_a.name == "renamed"
    assert seed.key_a.revoked_at is not None
    assert _api(seed.key_a_plaintext).get("/api/v1/clients").status_code == 401
