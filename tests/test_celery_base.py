"""The task base: publishing that survives a broker outage, fan-out per organization, and
tenant tasks that receive their organization."""

import logging

import pytest
from django_scopes import get_scope, scope
from kombu.exceptions import OperationalError

from deliveries.models import Client
from meshline.celery import TenantTask
from meshline.celery import app as celery_app

pytestmark = pytest.mark.django_db
received: list = []


@celery_app.task(base=TenantTask, name="tests.receive_organization", shared=False)
def receive_organization(*, organization, note: str = "") -> str:
    received.append((organization, get_scope()["organization"], note))
    return organization.slug


@pytest.fixture(autouse=True)
def _clear():
    received.clear()


def test_tenant_task_receives_its_organization_loaded_once(org_a, django_assert_num_queries):
    with django_assert_num_queries(1):
        assert receive_organization.apply(kwargs={"organization_id": org_a.pk, "note": "x"}).get()
    assert received == [(org_a, org_a, "x")]


def test_fan_out_publishes_once_per_organization_owning_a_row(
    org_a, org_b, client_acme, client_b_acme
):
    with scope(organization=org_a):
        Client.objects.create(organization=org_a, client_id="globex", name="Globex")
    # Eager in tests: each published task runs here, in its own organization's scope.
    assert receive_organization.fan_out(Client) == 2
    assert sorted(org.slug for org, _scope, _note in received) == ["org-a", "org-b"]
    assert all(org == in_scope for org, in_scope, _note in received)


def test_publish_with_the_broker_down_returns_false_and_logs(org_a, monkeypatch, caplog):
    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(receive_organization, "apply_async", broker_down)
    with caplog.at_level(logging.WARNING, logger="meshline.celery"):
        assert receive_organization.publish(organization_id=org_a.pk) is False
    assert "tests.receive_organization: broker unreachable" in caplog.text
    assert received == []


def test_publish_on_commit_waits_for_the_commit(org_a, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        receive_organization.publish_on_commit(organization_id=org_a.pk, note="later")
        assert received == []
    for callback in callbacks:
        callback()
    assert [note for _org, _scope, note in received] == ["later"]
