"""Jira: its webhook signature (X-Hub-Signature over the body) and the status mapping."""

import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from django_scopes import scope, scopes_disabled

from connectors import mapping, services, verify
from connectors.models import ConnectorKind, InboundDelivery, InboxState, RejectReason
from deliveries.models import Event
from tests.connectors.conftest import StubEndpoint, fixture

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
UPDATED = fixture("jira_issue_updated.json")
CREATED = fixture("jira_issue_created.json")
BODY = json.dumps(UPDATED).encode()
OPTIONS = {
    "deliverable_path": "issue.fields.customfield_10042",
    "created": "intake.received",
    "transitions": {"Done": "asset.approved", "Changes requested": "change.requested"},
}


def check(secrets, headers, body=BODY):
    return verify.verify(ConnectorKind.JIRA, secrets, headers, body, NOW)


def test_a_signed_delivery_gives_jiras_delivery_id():
    headers = verify.sign(ConnectorKind.JIRA, "s3cret", "d-1", BODY, NOW)
    expected = hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()
    assert headers["X-Hub-Signature"] == f"sha256={expected}"
    assert check(["s3cret"], {k.lower(): v for k, v in headers.items()}) == "d-1"
    # During a rotation either secret verifies.
    assert check(["new", "s3cret"], {k.lower(): v for k, v in headers.items()}) == "d-1"


@pytest.mark.parametrize(
    "change,reason",
    [
        ({"body": BODY.replace(b"Done", b"Open")}, RejectReason.BAD_SIGNATURE),
        ({"x-hub-signature": "sha256=" + "0" * 64}, RejectReason.BAD_SIGNATURE),
        ({"x-hub-signature": "sha1=abc"}, RejectReason.BAD_SIGNATURE),
        ({"x-hub-signature": ""}, RejectReason.MISSING_HEADERS),
        ({"x-atlassian-webhook-identifier": ""}, RejectReason.MISSING_HEADERS),
        ({"x-atlassian-webhook-identifier": "x" * 201}, RejectReason.MISSING_HEADERS),
    ],
)
def test_each_refusal_names_its_reason(change, reason):
    headers = {
        k.lower(): v for k, v in verify.sign(ConnectorKind.JIRA, "s3cret", "d-1", BODY, NOW).items()
    }
    body = change.pop("body", BODY)
    headers.update(change)
    with pytest.raises(verify.Refused) as refused:
        check(["s3cret"], headers, body)
    assert refused.value.reason == reason


def test_a_mapped_status_change_becomes_its_event():
    [body] = mapping.map_payload(StubEndpoint("jira", OPTIONS), UPDATED, "d-1")
    assert body == {
        "event_type": "asset.approved",
        "deliverable_id": "LP-1",
        "client_id": "acme",
        "idempotency_key": "jira:ep-1:10042:10400",
        "actor": {"role": "pm_tool", "id": "jira:5b10a2844c20165700ede21g"},
        "occurred_at": "2026-03-01T12:00:00+00:00",
        "payload": {"asset_id": "DLV-42", "approved_by": "Mia Krug"},
    }
    moved_back = json.loads(
        json.dumps(UPDATED).replace('"toString": "Done"', '"toString": "Changes requested"')
    )
    [change] = mapping.map_payload(StubEndpoint("jira", OPTIONS), moved_back, "d-2")
    assert change["event_type"] == "change.requested"
    assert change["payload"] == {"summary": "Spring launch landing page: hero and copy"}


def test_new_issues_and_unmapped_changes():
    [intake] = mapping.map_payload(StubEndpoint("jira", OPTIONS), CREATED, "d-3")
    assert (intake["event_type"], intake["deliverable_id"]) == ("intake.received", "LP-2")
    assert intake["payload"] == {"requested_by": "Jonas Weber"}
    assert mapping.map_payload(StubEndpoint("jira", {}), CREATED, "d-3") == []  # "created" not set
    # A status nobody mapped, a change that is not a status, another webhook: nothing.
    assert (
        mapping.map_payload(
            StubEndpoint("jira", {"transitions": {"QA": "asset.approved"}}), UPDATED, "x"
        )
        == []
    )
    relabelled = {**UPDATED, "changelog": {"id": "1", "items": [{"field": "labels"}]}}
    assert mapping.map_payload(StubEndpoint("jira", OPTIONS), relabelled, "x") == []
    assert (
        mapping.map_payload(
            StubEndpoint("jira", OPTIONS), {**UPDATED, "webhookEvent": "comment_created"}, "x"
        )
        == []
    )


def test_what_cannot_be_mapped_says_why():
    with pytest.raises(mapping.MappingError, match="No deliverable reference"):
        mapping.map_payload(
            StubEndpoint("jira", {**OPTIONS, "deliverable_path": "issue.fields.customfield_1"}),
            UPDATED,
            "x",
        )
    with pytest.raises(mapping.MappingError, match="Jira issue webhook"):
        mapping.map_payload(
            StubEndpoint("jira", OPTIONS), {"webhookEvent": "jira:issue_updated"}, "x"
        )
    with pytest.raises(mapping.MappingError, match="timestamp"):
        mapping.map_payload(StubEndpoint("jira", OPTIONS), {**UPDATED, "timestamp": "soon"}, "x")


@pytest.mark.parametrize(
    "options,problem",
    [
        ({"transitions": {"Done": "page.published"}}, "transitions maps a Jira status"),
        ({"transitions": ["Done"]}, "transitions maps a Jira status"),
        ({"created": "ticket.opened"}, "created is one of"),
        ({"status": "Done"}, "Use an object with only"),
    ],
)
def test_options_are_checked_before_they_are_saved(options, problem):
    [found] = mapping.check_options("jira", options)
    assert problem in found
    assert mapping.check_options("jira", OPTIONS) == []


def test_a_jira_delivery_through_the_endpoint_becomes_one_event(org_a, client_acme, post_hook):
    with scope(organization=org_a):
        endpoint, _secret = services.create_endpoint(
            org_a,
            name="Acme Jira",
            kind=ConnectorKind.JIRA,
            client=client_acme,
            mapping_config=OPTIONS,
        )
    assert post_hook(endpoint, UPDATED, msg_id="jira-1").status_code == 202
    assert post_hook(endpoint, UPDATED, msg_id="jira-1").json()["status"] == "duplicate"
    # The same change under another delivery id (a re-sent webhook) is the same event.
    assert post_hook(endpoint, UPDATED, msg_id="jira-2").status_code == 202
    with scopes_disabled():
        [event] = Event.objects.filter(organization=org_a, event_type="asset.approved")
        states = sorted(InboundDelivery.objects.values_list("vendor_delivery_id", "state"))
    assert (event.deliverable.deliverable_id, event.payload["asset_id"]) == ("LP-1", "DLV-42")
    assert states == [("jira-1", InboxState.MAPPED), ("jira-2", InboxState.MAPPED)]
    tampered = post_hook(endpoint, UPDATED, msg_id="jira-3", secret="whsec_wrong")
    assert tampered.status_code == 401
