"""Mappings against vendor payload fixtures (tests/connectors/fixtures), dead letters and
replay, and the "try this payload" preview."""

import json

import pytest
from django_scopes import scope, scopes_disabled

from connectors import mapping, services
from connectors.models import InboundDelivery, InboxState
from deliveries.models import Event
from tests.connectors.conftest import fixture


def test_wordpress_published_post_maps_to_page_published(wp_endpoint):
    endpoint, _ = wp_endpoint
    [event] = mapping.map_payload(endpoint, fixture("wordpress_post_published.json"), "d-1")
    assert event == {
        "event_type": "page.published",
        "deliverable_id": "LP-77",
        "client_id": "acme",
        "idempotency_key": f"wp:{endpoint.public_id}:1284:2026-11-21 10:00:00",
        "actor": {"role": "cms", "id": "wordpress:7"},
        "occurred_at": "2026-11-21T10:00:00+00:00",
        "payload": {
            "url": "https://acme.example/lp/ridgeline-gtx",
            "html": fixture("wordpress_post_published.json")["post"]["post_content"],
            "schema_version": mapping.PAYLOAD_SCHEMA_VERSION,
        },
    }


def test_an_update_of_a_published_post_is_a_new_event(wp_endpoint):
    endpoint, _ = wp_endpoint
    payload = fixture("wordpress_post_published.json")
    [first] = mapping.map_payload(endpoint, payload, "d-1")
    payload["post"]["post_modified_gmt"] = "2026-11-22 08:30:00"
    [update] = mapping.map_payload(endpoint, payload, "d-2")
    assert update["idempotency_key"] != first["idempotency_key"]
    assert update["occurred_at"] == "2026-11-22T08:30:00+00:00"


def test_a_draft_yields_no_event(wp_endpoint):
    endpoint, _ = wp_endpoint
    assert mapping.map_payload(endpoint, fixture("wordpress_post_draft.json"), "d-1") == []


@pytest.mark.parametrize(
    "change,message",
    [
        (lambda p: p.pop("post"), "No 'post' object"),
        (lambda p: p["post_meta"].pop("meshline_deliverable_id"), "No deliverable reference"),
        (lambda p: p.pop("post_permalink"), "post_permalink"),
        (lambda p: p["post"].update(post_modified_gmt="21/11/2026"), "YYYY-MM-DD"),
    ],
)
def test_wordpress_payloads_it_cannot_read_say_why(wp_endpoint, change, message):
    endpoint, _ = wp_endpoint
    payload = fixture("wordpress_post_published.json")
    change(payload)
    with pytest.raises(mapping.MappingError, match=message):
        mapping.map_payload(endpoint, payload, "d-1")


def test_generic_mapping_follows_field_paths(generic_endpoint):
    endpoint, _ = generic_endpoint
    [event] = mapping.map_payload(endpoint, fixture("generic_order.json"), "msg-1")
    assert event == {
        "event_type": "asset.approved",
        "deliverable_id": "AS-9",
        "client_id": "acme",
        "occurred_at": "2026-11-21T10:00:00Z",
        "idempotency_key": f"hook:{endpoint.public_id}:evt_2Zx9",
        "actor": {"role": "connector", "id": str(endpoint.public_id)},
        "payload": {"asset_id": "AS-9", "approved_by": "dana@acme.example"},
    }


def test_generic_mapping_constants_and_list_indexes(generic_endpoint):
    endpoint, _ = generic_endpoint
    endpoint.mapping = {
        "event_type": "=asset.approved",
        "deliverable_id": "data.items.1.ref",
        "occurred_at": "=2026-11-21T10:00:00Z",
        "payload.asset_id": "data.items.1.ref",
    }
    [event] = mapping.map_payload(endpoint, {"data": {"items": [{}, {"ref": "AS-2"}]}}, "m-7")
    assert (event["event_type"], event["deliverable_id"]) == ("asset.approved", "AS-2")
    assert event["idempotency_key"] == f"hook:{endpoint.public_id}:m-7"  # the webhook-id


def test_check_generic_names_every_problem():
    problems = mapping.check_generic({"payload.": "x", "colour": "a", "event_type": 3})
    text = " ".join(problems)
    assert "Unknown target 'payload.'" in text and "Unknown target 'colour'" in text
    assert "source of 'event_type'" in text
    assert "Map 'deliverable_id'." in text and "Map 'occurred_at'." in text


