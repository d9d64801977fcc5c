"""Operator commands: their names, arguments and output are scripted against, so pin them."""

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django_scopes import scope, scopes_disabled
from rest_framework.test import APIClient

from deliveries.models import (
    Client,
    Deliverable,
    Event,
    EventProcessing,
    EventSource,
    LifecycleState,
)
from devtools.demo import DEMO_CLIENTS, DEMO_SLUG, DEMO_USERS
from meshline.models import ALL_API_SCOPES, ApiKey, Membership, Organization, Role

pytestmark = pytest.mark.django_db

KEY_PATTERN = re.compile(r"^ml_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$")


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def _api(plaintext):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {plaintext}")
    return api


# --- create_organization -----------------------------------------------------------------------


def test_create_organization_creates_then_renames():
    out = run("create_organization", "acme-agency", "--name", "Acme Agency")
    assert out.strip() == "Created organization acme-agency (Acme Agency)"
    assert Organization.objects.get(slug="acme-agency").name == "Acme Agency"

    out = run("create_organization", "acme-agency", "--name", "Acme Agency Ltd")
    assert out.strip() == "Updated organization acme-agency (Acme Agency Ltd)"
    assert Organization.objects.filter(slug="acme-agency").count() == 1
    assert Organization.objects.get(slug="acme-agency").name == "Acme Agency Ltd"


@pytest.mark.parametrize("slug", ["Acme Agency", "acme/agency", "acme.agency", ""])
def test_create_organization_rejects_an_invalid_slug(slug):
    with pytest.raises(CommandError, match="Invalid slug"):
        run("create_organization", slug, "--name", "Acme")
    assert not Organization.objects.exists()


def test_create_organization_sets_its_time_zone_and_refuses_an_unknown_one():
    run("create_organization", "acme-agency", "--name", "Acme Agency")
    assert Organization.objects.get(slug="acme-agency").timezone == "UTC"
    run("create_organization", "acme-agency", "--name", "Acme", "--timezone", "Europe/Berlin")
    assert Organization.objects.get(slug="acme-agency").timezone == "Europe/Berlin"

    with pytest.raises(CommandError, match="'Mars/Olympus' is not an IANA time zone"):
        run("create_organization", "mars", "--name", "Mars", "--timezone", "Mars/Olympus")
    assert not Organization.objects.filter(slug="mars").exists()  # nothing half-created


def test_create_organization_requires_a_name():
    with pytest.raises(CommandError, match="--name"):
        run("create_organization", "acme")


# --- create_user -------------------------------------------------------------------------------


def test_create_user_creates_a_member_with_the_role(client, org_a):
    out = run(
        "create_user",
        "ann@a.example",
        "--org",
        "org-a",
        "--role",
        "viewer",
        "--password",
        "tulip-harbor-91",
    )
    assert out.strip() == "ann@a.example is viewer in org-a"
    user = get_user_model().objects.get(username="ann@a.example")
    assert user.email == "ann@a.example"
    assert not user.is_staff
    assert Membership.objects.get(user=user).organization == org_a
    assert Membership.objects.get(user=user).role == Role.VIEWER
    assert client.login(username="ann@a.example", password="tulip-harbor-91")
    assert client.get("/o/org-a/").status_code == 200


def test_create_user_again_resets_the_password_and_role(client, org_a):
    run(
        "create_user",
        "ann@a.example",
        "--org",
        "org-a",
        "--role",
        "viewer",
        "--password",
        "old-lantern-31",
    )
    run(
        "create_user",
        "ann@a.example",
        "--org",
        "org-a",
        "--role",
        "account_manager",
        "--password",
        "new-compass-72",
    )
    assert get_user_model().objects.filter(username="ann@a.example").count() == 1
    assert Membership.objects.get(user__username="ann@a.example").role == Role.ACCOUNT_MANAGER
    assert not client.login(username="ann@a.example", password="old-lantern-31")
    assert client.login(username="ann@a.example", password="new-compass-72")


