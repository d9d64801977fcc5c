"""Reporting fixtures: the gates tests' owner map and event pipeline, and event builders."""

from datetime import UTC, datetime

import pytest

from tests.gates.conftest import owner_map, publish  # noqa: F401 (fixtures)

URL = "https://acme.example/lp/spring"


def ev(event_type: str, ref: str, payload: dict, at: str, key: str, client="acme") -> dict:
    return {
        "event_type": event_type,
        "deliverable_id": ref,
        "client_id": client,
        "idempotency_key": key,
        "actor": {"role": "crm", "id": "hubspot"},
        "occurred_at": at,
        "payload": payload,
    }


def page(ref: str, url: str, key: str | None = None) -> dict:
    return ev(
        "intake.received",
        ref,
        {"deliverable_type": "landing_page", "title": ref},
        "2026-03-01T09:00:00Z",
        key or f"intake-{ref}",
    ) | {
        "event_type": "page.published",
        "payload": {"url": url, "deliverable_type": "landing_page"},
    }


def touch(ref, touch_id, at, contact="c-1", touch_type="visit") -> dict:
    payload = {"touch_id": touch_id, "touch_type": touch_type, "contact_id": contact}
    return ev("crm.touch", ref, payload, at, f"touch-{touch_id}")


def revenue(ref, reference, amount, day, contact="c-1") -> dict:
    payload = {
        "reference": reference,
        "amount": amount,
        "currency": "EUR",
        "date": day,
        "contact_id": contact,
    }
    return ev("revenue.recognized", ref, payload, f"{day}T12:00:00Z", f"rev-{reference}")


def search(ref, day, impressions, clicks, url=None) -> dict:
    payload = {"date": day, "impressions": impressions, "clicks": clicks}
    if url:
        payload["url"] = url
    return ev("search_export.processed", ref, payload, f"{day}T23:00:00Z", f"gsc-{ref}-{day}")


NOW = datetime(2026, 4, 10, 12, tzinfo=UTC)


@pytest.fixture
def pages(org_a, client_acme, publish):  # noqa: F811
    """Three published landing pages of organization A."""
    publish(
        org_a,
        *[page(f"LP-{n}", f"https://acme.example/lp/{n}/") for n in (1, 2, 3)],
    )
