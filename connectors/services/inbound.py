"""Receiving webhooks: endpoints, the raw inbox, mapping to events, dead letters, health."""

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from connectors import hubspot, mapping, verify
from connectors.models import (
    ConnectorKind,
    InboundDelivery,
    InboundEndpoint,
    InboxState,
    RejectedDelivery,
    RejectReason,
)
from connectors.services import crm_links
from deliveries import registry
from deliveries.models import EventSource
from deliveries.services import ingest_events
from deliveries.services.ingest import Status, validate_envelope
from meshline import telemetry

log = logging.getLogger(__name__)

# Rejected requests recorded per endpoint and minute; beyond it they are only counted in
# the log, so a misconfigured (or hostile) sender cannot fill the disk.
REJECTS_PER_MINUTE = 20
# Headers kept with a raw delivery: what verification and the drill-down need.
KEPT_HEADERS = ("content-type", "user-agent", *verify.HEADERS["standard"][:2])
KEPT_HEADERS += (*verify.HEADERS["wordpress"][:2], "x-contentful-topic", "x-contentful-timestamp")
KEPT_HEADERS += ("x-atlassian-webhook-identifier", "x-atlassian-webhook-flow", "x-cld-timestamp")
KEPT_HEADERS += ("x-webflow-timestamp", "x-hubspot-request-timestamp")
# --- endpoints ------------------------------------------------------------------------------


def create_endpoint(
    organization, *, name: str, kind: str, client, mapping_config=None, secret: str = ""
):
    """A new endpoint and its secret (returned once; the caller shows it, then it is gone).
    ``secret`` is the sender's own, for a kind that signs with one (VENDOR_SECRET_KINDS)."""
    endpoint = InboundEndpoint(
        organization=organization,
        name=name,
        kind=kind,
        client=client,
        mapping=mapping_config or {},
        secret=secret or InboundEndpoint.new_secret(kind),
    )
    endpoint.full_clean()
    endpoint.save()
    return endpoint, endpoint.secret


# --- receiving --------------------------------------------------------------------------------


@dataclass
class Answer:
    """What /hooks/<id> answers: status and an ``errors`` body (or a delivery id)."""

    status: int
    body: dict = field(default_factory=dict)

    @classmethod
    def error(cls, status: int, code: str, message: str) -> "Answer":
        return cls(status, {"errors": [{"code": code, "field": None, "message": message}]})


REFUSAL_STATUS = {
    RejectReason.DISABLED: 403,
    RejectReason.CONTENT_TYPE: 415,
    RejectReason.TOO_LARGE: 413,
    RejectReason.MISSING_HEADERS: 400,
    RejectReason.STALE: 400,
    RejectReason.BAD_SIGNATURE: 401,
    RejectReason.INVALID_JSON: 400,
}


def _reject(endpoint, reason: str, message: str, size: int, now: datetime) -> Answer:
    """Record the refusal (at most REJECTS_PER_MINUTE per endpoint) and answer it."""
    bucket = f"connectors:rejects:{endpoint.pk}:{int(now.timestamp()) // 60}"
    cache.add(bucket, 0, timeout=120)
    try:
        count = cache.incr(bucket)
    except ValueError:  # evicted between add and incr
        count = 1
    if count <= REJECTS_PER_MINUTE:
        RejectedDelivery.objects.create(
            organization=endpoint.organization,
            endpoint=endpoint,
            reason=reason,
            detail=message[:300],
            received_at=now,
            size=size,
        )
    else:
        log.info("endpoint %s: rejection %s not recorded (rate limit)", endpoint.public_id, reason)
    return Answer.error(REFUSAL_STATUS[reason], reason, message)