def test_create_user_adds_a_second_organization(org_a, org_b):
    run(
        "create_user",
        "ann@a.example",
        "--org",
        "org-a",
        "--role",
        "viewer",
        "--password",
        "tulip-harbor-91",
    )
    run(
        "create_user",
        "ann@a.example",
        "--org",
        "org-b",
        "--role",
        "finance",
        "--password",
        "tulip-harbor-91",
    )
    roles = dict(
        Membership.objects.filter(user__username="ann@a.example").values_list(
            "organization__slug", "role"
        )
    )
    assert roles == {"org-a": Role.VIEWER, "org-b": Role.FINANCE}


def test_create_user_admin_role_makes_staff(client, org_a):
    run(
        "create_user",
        "boss@a.example",
        "--org",
        "org-a",
        "--role",
        "admin",
        "--password",
        "tulip-harbor-91",
    )
    user = get_user_model().objects.get(username="boss@a.example")
    assert user.is_staff
    assert not user.is_superuser
    assert client.login(username="boss@a.example", password="tulip-harbor-91")
    assert client.get("/admin/deliveries/client/").status_code == 200


def test_create_user_for_an_unknown_organization_fails(db):
    with pytest.raises(CommandError, match="No organization 'nowhere'"):
        run(
            "create_user",
            "ann@a.example",
            "--org",
            "nowhere",
            "--role",
            "viewer",
            "--password",
            "x",
        )
    assert not get_user_model().objects.exists()


@pytest.mark.parametrize("role", ["owner", "superuser", "Admin", ""])
def test_create_user_rejects_an_unknown_role(org_a, role):
    with pytest.raises(CommandError, match="invalid choice"):
        run("create_user", "ann@a.example", "--org", "org-a", "--role", role, "--password", "x")
    assert not get_user_model().objects.exists()
    assert not Membership.objects.exists()


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("short1", "too short"),
        ("password123", "too common"),
        ("8362950174", "entirely numeric"),
        ("ann@a.example", "too similar"),
    ],
)
def test_create_user_rejects_a_weak_password_and_stores_nothing(org_a, password, reason):
    with pytest.raises(CommandError, match=reason):
        run(
            "create_user",
            "ann@a.example",
            "--org",
            "org-a",
            "--role",
            "viewer",
            "--password",
            password,
        )
    assert not get_user_model().objects.exists()
    assert not Membership.objects.exists()


def test_create_user_keeps_the_old_password_when_the_new_one_is_weak(client, org_a):
    run(
        "create_user",
        "ann@a.example",
        "--org",
        "org-a",
        "--role",
        "viewer",
        "--password",
        "tulip-harbor-91",
    )
    with pytest.raises(CommandError, match="too short"):
        run("create_user", "ann@a.example", "--org", "org-a", "--role", "admin", "--password", "x")
    assert client.login(username="ann@a.example", password="tulip-harbor-91")
    assert Membership.objects.get(user__username="ann@a.example").role == Role.VIEWER


def test_create_user_rejects_an_invalid_email(org_a):
    with pytest.raises(CommandError, match="email"):
        run("create_user", "not-an-email", "--org", "org-a", "--role", "viewer", "--password", "x")
    assert not get_user_model().objects.exists()


# --- create_api_key ----------------------------------------------------------------------------


def test_create_api_key_prints_the_key_alone_on_its_last_line(org_a, client_acme):
    out = run("create_api_key", "org-a", "--name", "cms")
    lines = out.splitlines()
    plaintext = lines[-1]
    assert KEY_PATTERN.match(plaintext), out
    assert plaintext not in "\n".join(lines[:-1])
    assert "not shown again" in lines[-2]

    response = _api(plaintext).get("/api/v1/clients")
    assert response.status_code == 200, response.content
    assert [c["client_id"] for c in response.json()["results"]] == ["acme"]
    with scopes_disabled():
        api_key = ApiKey.objects.get(name="cms")
    assert api_key.organization == org_a
    assert api_key.scopes == ALL_API_SCOPES
    assert api_key.last_used_at is not None


