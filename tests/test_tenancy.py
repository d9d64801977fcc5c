"""Tenancy is enforced: a query that forgets its organization raises, in views and in tasks.

The scope is the safety net under code that already queries through the tenant: these tests
prove the net is there for every tenant-owned model and for every Celery task.
"""

import pytest
from django_scopes import ScopeError, get_scope, scope, scopes_disabled

from deliveries import tasks
from deliveries.models import Client, Deliverable, Event, EventProcessing, ProcessingStatus
from deliveries.services import ingest_events
from meshline.celery import TenantTask
from meshline.celery import app as celery_app
from meshline.models import ApiKey, Organization

TENANT_MODELS = [Client, Deliverable, Event, EventProcessing, ApiKey]


@celery_app.task(base=TenantTask, name="tests.visible_client_refs", shared=False)
def visible_client_refs(*, organization) -> list[list[str]]:
    """What a tenant task sees when it queries without naming its organization."""
    assert get_scope()["organization"] == organization
    return sorted([c.organization.slug, c.client_id] for c in Client.objects.all())


@pytest.fixture
def both_tenants(org_a, org_b, client_acme, client_b_acme, api_key_a, api_key_b, event_body):
    """Each organization has a client 'acme', an API key, and one stored event."""
    event_ids = {}
    for organization in (org_a, org_b):
        with scope(organization=organization):
            (result,) = ingest_events(organization, [event_body()])
        event_ids[organization.slug] = result.event_id
    return event_ids


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m.__name__)
def test_unscoped_query_raises_for_every_tenant_model(model, both_tenants, org_a):
    with pytest.raises(ScopeError):
        list(model.objects.all())
    with pytest.raises(ScopeError):
        model.objects.count()
    # Naming the organization is not enough: the scope must be entered.
    with pytest.raises(ScopeError):
        list(model.objects.filter(organization=org_a))


@pytest.mark.parametrize("model", TENANT_MODELS, ids=lambda m: m.__name__)
def test_scope_shows_only_its_own_organizations_rows(model, both_tenants, org_a, org_b):
    with scope(organization=org_a):
        rows = list(model.objects.all())
        other = list(model.objects.filter(organization=org_b))
    assert rows
    assert {row.organization_id for row in rows} == {org_a.pk}
    assert other == []


def test_same_reference_resolves_to_each_tenants_own_client(
    both_tenants, org_a, org_b, client_acme, client_b_acme
):
    with scope(organization=org_a):
        assert Client.objects.get(client_id="acme") == client_acme
    with scope(organization=org_b):
        assert Client.objects.get(client_id="acme") == client_b_acme


def test_tenant_task_refuses_to_run_without_organization_id(both_tenants):
    with pytest.raises(TypeError, match="organization_id"):
        tasks.process_events(event_ids=[both_tenants["org-a"]])

    # The same through Celery's own execution path, as a worker would run it.
    result = tasks.process_events.apply(kwargs={"event_ids": [both_tenants["org-a"]]})
    assert result.failed()
    assert isinstance(result.result, TypeError)
    with scopes_disabled():
        assert EventProcessing.objects.get(event_id=both_tenants["org-a"]).attempts == 0


def test_tenant_task_for_an_unknown_organization_fails(db):
    result = visible_client_refs.apply(kwargs={"organization_id": 999_999})
    assert result.failed()
    assert isinstance(result.result, Organization.DoesNotExist)


def test_tenant_task_runs_inside_its_organizations_scope(both_tenants, org_a, org_b):
    assert visible_client_refs.apply(kwargs={"organization_id": org_a.pk}).get() == [
        ["org-a", "acme"]
    ]
    assert visible_client_refs.apply(kwargs={"organization_id": org_b.pk}).get() == [
        ["org-b", "acme"]
    ]
    # The scope ends with the task.
    with pytest.raises(ScopeError):
        Client.objects.count()


def test_task_for_one_organization_cannot_touch_anothers_events(both_tenants, org_a, org_b):
    event_b = both_tenants["org-b"]

    as_a = tasks.process_events.apply(kwargs={"organization_id": org_a.pk, "event_ids": [event_b]})
    assert as_a.get() == {"processed": 0, "skipped": 1, "failed": 0}
    with scopes_disabled():
        assert EventProcessing.objects.get(event_id=event_b).status == ProcessingStatus.PENDING

    as_b = tasks.process_events.apply(kwargs={"organization_id": org_b.pk, "event_ids": [event_b]})
    assert as_b.get() == {"processed": 1, "skipped": 0, "failed": 0}
