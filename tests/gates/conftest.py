"""Shared fixtures for the gates tests: realistic pages, screenshots, gates, an owner map and
the real event pipeline (ingest, processing and evaluation, eager and in-process).
"""

import base64
import io
import itertools
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_scopes import scope
from PIL import Image, ImageDraw

from deliveries.services import ingest_events
from devtools.factories import GateFactory
from gates.models import CheckName, GateEvaluation
from tests.owners.factories import make_calendar, make_role, make_rule

FIXTURES = Path(__file__).parent / "fixtures"
PAGE_URL = "https://acme.example/lp/ridgeline-gtx"
PLAYBOOK = (
    "1. Open the page template in the CMS.\n"
    '2. Add the Product JSON-LD block (<script type="application/ld+json">) with name and offers.\n'
    "3. Validate it with the Rich Results Test, then republish."
)

_keys = itertools.count(1)


def page(name: str) -> str:
    """A fixture page's HTML, e.g. page("missing_jsonld.html")."""
    return (FIXTURES / name).read_text()


def png(color="white", size=(320, 200), box=None) -> bytes:
    """A PNG screenshot: a plain page, optionally with a black block drawn on it."""
    image = Image.new("RGB", size, color)
    if box:
        ImageDraw.Draw(image).rectangle(box, fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def event(
    event_type: str,
    ref: str,
    payload: dict,
    *,
    at: datetime | None = None,
    client: str = "acme",
    key: str | None = None,
) -> dict:
    """One event as a connector submits it."""
    return {
        "event_type": event_type,
        "deliverable_id": ref,
        "client_id": client,
        "idempotency_key": key or f"test-{ref}-{event_type}-{next(_keys)}",
        "actor": {"role": "cms", "id": "wp-publisher"},
        "occurred_at": (at or timezone.now()).isoformat(),
        "payload": payload,
    }


def published(ref: str, html: str, *, url: str = PAGE_URL, **kwargs) -> dict:
    """A page.published event carrying the page's HTML."""
    extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in {"at", "client", "key"}}
    return event("page.published", ref, {"url": url, "html": html, **extra}, **kwargs)


@pytest.fixture
def owner_map(org_a, member, owner):
    """Organization A's owner map: page.published for enterprise clients belongs to the
    "SEO Delivery Owner" (member on duty); anything else to the Account Manager (owner)."""
    with scope(organization=org_a):
        make_calendar(org_a)
        seo = make_role(org_a, people=[member])
        account = make_role(org_a, slug="account-manager", name="Account Manager", people=[owner])
        make_rule(org_a, seo, event_type="page.published", client_tier="enterprise")
        make_rule(org_a, account, position=1000)
    return seo


@pytest.fixture
def make_gate(org_a):
    """make_gate(check_name, **fields) → an enforced gate of organization A on page.published."""

    def make(check_name, slug=None, *, organization=None, **fields):
        organization = organization or org_a
        fields.setdefault("playbook", PLAYBOOK)
        if slug:
            fields["slug"] = slug
        with scope(organization=organization):
            return GateFactory(organization=organization, check_name=check_name, **fields)

    return make


@pytest.fixture
def publish(django_capture_on_commit_callbacks):
    """Submit events through ingest and run what commits would trigger: processing, then
    each gate's evaluation (eager Celery tasks, in this process). Returns the event ids."""

    def run(organization, *events) -> list[str]:
        with scope(organization=organization), django_capture_on_commit_callbacks(execute=True):
            results = ingest_events(organization, list(events))
        assert [r.status for r in results] == ["accepted"] * len(events), [
            r.as_dict() for r in results
        ]
        return [r.event_id for r in results]

    return run


@pytest.fixture
def earlier():
    """earlier(minutes) → a time that many minutes ago: events keep their order."""
    now = timezone.now()
    return lambda minutes: now - timedelta(minutes=minutes)


@pytest.fixture
def screenshot_failure(org_a, client_acme, owner_map, make_gate, publish):
    """A screenshot regression of LP-1 that failed, with its difference image."""
    make_gate(CheckName.SCREENSHOT_REGRESSION)
    publish(
        org_a,
        published(
            "LP-1",
            page("product_landing.html"),
            screenshot=b64(png("white", box=[40, 40, 280, 160])),
            baseline_screenshot=b64(png("white")),
        ),
    )
    with scope(organization=org_a):
        return GateEvaluation.objects.select_related("gate", "ticket").get(organization=org_a)