def test_preview_shows_the_event_or_the_contract_errors(org_a, generic_endpoint):
    endpoint, _ = generic_endpoint
    with scope(organization=org_a):
        good = services.preview(endpoint, json.dumps(fixture("generic_order.json")))
        assert good.errors == [] and good.events[0]["deliverable_id"] == "AS-9"
        payload = fixture("generic_order.json")
        payload["data"]["approved_at"] = "yesterday"
        bad = services.preview(endpoint, json.dumps(payload))
        assert bad.events and any("occurred_at" in error for error in bad.errors)
        assert services.preview(endpoint, "{nope").errors[0].startswith("The payload is not JSON")
        missing = services.preview(endpoint, json.dumps({"type": "asset.approved"}))
        assert missing.errors == ["deliverable_id: nothing at 'data.asset.ref' in the payload."]
        assert Event.objects.filter(organization=org_a).count() == 0


def _deliveries():
    with scopes_disabled():
        return list(InboundDelivery.objects.order_by("received_at"))


def test_dead_letter_waits_for_a_fix_then_replays_into_exactly_one_event(
    org_a, wp_endpoint, post_hook, django_capture_on_commit_callbacks
):
    """The Done-when's last clause: a payload the mapping cannot read is a dead letter
    until the endpoint is fixed and it is replayed; then it yields its event once."""
    endpoint, _ = wp_endpoint
    assert post_hook(endpoint, fixture("wordpress_post_no_reference.json")).status_code == 202
    [dead] = _deliveries()
    assert dead.state == InboxState.DEAD
    assert "No deliverable reference at 'post_meta.meshline_deliverable_id'" in dead.error

    with scope(organization=org_a), django_capture_on_commit_callbacks(execute=True):
        # Replaying before the fix changes nothing but the attempt count.
        assert services.replay(org_a) == 1
    [dead] = _deliveries()
    assert (dead.state, dead.attempts) == (InboxState.DEAD, 2)

    with scope(organization=org_a), django_capture_on_commit_callbacks(execute=True):
        endpoint.mapping = {"deliverable_path": "taxonomies.post_tag.0"}
        endpoint.save()
        assert services.replay(org_a, public_id=dead.public_id) == 1
    [mapped] = _deliveries()
    assert mapped.state == InboxState.MAPPED and mapped.error == ""
    with scope(organization=org_a):
        [event] = Event.objects.filter(organization=org_a).select_related("deliverable")
        assert event.deliverable.deliverable_id == "LP-78"
        assert [str(event.pk)] == mapped.event_ids

        # Replaying again, or mapping the row again, adds nothing.
        with django_capture_on_commit_callbacks(execute=True):
            assert services.replay(org_a) == 0
        assert services.map_delivery(org_a, mapped.public_id) is False
        assert Event.objects.filter(organization=org_a).count() == 1


def test_an_event_the_contract_rejects_is_a_dead_letter_with_its_reason(
    org_a, generic_endpoint, client
):
    endpoint, _ = generic_endpoint
    payload = fixture("generic_order.json")
    payload["data"]["approved_at"] = "not a time"
    from django.utils import timezone

    from connectors import verify

    body = json.dumps(payload).encode()
    headers = verify.sign(endpoint.kind, endpoint.secret, "m-1", body, timezone.now())
    with scope(organization=org_a):
        delivery = InboundDelivery.objects.create(
            organization=org_a,
            endpoint=endpoint,
            vendor_delivery_id=headers["webhook-id"],
            received_at=timezone.now(),
            body=body.decode(),
        )
        assert services.map_delivery(org_a, delivery.public_id) is True
        delivery.refresh_from_db()
    assert delivery.state == InboxState.DEAD
    assert "occurred_at" in delivery.error


def test_the_same_post_revision_claimed_by_another_deliverable_is_a_dead_letter(
    org_a, wp_endpoint, post_hook
):
    """Vendor-derived keys make a changed reference for one revision a conflict, not a
    second event: the admin sees why."""
    endpoint, _ = wp_endpoint
    payload = fixture("wordpress_post_published.json")
    post_hook(endpoint, payload, msg_id="first")
    payload["post_meta"]["meshline_deliverable_id"] = ["LP-99"]
    post_hook(endpoint, payload, msg_id="second")
    states = {d.vendor_delivery_id: (d.state, d.error) for d in _deliveries()}
    assert states["first"] == (InboxState.MAPPED, "")
    assert states["second"][0] == InboxState.DEAD
    assert "already used for an event with different content" in states["second"][1]
    with scope(organization=org_a):
        assert Event.objects.filter(organization=org_a).count() == 1