def receive(
    public_id,
    headers,
    body: bytes,
    *,
    content_type: str,
    declared_size: int = 0,
    path: str = "",
    uri: str = "",
    now=None,
) -> Answer:
    """Verify one webhook and commit it raw to the inbox before the answer.

    ``public_id`` is the endpoint's UUID from the URL; ``headers`` case-insensitive;
    ``declared_size`` the Content-Length (the view does not read a body declared too large);
    ``uri`` the full URL posted to (HubSpot signs it).
    Mapping is published for after the commit; a duplicate vendor id is answered 200 and
    stored once.
    """
    now = now or timezone.now()
    with scopes_disabled():
        endpoint = (
            InboundEndpoint.objects.select_related("organization", "client")
            .filter(public_id=public_id)
            .first()
        )
    if endpoint is None:
        return Answer.error(404, "unknown_endpoint", "No webhook endpoint has this id.")
    telemetry.tag_organization(endpoint.organization)
    with scope(organization=endpoint.organization):
        size = max(declared_size, len(body))
        return _receive(endpoint, headers, body, content_type, size, (path, uri), now)


def _is_json(content_type: str) -> bool:
    """application/json, or a vendor's JSON type (Contentful's ...management.v1+json)."""
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _receive(endpoint, headers, body: bytes, content_type: str, size: int, target, now) -> Answer:
    path, uri = target
    if not endpoint.enabled:
        return _reject(endpoint, RejectReason.DISABLED, "This endpoint is disabled.", size, now)
    if not _is_json(content_type):
        return _reject(
            endpoint,
            RejectReason.CONTENT_TYPE,
            "Send the webhook as application/json.",
            size,
            now,
        )
    if size > settings.MESHLINE_HOOK_MAX_BYTES:
        return _reject(
            endpoint,
            RejectReason.TOO_LARGE,
            f"A webhook may be at most {settings.MESHLINE_HOOK_MAX_BYTES} bytes.",
            size,
            now,
        )
    try:
        vendor_id = verify.verify(
            endpoint.kind, endpoint.secrets_at(now), headers, body, now, path=path, uri=uri
        )
        # HubSpot (alone) posts an array of events; its verification checked the shape.
        if endpoint.kind != ConnectorKind.HUBSPOT and not isinstance(json.loads(body), dict):
            raise verify.Refused(RejectReason.INVALID_JSON, "The body is not a JSON object.")
    except verify.Refused as refused:
        return _reject(endpoint, refused.reason, refused.message, size, now)
    except ValueError:
        return _reject(endpoint, RejectReason.INVALID_JSON, "The body is not JSON.", size, now)
    kept = {name: headers[name] for name in KEPT_HEADERS if headers.get(name)}
    delivery = InboundDelivery(
        organization=endpoint.organization,
        endpoint=endpoint,
        vendor_delivery_id=vendor_id,
        received_at=now,
        headers=kept,
        body=body.decode(),
    )
    try:
        with transaction.atomic():
            delivery.save(force_insert=True)
    except IntegrityError:  # the sender's retry (or a replay within the tolerance)
        return Answer(200, {"status": "duplicate", "vendor_delivery_id": vendor_id})
    from connectors.tasks import map_inbound

    map_inbound.publish_on_commit(
        organization_id=endpoint.organization_id, delivery_id=str(delivery.public_id)
    )
    return Answer(202, {"status": "accepted", "id": str(delivery.public_id)})


# --- mapping ----------------------------------------------------------------------------------


def _describe(errors: list[dict]) -> str:
    return "; ".join(
        f"{error.get('field') or 'event'}: {error['message']}"
        if error.get("field")
        else error["message"]
        for error in errors
    )


def map_delivery(organization, delivery_id, now=None) -> bool:
    """Map one inbox row to events through ingest; True if this call did the work.

    Idempotent: the row is locked, and a mapped one is left alone. A failure (the mapping
    cannot read the payload, or ingest rejects the event) makes it a dead letter with the
    reason; mapping it again after a fix is a replay. Events already stored by an earlier
    try come back as duplicates of their vendor-derived keys: each is stored once.
    """
    now = now or timezone.now()
    with transaction.atomic():
        delivery = (
            InboundDelivery.objects.select_for_update()
            .select_related("endpoint__client")
            .filter(organization=organization, public_id=delivery_id)
            .first()
        )
        if delivery is None or delivery.state == InboxState.MAPPED:
            return False
        delivery.attempts += 1
        payload = json.loads(delivery.body)
        links = crm_links.known(delivery.endpoint, payload)
        before = dict(links)
        try:
            bodies, error = (
                mapping.map_payload(
                    delivery.endpoint,
                    payload,
                    delivery.vendor_delivery_id,
                    delivery.headers,
                    links=links,
                ),
                "",
            )
        except hubspot.PartialMapping as exc:  # what could be mapped is kept, the rest waits
            bodies, error = exc.events, str(exc)
        except mapping.MappingError as exc:
            bodies, error = [], str(exc)
        results = ingest_events(organization, bodies, source=EventSource.WEBHOOK) if bodies else []
        failed = [r for r in results if r.status == Status.REJECTED]
        if failed:
            error = "; ".join(
                filter(None, [error, _describe([e for r in failed for e in r.errors])])
            )
        if not failed:
            crm_links.remember(delivery.endpoint, before, links, now)
        delivery.event_ids = [r.event_id for r in results if r.event_id]
        delivery.error = error
        delivery.state = InboxState.DEAD if error else InboxState.MAPPED
        delivery.mapped_at = None if error else now
        delivery.save(update_fields=["attempts", "event_ids", "error", "state", "mapped_at"])
    return True


