"""HubSpot: its v3 request signature, contact and deal stages as CRM touches, the record's
deliverable learnt from the landing page's form, and stage changes that wait for it."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest
from django_scopes import scope

from connectors import hubspot, mapping, services, verify
from connectors.models import ConnectorKind, CrmLink, InboundDelivery, InboxState, RejectReason
from deliveries.models import Event
from tests.connectors.conftest import StubEndpoint, fixture

NOW = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
CONVERTED = fixture("hubspot_contact_converted.json")
DEAL = fixture("hubspot_deal_closed.json")
BODY = json.dumps(CONVERTED).encode()
CLIENT_SECRET = "7f3c2a1e-9b8d-4c6f-a5e4-3d2c1b0a9f8e"
URL = "https://meshline.example/hooks/0190c1d2-aaaa-7bbb-8ccc-123456789abc"


def headers_for(body=BODY, at=NOW, secret=CLIENT_SECRET, url=URL):
    return verify.sign(ConnectorKind.HUBSPOT, secret, "", body, at, url)


def check(headers, body=BODY, now=NOW, uri=URL):
    return verify.verify(ConnectorKind.HUBSPOT, [CLIENT_SECRET], headers, body, now, uri=uri)


def touches(org):
    with scope(organization=org):
        return sorted(
            (e.payload["touch_type"], e.deliverable.deliverable_id, e.payload["touch_id"])
            for e in Event.objects.filter(organization=org, event_type="crm.touch")
        )


def test_the_v3_signature_is_base64_hmac_of_method_url_body_and_timestamp():
    headers = headers_for()
    millis = str(int(NOW.timestamp() * 1000))
    digest = hmac.new(
        CLIENT_SECRET.encode(), b"POST" + URL.encode() + BODY + millis.encode(), hashlib.sha256
    ).digest()
    assert headers == {
        "x-hubspot-request-timestamp": millis,
        "x-hubspot-signature-v3": base64.b64encode(digest).decode(),
    }
    delivery_id = check(headers)
    assert delivery_id.startswith("hubspot:62515:")
    # HubSpot's retry of the batch says attemptNumber 1: the same delivery.
    retry = [{**event, "attemptNumber": 1} for event in CONVERTED]
    retry_body = json.dumps(retry).encode()
    assert check(headers_for(retry_body), retry_body) == delivery_id
    # The escapes HubSpot decodes before signing verify either way.
    escaped = URL.replace("https://", "https%3A%2F%2F")
    assert check(headers_for(url=URL), uri=escaped) == delivery_id


def test_during_a_rotation_the_previous_client_secret_verifies_too():
    old = "0b1c2d3e-aaaa-bbbb-cccc-ddddeeeeffff"
    signed_with_old = headers_for(secret=old)
    both = [CLIENT_SECRET, old]
    assert verify.verify(ConnectorKind.HUBSPOT, both, signed_with_old, BODY, NOW, uri=URL)
    with pytest.raises(verify.Refused):
        check(signed_with_old)


@pytest.mark.parametrize(
    "case,reason",
    [
        ("tampered", RejectReason.BAD_SIGNATURE),
        ("other_secret", RejectReason.BAD_SIGNATURE),
        ("other_url", RejectReason.BAD_SIGNATURE),
        ("stale", RejectReason.STALE),
        ("no_signature", RejectReason.MISSING_HEADERS),
        ("not_an_array", RejectReason.INVALID_JSON),
    ],
)
def test_each_refusal_names_its_reason(case, reason):
    body, headers, now, uri = BODY, headers_for(), NOW, URL
    if case == "tampered":
        body = BODY.replace(b"LP-1", b"LP-2")
    elif case == "other_secret":
        headers = headers_for(secret="0" * 36)
    elif case == "other_url":
        uri = URL + "?x=1"
    elif case == "stale":
        now = NOW + timedelta(minutes=5, seconds=1)
    elif case == "no_signature":
        headers.pop("x-hubspot-signature-v3")
    elif case == "not_an_array":
        body = json.dumps({"eventId": 1}).encode()
        headers = headers_for(body=body)
    with pytest.raises(verify.Refused) as refused:
        check(headers, body, now, uri)
    assert refused.value.reason == reason


def test_the_form_property_links_the_contact_and_its_stage_becomes_a_touch():
    links = {}
    visit, mql = mapping.map_payload(StubEndpoint("hubspot"), CONVERTED, "d", links=links)
    assert links == {"contact:5101": "LP-1"}
    assert visit == {
        "client_id": "acme",
        "event_type": "crm.touch",
        "deliverable_id": "LP-1",
        "idempotency_key": "hubspot:ep-1:3816279341",
        "actor": {"role": "crm", "id": "hubspot:62515:5101"},
        "occurred_at": "2026-03-01T12:00:00+00:00",
        "payload": {
            "touch_id": "hubspot:62515:3816279341",
            "touch_type": "visit",
            "channel": "hubspot contact: meshline_deliverable_id",
            "contact_id": "hubspot:5101",
        },
    }
    # The stage change came first in the batch; it is still credited to the linked page.
    assert (mql["deliverable_id"], mql["payload"]["touch_type"]) == ("LP-1", "mql")
    assert mql["occurred_at"] == "2026-03-01T12:00:02+00:00"
    # The organization's own stage names and form property.
    custom = StubEndpoint(
        "hubspot",
        {"stages": {"marketingqualifiedlead": "sql"}, "link_touch_type": "mql"},
    )
    kinds = [t["payload"]["touch_type"] for t in mapping.map_payload(custom, CONVERTED, "d")]
    assert kinds == ["mql", "sql"]
    other_property = StubEndpoint("hubspot", {"deliverable_property": "lp_ref"})
    with pytest.raises(hubspot.PartialMapping):
        mapping.map_payload(other_property, CONVERTED, "d")


def test_a_stage_change_without_a_link_waits_and_the_rest_is_mapped():
    with pytest.raises(hubspot.PartialMapping) as partial:
        mapping.map_payload(StubEndpoint("hubspot"), DEAL, "d", links={"contact:5101": "LP-1"})
    [sql] = partial.value.events
    assert (sql["payload"]["touch_type"], sql["deliverable_id"]) == ("sql", "LP-1")
    assert sql["payload"]["contact_id"] == "hubspot:5101"
    assert partial.value.waiting_for == ["deal:880"]
    assert "HubSpot deal 880 has no deliverable yet" in str(partial.value)
    with pytest.raises(mapping.MappingError, match="not a JSON array"):
        mapping.map_payload(StubEndpoint("hubspot"), {"eventId": 1}, "d")
    with pytest.raises(mapping.MappingError, match="no objectId or occurredAt"):
        mapping.map_payload(
            StubEndpoint("hubspot"), [{**CONVERTED[1], "occurredAt": "yesterday"}], "d"
        )
    assert mapping.check_options("hubspot", {"stages": {"customer": "won"}})[0].startswith(
        "stages maps a HubSpot stage value"
    )
    assert mapping.check_options("hubspot", {"link_touch_type": "lead"}) == [
        "link_touch_type is one of visit, mql, sql, opportunity, closed_won."
    ]
    assert mapping.check_options("hubspot", {"owner": "x"})[0].startswith("Use an object")


@pytest.fixture
def hubspot_endpoint(org_a, client_acme):
    with scope(organization=org_a):
        endpoint, _ = services.create_endpoint(
            org_a,
            name="Acme HubSpot",
            kind=ConnectorKind.HUBSPOT,
            client=client_acme,
            secret=CLIENT_SECRET,
        )
    return endpoint


def test_a_waiting_stage_change_is_mapped_once_when_its_link_arrives(
    org_a, hubspot_endpoint, post_hook
):
    assert post_hook(hubspot_endpoint, CONVERTED).status_code == 202
    retry = [{**event, "attemptNumber": 1} for event in CONVERTED]
    assert post_hook(hubspot_endpoint, retry).json()["status"] == "duplicate"
    assert [t[:2] for t in touches(org_a)] == [("mql", "LP-1"), ("visit", "LP-1")]

    # The deal's stage arrives before anything names its deliverable: the contact's touch
    # is stored, the deal's waits in the dead letters.
    assert post_hook(hubspot_endpoint, DEAL).status_code == 202
    with scope(organization=org_a):
        dead = InboundDelivery.objects.get(organization=org_a, state=InboxState.DEAD)
    assert "HubSpot deal 880 has no deliverable yet" in dead.error
    assert len(dead.event_ids) == 1
    assert ("sql", "LP-1") in [t[:2] for t in touches(org_a)]

    # The deal's own property arrives: the link is stored and the dead letter goes again.
    linked = [
        {
            **DEAL[1],
            "eventId": 3816290010,
            "propertyName": "meshline_deliverable_id",
            "propertyValue": "LP-1",
        }
    ]
    assert post_hook(hubspot_endpoint, linked).status_code == 202
    with scope(organization=org_a):
        dead.refresh_from_db()
        assert dead.state == InboxState.MAPPED and dead.error == ""
        assert len(dead.event_ids) == 2
        assert dict(
            CrmLink.objects.filter(organization=org_a).values_list("object_key", "deliverable_id")
        ) == {"contact:5101": "LP-1", "deal:880": "LP-1"}
    expected = ["closed_won", "mql", "sql", "visit", "visit"]
    assert [t[0] for t in touches(org_a)] == expected

    # Replaying everything again stores nothing twice.
    with scope(organization=org_a):
        for delivery in InboundDelivery.objects.filter(organization=org_a):
            services.map_delivery(org_a, delivery.public_id)
        InboundDelivery.objects.filter(organization=org_a).update(state=InboxState.DEAD)
        for delivery in InboundDelivery.objects.filter(organization=org_a):
            assert services.map_delivery(org_a, delivery.public_id)
    assert [t[0] for t in touches(org_a)] == expected


def test_links_belong_to_one_organizations_endpoint(
    org_a, org_b, hubspot_endpoint, client_b_acme, post_hook
):
    post_hook(hubspot_endpoint, CONVERTED)
    with scope(organization=org_b):
        other, _ = services.create_endpoint(
            org_b,
            name="B's HubSpot",
            kind=ConnectorKind.HUBSPOT,
            client=client_b_acme,
            secret=CLIENT_SECRET,
        )
    # The same portal's contact 5101 means nothing to organization B's endpoint.
    assert post_hook(other, DEAL[:1]).status_code == 202
    with scope(organization=org_b):
        [dead] = InboundDelivery.objects.filter(organization=org_b)
    assert dead.state == InboxState.DEAD and "HubSpot contact 5101" in dead.error
    assert touches(org_b) == []
    assert [t[0] for t in touches(org_a)] == ["mql", "visit"]
