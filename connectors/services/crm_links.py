"""Which deliverable each CRM record came through (connectors.hubspot explains why), and
mapping again the dead letters that were waiting for a record's link."""

from connectors import hubspot
from connectors.models import ConnectorKind, CrmLink, InboundDelivery, InboxState


def known(endpoint, payload) -> dict[str, str]:
    """The stored links of the records ``payload`` (a HubSpot batch) names; {} otherwise."""
    if endpoint.kind != ConnectorKind.HUBSPOT or not isinstance(payload, list):
        return {}
    keys = {
        f"{str(e.get('subscriptionType', '')).partition('.')[0]}:{e.get('objectId')}"
        for e in payload
        if isinstance(e, dict)
    }
    return dict(
        CrmLink.objects.filter(
            organization=endpoint.organization_id, endpoint=endpoint, object_key__in=keys
        ).values_list("object_key", "deliverable_id")
    )


def remember(endpoint, before: dict[str, str], after: dict[str, str], now) -> None:
    """Store the links a delivery made or moved; dead letters waiting for them go again."""
    changed = {key: value for key, value in after.items() if before.get(key) != value}
    if not changed:
        return
    for key, deliverable_id in changed.items():
        CrmLink.objects.update_or_create(
            organization=endpoint.organization,
            endpoint=endpoint,
            object_key=key,
            defaults={"deliverable_id": deliverable_id, "linked_at": now},
        )
    from connectors.tasks import map_inbound

    for key in changed:
        waiting = InboundDelivery.objects.filter(
            organization=endpoint.organization_id,
            endpoint=endpoint,
            state=InboxState.DEAD,
            error__contains=hubspot.waiting_marker(key) + " ",
        ).values_list("public_id", flat=True)
        for public_id in waiting:
            map_inbound.publish_on_commit(
                organization_id=endpoint.organization_id, delivery_id=str(public_id)
            )
