"""The standard cast: organization A with an admin, an account manager and a viewer;
organization B with its own admin (the outsider). API clients hold each organization's key.
"""

import os
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.conf import settings
from django.db import connection
from django_scopes import scope, scopes_disabled
from rest_framework.test import APIClient

from deliveries import registry
from deliveries.models import Client, Deliverable, Event, EventProcessing, Tier
from meshline.models import ApiKey, Role
from meshline.services import create_organization, create_user

PASSWORD = "correct-horse-battery"
REQUIRE_SERVICES = os.environ.get("MESHLINE_REQUIRE_SERVICES") == "1"
# CI runs the suite a second time this many days in the future: a test that hard-codes a
# date which "now" must not pass (the bug that turned CI red on 2026-11-30) fails at once
# instead of on the day that date arrives.
CLOCK_OFFSET_DAYS = int(os.environ.get("MESHLINE_TEST_CLOCK_OFFSET_DAYS") or 0)
# Separate processes (a Celery worker, chromium, PostgreSQL's now()) keep the real clock.
REAL_CLOCK_MARKERS = ("worker", "browser")


def pytest_collection_modifyitems(config, items):
    """Skip tests whose servers are missing, saying which; in CI that is a failure instead."""
    on_postgres = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")
    missing = {
        "postgres": None if on_postgres else "PostgreSQL is not reachable on 127.0.0.1:5432",
        "redis": None if settings.REDIS_URL else "Redis is not reachable on 127.0.0.1:6379",
    }
    missing["worker"] = missing["postgres"] or missing["redis"]
    missing["browser"] = (
        None
        if os.path.exists("/usr/bin/chromium")
        else ("Debian's chromium is not installed (apt-get install chromium)")
    )
    for item in items:
        for marker, reason in missing.items():
            if reason and item.get_closest_marker(marker):
                if REQUIRE_SERVICES:
                    item.add_marker(pytest.mark.xfail(reason=reason, run=False, strict=True))
                    raise pytest.UsageError(f"MESHLINE_REQUIRE_SERVICES=1 but {reason}")
                item.add_marker(pytest.mark.skip(reason=f"{reason} (runs in CI)"))


def pytest_report_header(config):
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    return (
        f"meshline: database={engine} redis={'yes' if settings.REDIS_URL else 'no'} "
        f"require_services={REQUIRE_SERVICES} clock_offset_days={CLOCK_OFFSET_DAYS}"
    )


@pytest.fixture(autouse=True)
def _clock_offset(request):
    """Move this process's clock MESHLINE_TEST_CLOCK_OFFSET_DAYS ahead (still ticking)."""
    if not CLOCK_OFFSET_DAYS or any(
        request.node.get_closest_marker(marker) for marker in REAL_CLOCK_MARKERS
    ):
        yield
        return
    with time_machine.travel(datetime.now(UTC) + timedelta(days=CLOCK_OFFSET_DAYS), tick=True):
        yield


@pytest.fixture
def org_a(db):
    organization, _ = create_organization("org-a", "Organization A")
    return organization


@pytest.fixture
def org_b(db):
    organization, _ = create_organization("org-b", "Organization B")
    return organization


@pytest.fixture
def owner(org_a):
    return create_user("owner@a.example", org_a, Role.ADMIN, PASSWORD)


@pytest.fixture
def member(org_a):
    return create_user("member@a.example", org_a, Role.ACCOUNT_MANAGER, PASSWORD)


@pytest.fixture
def viewer(org_a):
    return create_user("viewer@a.example", org_a, Role.VIEWER, PASSWORD)


@pytest.fixture
def outsider(org_b):
    return create_user("outsider@b.example", org_b, Role.ADMIN, PASSWORD)


def _key(organization, **kwargs):
    with scope(organization=organization):
        return ApiKey.generate(organization, "test", **kwargs)


@pytest.fixture
def api_key_a(org_a):
    return _key(org_a)


@pytest.fixture
def api_key_b(org_b):
    return _key(org_b)


@pytest.fixture
def api_a(api_key_a):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_a[1]}")
    return client


@pytest.fixture
def api_b(api_key_b):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {api_key_b[1]}")
    return client


@pytest.fixture
def make_key():
    """Make another key for an organization, e.g. with fewer scopes: make_key(org, scopes=[...])."""

    def make(organization, **kwargs):
        api_key, plaintext = _key(organization, **kwargs)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {plaintext}")
        return api_key, client

    return make


@pytest.fixture
def client_acme(org_a):
    with scope(organization=org_a):
        return Client.objects.create(
            organization=org_a, client_id="acme", name="Acme", tier=Tier.ENTERPRISE
        )


@pytest.fixture
def client_b_acme(org_b):
    """Organization B has a client with the same reference: references are per tenant."""
    with scope(organization=org_b):
        return Client.objects.create(organization=org_b, client_id="acme", name="B's Acme")


@pytest.fixture
def event_body():
    """A valid event for client 'acme'; pass overrides to change fields."""

    def make(**overrides):
        body = {
            "event_type": "page.published",
            "deliverable_id": "LP-2041",
            "client_id": "acme",
            "correlation_id": "2f6c7c1e-6a0e-4c8e-9d59-5b1f0a4a7e10",
            "idempotency_key": "cms-evt-88123",
            "actor": {"role": "cms", "id": "wp-publisher"},
            "occurred_at": "2026-11-21T10:00:00Z",
            "payload": {"url": "https://acme.example/lp/spring", "html": "<html></html>"},
        }
        body.update(overrides)
        return {k: v for k, v in body.items() if v is not ...}

    return make


@pytest.fixture
def unscoped():
    """For assertions that look across tenants on purpose."""
    with scopes_disabled():
        yield


@pytest.fixture
def db_vendor():
    return connection.vendor


@pytest.fixture(autouse=True)
def _fresh_event_registry():
    """Empty the per-process event-type cache around every test.

    The cache is keyed by organization pk and event_types_version. Rolled-back tests reuse
    both on SQLite (its AUTOINCREMENT counter is rolled back too), so one test's registered
    types would otherwise leak into the next test's organization of the same pk.
    """
    registry.clear_cache()
    yield
    registry.clear_cache()


@pytest.fixture
def row_counts():
    """Events, deliverables and processing rows across every tenant, to prove nothing was stored."""

    def count() -> dict:
        with scopes_disabled():
            return {
                "events": Event.objects.count(),
                "deliverables": Deliverable.objects.count(),
                "processing": EventProcessing.objects.count(),
            }

    return count


@pytest.fixture
def client_beta(org_a):
    """A second client of organization A."""
    with scope(organization=org_a):
        return Client.objects.create(organization=org_a, client_id="beta", name="Beta")


@pytest.fixture
def as_member(client, member):
    """The Django test client signed in as organization A's account manager."""
    client.force_login(member)
    return client


@pytest.fixture
def as_outsider(outsider):
    """A Django test client of its own signed in as organization B's admin (a test may
    use as_member beside it)."""
    from django.test import Client as DjangoClient

    client = DjangoClient()
    client.force_login(outsider)
    return client


@pytest.fixture
def replay_events(django_capture_on_commit_callbacks):
    """replay_events(organization, event_ids): processing again, as `manage.py replay_events`
    does it, with what its commits trigger (gate evaluations) run in this process."""
    from deliveries.services.replay import replay_chunk

    def run(organization, event_ids):
        with scope(organization=organization), django_capture_on_commit_callbacks(execute=True):
            return replay_chunk(organization, event_ids)

    return run