def replay(organization, *, public_id=None) -> int:
    """Publish mapping again for one dead letter, or all of them; how many were queued."""
    from connectors.tasks import map_inbound

    dead = InboundDelivery.objects.filter(organization=organization, state=InboxState.DEAD)
    if public_id is not None:
        dead = dead.filter(public_id=public_id)
    ids = [str(pk) for pk in dead.order_by("received_at").values_list("public_id", flat=True)]
    for delivery_id in ids:
        map_inbound.publish_on_commit(organization_id=organization.pk, delivery_id=delivery_id)
    return len(ids)


def sweep_inbox(organization, older_than, limit: int = 500) -> int:
    """Publish mapping for rows still waiting (their publish was lost with the broker)."""
    from connectors.tasks import map_inbound

    ids = InboundDelivery.objects.filter(
        organization=organization, state=InboxState.RECEIVED, received_at__lt=older_than
    ).values_list("public_id", flat=True)[:limit]
    for delivery_id in ids:
        map_inbound.publish(organization_id=organization.pk, delivery_id=str(delivery_id))
    return len(ids)


@dataclass
class Preview:
    """What a payload would become: the events, or the errors that stop it."""

    events: list[dict]
    errors: list[str]


def preview(endpoint, payload_text: str) -> Preview:
    """Run the endpoint's mapping and the event contract on a pasted payload; stores nothing."""
    try:
        payload = json.loads(payload_text)
    except ValueError as exc:
        return Preview([], [f"The payload is not JSON: {exc}"])
    errors = []
    try:
        links = crm_links.known(endpoint, payload)
        bodies = mapping.map_payload(endpoint, payload, "preview", links=links)
    except hubspot.PartialMapping as exc:
        bodies, errors = exc.events, [str(exc)]
    except mapping.MappingError as exc:
        return Preview([], [str(exc)])
    types = registry.types_for(endpoint.organization)
    for body in bodies:
        _data, problems = validate_envelope(body, types)
        errors += [_describe([problem]) for problem in problems]
    return Preview(bodies, errors)


# --- health -------------------------------------------------------------------------------


def endpoint_health(organization, since: datetime) -> dict[int, dict]:
    """Per endpoint: last delivery, mapped / total since ``since``, dead letters, rejections.

    Two aggregate queries whatever the number of endpoints and rows.
    """
    rows = (
        InboundDelivery.objects.filter(organization=organization)
        .values("endpoint_id")
        .annotate(
            last=Max("received_at"),
            recent=Count("pk", filter=Q(received_at__gte=since)),
            mapped=Count("pk", filter=Q(received_at__gte=since, state=InboxState.MAPPED)),
            dead=Count("pk", filter=Q(state=InboxState.DEAD)),
        )
    )
    health = {row["endpoint_id"]: row for row in rows}
    rejected = (
        RejectedDelivery.objects.filter(organization=organization, received_at__gte=since)
        .values("endpoint_id")
        .annotate(n=Count("pk"))
    )
    for row in rejected:
        health.setdefault(row["endpoint_id"], {})["rejected"] = row["n"]
    for row in health.values():
        row["success_rate"] = (
            round(100 * row["mapped"] / row["recent"]) if row.get("recent") else None
        )
    return health