def test_created_key_is_stored_hashed(org_a):
    plaintext = run("create_api_key", "org-a", "--name", "cms").splitlines()[-1]
    with scopes_disabled():
        api_key = ApiKey.objects.get(name="cms")
        stored = list(ApiKey.objects.filter(pk=api_key.pk).values().get().values())
    secret = plaintext.split("_", 2)[2]
    assert api_key.digest == ApiKey.digest_for(plaintext)
    assert api_key.digest != plaintext
    assert not any(secret in str(value) for value in stored)


def test_created_key_belongs_to_its_organization_only(org_a, org_b, client_b_acme):
    plaintext = run("create_api_key", "org-a", "--name", "cms").splitlines()[-1]
    response = _api(plaintext).get("/api/v1/clients")
    assert response.status_code == 200
    assert response.json()["results"] == []  # B's client 'acme' is not A's
    assert _api(plaintext).get("/api/v1/clients/acme").status_code == 404


def test_create_api_key_with_limited_scopes(org_a, client_acme):
    out = run("create_api_key", "org-a", "--name", "reader", "--scopes", "clients:read")
    plaintext = out.splitlines()[-1]
    assert KEY_PATTERN.match(plaintext)
    assert _api(plaintext).get("/api/v1/clients").status_code == 200
    refused = _api(plaintext).post(
        "/api/v1/clients", {"client_id": "x", "name": "X"}, format="json"
    )
    assert refused.status_code == 403
    assert _api(plaintext).get("/api/v1/deliverables").status_code == 403


@pytest.mark.parametrize("scopes", ["events:delete", "clients:read,everything", "admin"])
def test_create_api_key_rejects_an_unknown_scope(org_a, scopes):
    with pytest.raises(CommandError, match="Unknown scope"):
        run("create_api_key", "org-a", "--name", "cms", "--scopes", scopes)
    with scopes_disabled():
        assert not ApiKey.objects.exists()


def test_create_api_key_for_an_unknown_organization_fails(db):
    with pytest.raises(CommandError, match="No organization 'nowhere'"):
        run("create_api_key", "nowhere", "--name", "cms")


# --- seed_demo ---------------------------------------------------------------------------------


def _demo_counts(organization) -> dict:
    with scope(organization=organization):
        return {
            "clients": Client.objects.filter(organization=organization).count(),
            "deliverables": Deliverable.objects.filter(organization=organization).count(),
            "events": Event.objects.filter(organization=organization).count(),
            # What the seed submits; the other apps may add Meshline's own events besides.
            "submitted": Event.objects.filter(organization=organization, source=EventSource.API)
            .exclude(idempotency_key__startswith="demo-billing-")  # billing's demo overruns
            .count(),
        }


def test_seed_demo_creates_the_demo_organization_and_prints_the_logins(client):
    out = run("seed_demo")
    organization = Organization.objects.get(slug=DEMO_SLUG)
    counts = _demo_counts(organization)
    assert counts["clients"] == len(DEMO_CLIENTS)
    assert counts["deliverables"] >= 20
    assert counts["events"] > counts["deliverables"]

    added = re.search(r"(\d+) events added, (\d+) already present", out)
    assert added, out
    assert (int(added[1]), int(added[2])) == (counts["submitted"], 0)
    assert f"(/o/{DEMO_SLUG}/)" in out
    for email, role in DEMO_USERS:
        assert re.search(rf"^\s+{re.escape(email)}\s+password: \S+\s+\({role.label}\)$", out, re.M)
        assert Membership.objects.get(user__username=email, organization=organization).role == role

    with scope(organization=organization):
        # Processed in-process: the demo shows real lifecycle states without a worker.
        assert not EventProcessing.objects.filter(
            organization=organization, status="pending"
        ).exists()
        states = set(
            Deliverable.objects.filter(organization=organization).values_list("state", flat=True)
        )
    assert LifecycleState.NEW not in states
    assert {LifecycleState.PUBLISHED, LifecycleState.INDEXED} & states

    # The demo API key works against the API.
    key_line = re.search(r"^Demo API key \(shown once\): (\S+)$", out, re.M)
    assert key_line, out
    response = _api(key_line[1]).get("/api/v1/clients")
    assert response.status_code == 200
    assert {c["client_id"] for c in response.json()["results"]} == {c[0] for c in DEMO_CLIENTS}


