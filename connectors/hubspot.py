"""HubSpot's webhook events as CRM touches: a pure mapping, links passed in and out.

HubSpot posts a JSON array of up to 100 events (``eventId``, ``portalId``, ``occurredAt`` in
ms, ``subscriptionType`` such as ``contact.propertyChange``, ``objectId``, ``propertyName``,
``propertyValue``). An event carries only the property that changed, so the deliverable a
contact or deal belongs to is learnt from a property the landing page's form sets
(``mapping["deliverable_property"]``, default ``meshline_deliverable_id``): its change is a
touch of ``mapping["link_touch_type"]`` (default ``visit``) and links the record to that
deliverable. A later ``lifecyclestage`` (contacts) or ``dealstage`` (deals) change whose value
``mapping["stages"]`` names (defaults in STAGES) is a touch of that type for the linked
deliverable. Other events yield nothing.

A stage change of a record with no link yet cannot be credited: the events that could be
mapped are still returned, and PartialMapping names the records left over, so the delivery
waits as a dead letter and is mapped again (exactly once per event) when the link arrives.
"""

from datetime import UTC, datetime

from connectors.mapping import TOUCH_TYPES, MappingError

DELIVERABLE_PROPERTY = "meshline_deliverable_id"
STAGE_PROPERTIES = {"contact": "lifecyclestage", "deal": "dealstage"}
# HubSpot's internal values of its default lifecycle stages and deal pipeline.
STAGES = {
    "marketingqualifiedlead": "mql",
    "salesqualifiedlead": "sql",
    "opportunity": "opportunity",
    "customer": "closed_won",
    "closedwon": "closed_won",
}


class PartialMapping(MappingError):
    """Some events of the delivery could not be mapped yet; ``events`` are the ones that
    could, ``waiting_for`` the record keys ("contact:5101") whose link is missing."""

    def __init__(self, message: str, events: list[dict], waiting_for: list[str]):
        super().__init__(message)
        self.events = events
        self.waiting_for = waiting_for


def waiting_marker(object_key: str) -> str:
    """The words a dead letter's error carries for a record without a link (found again
    when the link arrives)."""
    kind, _, object_id = object_key.partition(":")
    return f"HubSpot {kind} {object_id} has no deliverable"


def check_options(options: dict) -> list[str]:
    if options.get("link_touch_type", "visit") not in TOUCH_TYPES:
        return [f"link_touch_type is one of {', '.join(TOUCH_TYPES)}."]
    stages = options.get("stages", {})
    if not isinstance(stages, dict) or not all(
        isinstance(value, str) and kind in TOUCH_TYPES for value, kind in stages.items()
    ):
        return [
            "stages maps a HubSpot stage value to a touch type "
            f'({", ".join(TOUCH_TYPES)}), e.g. {{"marketingqualifiedlead": "mql"}}.'
        ]
    if not isinstance(options.get("deliverable_property", ""), str):
        return ["deliverable_property is the internal name of a HubSpot property."]
    return []


def _changes(events) -> list[tuple[str, dict]]:
    """(record key, event) for each property change of a contact or deal, oldest first."""
    found = []
    for event in events:
        kind, _, change = str(event.get("subscriptionType", "")).partition(".")
        if change != "propertyChange" or kind not in STAGE_PROPERTIES:
            continue
        if event.get("objectId") is None or not isinstance(event.get("occurredAt"), int):
            raise MappingError(
                f"HubSpot event {event.get('eventId')} has no objectId or occurredAt (ms)."
            )
        found.append((f"{kind}:{event['objectId']}", event))
    # A batch is in no particular order: touches go in the order they happened.
    return sorted(found, key=lambda item: (item[1]["occurredAt"], str(item[1].get("eventId"))))


def map_events(endpoint, events: list, links: dict[str, str]) -> list[dict]:
    """crm.touch bodies for ``events``; ``links`` (record key -> deliverable id) is read and
    updated in place with the links this delivery makes. Raises PartialMapping."""
    options = endpoint.mapping or {}
    prop = options.get("deliverable_property") or DELIVERABLE_PROPERTY
    stages = options.get("stages") or STAGES
    changes = _changes(events)
    # Links first: HubSpot batches a form's property and the stage it sets in any order.
    for key, event in changes:
        if event.get("propertyName") == prop and event.get("propertyValue"):
            links[key] = str(event["propertyValue"])[:200]
    touches, waiting = [], []
    for key, event in changes:
        name = event.get("propertyName")
        if name == prop and event.get("propertyValue"):
            touch_type = options.get("link_touch_type", "visit")
        elif name == STAGE_PROPERTIES[key.split(":")[0]] and event.get("propertyValue") in stages:
            touch_type = stages[event["propertyValue"]]
        else:
            continue
        if key not in links:
            waiting.append(key)
            continue
        touches.append(_touch(endpoint, key, event, links[key], touch_type))
    if waiting:
        keys = sorted(set(waiting))
        raise PartialMapping(
            "; ".join(
                f"{waiting_marker(key)} yet (set its {prop}); mapped again when it arrives"
                for key in keys
            ),
            touches,
            keys,
        )
    return touches


def _touch(endpoint, key: str, event: dict, deliverable_id: str, touch_type: str) -> dict:
    kind, _, object_id = key.partition(":")
    portal = event.get("portalId", "")
    payload = {
        "touch_id": f"hubspot:{portal}:{event['eventId']}"[:200],
        "touch_type": touch_type,
        "channel": f"hubspot {kind}: {event.get('propertyName')}"[:100],
    }
    if kind == "contact":
        payload["contact_id"] = f"hubspot:{object_id}"
    return {
        "client_id": endpoint.client.client_id,
        "event_type": "crm.touch",
        "deliverable_id": deliverable_id,
        "idempotency_key": f"hubspot:{endpoint.public_id}:{event['eventId']}"[:200],
        "actor": {"role": "crm", "id": f"hubspot:{portal}:{object_id}"[:200]},
        "occurred_at": datetime.fromtimestamp(event["occurredAt"] / 1000, tz=UTC).isoformat(),
        "payload": payload,
    }
