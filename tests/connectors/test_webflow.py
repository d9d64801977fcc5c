"""Webflow: its webhook signature (HMAC of "timestamp:body" with the app's client secret),
published CMS items as pages and form submissions as CRM touches."""

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from django_scopes import scope

from connectors import mapping, services, verify
from connectors.models import ConnectorKind, RejectReason
from deliveries.models import Event
from tests.connectors.conftest import StubEndpoint, fixture

NOW = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
PUBLISHED = fixture("webflow_collection_item_published.json")
FORM = fixture("webflow_form_submission.json")
BODY = json.dumps(PUBLISHED).encode()
CLIENT_SECRET = "4a8f0c7d2e1b9a6f5c3d8e7f6a5b4c3d2e1f0a9b8c7d6e5f"
OPTIONS = {"url_template": "https://acme.example/lp/{fieldData.slug}"}


def headers_for(body=BODY, at=NOW, secret=CLIENT_SECRET):
    return verify.sign(ConnectorKind.WEBFLOW, secret, "", body, at)


def check(headers, body=BODY, now=NOW):
    return verify.verify(ConnectorKind.WEBFLOW, [CLIENT_SECRET], headers, body, now)


def test_the_signature_is_hmac_of_timestamp_and_body():
    headers = headers_for()
    millis = str(int(NOW.timestamp() * 1000))
    expected = hmac.new(
        CLIENT_SECRET.encode(), f"{millis}:".encode() + BODY, hashlib.sha256
    ).hexdigest()
    assert headers == {"x-webflow-timestamp": millis, "x-webflow-signature": expected}
    first = check(headers)
    assert first.startswith("collection_item_published:")
    # The same item published again later is another delivery; a re-send is the same one.
    later = json.loads(BODY.replace(b"12:00:00.000Z", b"13:00:00.000Z"))
    later_body = json.dumps(later).encode()
    assert check(headers_for(later_body), later_body) != first
    assert check(headers_for()) == first


def test_during_a_rotation_the_previous_client_secret_verifies_too():
    old = "f" * 48
    signed_with_old = headers_for(secret=old)
    both = [CLIENT_SECRET, old]
    assert verify.verify(ConnectorKind.WEBFLOW, both, signed_with_old, BODY, NOW)
    with pytest.raises(verify.Refused):
        check(signed_with_old)


@pytest.mark.parametrize(
    "case,reason",
    [
        ("tampered", RejectReason.BAD_SIGNATURE),
        ("other_secret", RejectReason.BAD_SIGNATURE),
        ("stale", RejectReason.STALE),
        ("no_timestamp", RejectReason.MISSING_HEADERS),
        ("not_webflow", RejectReason.INVALID_JSON),
    ],
)
def test_each_refusal_names_its_reason(case, reason):
    body, headers, now = BODY, headers_for(), NOW
    if case == "tampered":
        body = BODY.replace(b"spring-launch", b"summer-launch")
    elif case == "other_secret":
        headers = headers_for(secret="x" * 48)
    elif case == "stale":
        now = NOW + timedelta(minutes=5, seconds=1)
    elif case == "no_timestamp":
        headers.pop("x-webflow-timestamp")
    elif case == "not_webflow":
        body = json.dumps({"hello": "world"}).encode()
        headers = headers_for(body=body)
    with pytest.raises(verify.Refused) as refused:
        check(headers, body, now)
    assert refused.value.reason == reason


def test_a_published_item_becomes_page_published_at_its_url():
    [page] = mapping.map_payload(StubEndpoint("webflow", OPTIONS), PUBLISHED, "d")
    assert page == {
        "client_id": "acme",
        "event_type": "page.published",
        "deliverable_id": "LP-1",
        "idempotency_key": "webflow:ep-1:6808f15dbc07c4c9bd88a7d0:2026-03-01T12:00:00.000Z",
        "actor": {"role": "cms", "id": "webflow:65427cf400e02b306eaa049c"},
        "occurred_at": "2026-03-01T12:00:00.000Z",
        "payload": {"url": "https://acme.example/lp/spring-launch", "schema_version": 2},
    }
    draft = json.loads(json.dumps(PUBLISHED))
    draft["payload"]["items"][0]["isDraft"] = True
    assert mapping.map_payload(StubEndpoint("webflow", OPTIONS), draft, "d") == []
    with pytest.raises(mapping.MappingError, match="url_template"):
        mapping.map_payload(StubEndpoint("webflow", {}), PUBLISHED, "d")
    with pytest.raises(mapping.MappingError, match=r"nothing usable at 'fieldData\.path'"):
        mapping.map_payload(
            StubEndpoint("webflow", {"url_template": "https://x.example/{fieldData.path}"}),
            PUBLISHED,
            "d",
        )


def test_a_form_submission_becomes_a_crm_touch_for_the_deliverable_in_the_form():
    [touch] = mapping.map_payload(StubEndpoint("webflow", {"touch_type": "sql"}), FORM, "d")
    assert (touch["event_type"], touch["deliverable_id"]) == ("crm.touch", "LP-1")
    assert touch["payload"] == {
        "touch_id": "6321a6a9a1e4c2b5f9a3e7d1",
        "touch_type": "sql",
        "contact_id": "zaphod@heartofgold.example",
        "channel": "webflow form: Spring launch: talk to sales",
    }
    with pytest.raises(mapping.MappingError, match="no 'lp' field"):
        mapping.map_payload(StubEndpoint("webflow", {"form_deliverable_field": "lp"}), FORM, "d")
    assert (
        mapping.map_payload(
            StubEndpoint("webflow", OPTIONS), {**PUBLISHED, "triggerType": "site_publish"}, "d"
        )
        == []
    )
    assert mapping.check_options("webflow", {"touch_type": "lead"}) == [
        "touch_type is one of visit, mql, sql, opportunity, closed_won."
    ]


def test_webflow_deliveries_become_events_through_the_endpoint(org_a, client_acme, post_hook):
    with scope(organization=org_a):
        endpoint, _ = services.create_endpoint(
            org_a,
            name="Acme Webflow",
            kind=ConnectorKind.WEBFLOW,
            client=client_acme,
            mapping_config=OPTIONS,
            secret=CLIENT_SECRET,
        )
    assert post_hook(endpoint, PUBLISHED).status_code == 202
    assert post_hook(endpoint, PUBLISHED).json()["status"] == "duplicate"
    assert post_hook(endpoint, FORM).status_code == 202
    with scope(organization=org_a):
        events = dict(
            Event.objects.filter(
                organization=org_a, event_type__in=["page.published", "crm.touch"]
            ).values_list("event_type", "deliverable__deliverable_id")
        )
    assert events == {"page.published": "LP-1", "crm.touch": "LP-1"}
