"""Sign-in throttling (django-axes) for the portal and the admin: lockout per account and
address, a message saying when to try again, an operator's unlock."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client as DjangoClient
from django.test import RequestFactory, override_settings

from meshline.signin import client_ip
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

PORTAL = "/accounts/login/"
ADMIN = "/admin/login/"


def attempt(url, username, password, address="10.0.0.1"):
    return DjangoClient(REMOTE_ADDR=address).post(url, {"username": username, "password": password})


def signs_in(url, username, password=PASSWORD, address="10.0.0.1") -> bool:
    return attempt(url, username, password, address).status_code == 302


def fail(url, username, times, address="10.0.0.1") -> list[int]:
    """Sign in with a wrong password ``times`` times; the status codes answered."""
    return [attempt(url, username, "wrong-password", address).status_code for _ in range(times)]


@pytest.mark.parametrize("url", [PORTAL, ADMIN])
def test_five_failures_lock_the_account_from_that_address_with_a_clear_message(url, owner):
    # The form with its error four times; the fifth failure is the lockout.
    assert fail(url, owner.username, 5) == [200, 200, 200, 200, 429]
    response = attempt(url, owner.username, PASSWORD)  # even the right password
    assert response.status_code == 429
    assert response["Retry-After"] == str(15 * 60)
    page = response.content.decode()
    assert "Too many sign-in attempts" in page
    assert "Try again in 15 minutes" in page
    assert "_auth_user_id" not in response.client.session


def test_the_lockout_is_per_account_and_address(member, owner):
    fail(PORTAL, member.username, 5, address="10.0.0.1")
    assert not signs_in(PORTAL, member.username, address="10.0.0.1")
    # The same account from elsewhere, and another account from the same address, sign in.
    assert signs_in(PORTAL, member.username, address="10.0.0.2")
    assert signs_in(PORTAL, owner.username, address="10.0.0.1")


def test_a_success_resets_the_count(member):
    assert fail(PORTAL, member.username, 4) == [200] * 4
    assert signs_in(PORTAL, member.username)
    assert fail(PORTAL, member.username, 4) == [200] * 4
    assert signs_in(PORTAL, member.username)


def test_the_lockout_ends_after_the_cool_off(member):
    fail(PORTAL, member.username, 5)
    assert not signs_in(PORTAL, member.username)
    AccessAttempt.objects.update(
        attempt_time=AccessAttempt.objects.get().attempt_time - timedelta(minutes=16)
    )
    assert signs_in(PORTAL, member.username)


@override_settings(AXES_FAILURE_LIMIT=2, AXES_COOLOFF_TIME=timedelta(minutes=1))
def test_limit_and_cool_off_come_from_settings(member):
    fail(PORTAL, member.username, 2)
    response = attempt(PORTAL, member.username, PASSWORD)
    assert response.status_code == 429
    assert "Try again in 1 minute," in response.content.decode()
    assert response["Retry-After"] == "60"


def test_an_operator_unlocks_the_account_in_the_admin(member, django_user_model):
    fail(PORTAL, member.username, 5)
    assert not signs_in(PORTAL, member.username)
    operator = django_user_model.objects.create_superuser(
        "root@ops.example", "root@ops.example", "x"
    )
    admin = DjangoClient()
    admin.force_login(operator)
    changelist = admin.get("/admin/axes/accessattempt/?locked_out=yes")
    assert changelist.status_code == 200
    assert member.username in changelist.content.decode()
    response = admin.post(
        "/admin/axes/accessattempt/",
        {
            "action": "delete_selected",
            "_selected_action": list(AccessAttempt.objects.values_list("pk", flat=True)),
            "post": "yes",
        },
    )
    assert response.status_code == 302
    assert not AccessAttempt.objects.exists()
    assert signs_in(PORTAL, member.username)


def test_an_organization_admin_cannot_see_other_peoples_sign_in_attempts(owner, outsider):
    fail(PORTAL, outsider.username, 2)
    client = DjangoClient()
    client.force_login(owner)
    assert client.get("/admin/axes/accessattempt/").status_code == 403
    assert "axes" not in client.get("/admin/").content.decode().lower()


@override_settings(MESHLINE_PROXY_COUNT=1)
def test_behind_one_proxy_the_address_is_the_one_the_proxy_saw():
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7"
    )
    assert client_ip(request) == "203.0.113.7"  # 6.6.6.6 was typed by the client


def test_without_proxies_forwarded_for_is_ignored():
    request = RequestFactory().get("/", REMOTE_ADDR="10.9.9.9", HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert client_ip(request) == "10.9.9.9"