def test_seed_demo_twice_adds_nothing_and_restores_the_demo_passwords(client):
    run("seed_demo")
    organization = Organization.objects.get(slug=DEMO_SLUG)
    before = _demo_counts(organization)
    admin_email = DEMO_USERS[0][0]
    user = get_user_model().objects.get(username=admin_email)
    user.set_password("changed-by-someone")
    user.save()

    out = run("seed_demo")
    assert f"0 events added, {before['submitted']} already present." in out
    assert "Demo API key" not in out  # the first run's key stands; it is not shown again
    assert _demo_counts(organization) == before
    assert Organization.objects.filter(slug=DEMO_SLUG).count() == 1
    with scopes_disabled():
        assert ApiKey.objects.filter(organization=organization).count() == 1

    password = re.search(rf"{re.escape(admin_email)}\s+password: (\S+)", out)[1]
    assert client.login(username=admin_email, password=password)


def test_printed_demo_login_opens_the_demo_portal(client):
    out = run("seed_demo")
    email, password = re.search(r"^\s+(\S+@\S+)\s+password: (\S+)", out, re.M).groups()
    response = client.post(
        "/accounts/login/", {"username": email, "password": password}, follow=True
    )
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == f"/o/{DEMO_SLUG}/"
    assert response.context["organization"].slug == DEMO_SLUG
    page = client.get(f"/o/{DEMO_SLUG}/deliverables/").context["page"]
    assert (
        page.paginator.count
        == _demo_counts(Organization.objects.get(slug=DEMO_SLUG))["deliverables"]
    )
    detail = client.get(f"/o/{DEMO_SLUG}/deliverables/{page.object_list[0].deliverable_id}/")
    assert detail.status_code == 200
    assert "intake.received" in detail.content.decode()


# --- generate_large_org ------------------------------------------------------------------------


def test_generate_large_org_builds_a_usable_organization_with_its_counts(client):
    """The benchmark's data set, in miniature: COPY on PostgreSQL, bulk_create elsewhere."""
    from deliveries.models import Deliverable, Event, EventCount
    from gates.models import GateEvaluation
    from owners.models import Ticket

    out = StringIO()
    call_command(
        "generate_large_org",
        "--slug",
        "tiny",
        "--events",
        "500",
        "--deliverables",
        "40",
        "--tickets",
        "30",
        "--evaluations",
        "60",
        stdout=out,
    )
    assert "Generated /o/tiny/" in out.getvalue()
    organization = Organization.objects.get(slug="tiny")
    with scope(organization=organization):
        assert Event.objects.filter(organization=organization).count() == 500
        assert Deliverable.objects.filter(organization=organization).count() == 40
        assert Ticket.objects.filter(organization=organization).count() == 30
        assert GateEvaluation.objects.filter(organization=organization).count() == 60
        counts = EventCount.objects.filter(organization=organization)
        assert sum(c.count for c in counts) == 500  # every generated event is counted...
        assert all(c.compacted for c in counts)  # ...and already folded
    client.force_login(get_user_model().objects.get(username="am@northwind.example"))
    assert client.get("/o/tiny/?period=30d").status_code == 200

    with pytest.raises(CommandError, match="already has events"):
        call_command("generate_large_org", "--slug", "tiny", "--events", "5", stdout=StringIO())
