"""The canonical event types of the event contract, with their payload schemas.

Each entry is one version of a type. To change a schema, add an entry with the next
version; never edit a version that has shipped, since stored events were validated
against it. ``sync_canonical_event_types`` (run after every migrate) inserts what is missing.
"""

from deliveries.models import LifecycleState

_DELIVERABLE_HINTS = {
    # Any event may describe its deliverable; the first one creates it with these.
    "deliverable_type": {
        "type": "string",
        "enum": ["brief", "asset", "landing_page", "seo_page", "other"],
    },
    "title": {"type": "string", "maxLength": 300},
}
_URL = {"type": "string", "pattern": "^https?://", "maxLength": 1000}


def _schema(required: list[str], properties: dict) -> dict:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "required": required,
        "properties": {**_DELIVERABLE_HINTS, **properties},
        "additionalProperties": True,
    }


_INTERNAL = {"type": "object"}
_INSTANT = {
    "type": "string",
    "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})$",
}


def _scope_schema(*, recurring: bool) -> dict:
    """scope.accepted from v2 on: limits, who signed, currency, rate card, validity."""
    rate = {
        "rate": {"type": "string", "pattern": r"^\d{1,9}(\.\d{1,2})?$"},
        "unit": {"type": "string", "minLength": 1, "maxLength": 40},
    }
    if recurring:
        rate["recurring"] = {"enum": ["month"]}
    return _schema(
        ["limits"],
        {
            "limits": {
                "type": "object",
                "properties": {
                    "revisions": {"type": "integer", "minimum": 0},
                    "asset_size_mb": {"type": "number", "minimum": 0},
                    "hours": {"type": "number", "minimum": 0},
                },
                "additionalProperties": {"type": "number", "minimum": 0},
            },
            "signed_by": {"type": "string", "maxLength": 200},
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "rates": {
                "type": "object",
                "additionalProperties": {
                    "type": "object",
                    "required": ["rate"],
                    "properties": rate,
                    "additionalProperties": False,
                },
            },
            "valid_from": _INSTANT,
            "valid_until": _INSTANT,
        },
    )


CANONICAL_EVENT_TYPES: list[dict] = [
    {
        "name": "intake.received",
        "version": 1,
        "description": "A brief or request arrived.",
        "advances_to": LifecycleState.INTAKE,
        "payload_schema": _schema(
            [],
            {
                "requested_by": {"type": "string", "maxLength": 200},
                "due_date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
            },
        ),
    },
    {
        "name": "scope.accepted",
        "version": 1,
        "description": "The client accepted a scope with its limits.",
        "advances_to": LifecycleState.SCOPED,
        "payload_schema": _schema(
            ["limits"],
            {
                "limits": {
                    "type": "object",
                    "properties": {
                        "revisions": {"type": "integer", "minimum": 0},
                        "asset_size_mb": {"type": "number", "minimum": 0},
                        "hours": {"type": "number", "minimum": 0},
                    },
                    "additionalProperties": {"type": "number", "minimum": 0},
                },
                "signed_by": {"type": "string", "maxLength": 200},
            },
        ),
    },
    {
        # v2: the same limits, plus what billing needs to price work beyond them.
        "name": "scope.accepted",
        "version": 2,
        "description": "The client accepted a scope with its limits, rate card and validity.",
        "advances_to": LifecycleState.SCOPED,
        "payload_schema": _scope_schema(recurring=False),
    },
    {
        # v3: a rate card entry may be a recurring fee ("recurring": "month"), billed once a
        # month while the agreement is in force (e.g. a retainer). Otherwise as v2.
        "name": "scope.accepted",
        "version": 3,
        "description": "The client accepted a scope with its limits, rate card (recurring "
        "fees included) and validity.",
        "advances_to": LifecycleState.SCOPED,
        "payload_schema": _scope_schema(recurring=True),
    },
    {
        "name": "asset.uploaded",
        "version": 1,
        "description": "A creative asset was uploaded.",
        "advances_to": LifecycleState.IN_PRODUCTION,
        "payload_schema": _schema(
            ["asset_id", "size_bytes"],
            {
                "asset_id": {"type": "string", "minLength": 1, "maxLength": 200},
                "filename": {"type": "string", "maxLength": 300},
                "size_bytes": {"type": "integer", "minimum": 0},
                "mime_type": {"type": "string", "maxLength": 100},
                "revision": {"type": "integer", "minimum": 0},
            },
        ),
    },
    {
        "name": "asset.approved",
        "version": 1,
        "description": "An asset was approved.",
        "advances_to": LifecycleState.APPROVED,
        "payload_schema": _schema(
            ["asset_id"],
            {
                "asset_id": {"type": "string", "minLength": 1, "maxLength": 200},
                "approved_by": {"type": "string", "maxLength": 200},
            },
        ),
    },
    {
        "name": "page.published",
        "version": 1,
        "description": "A page went live at its URL.",
        "advances_to": LifecycleState.PUBLISHED,
        "payload_schema": _schema(
            ["url"],
            {
                "url": _URL,
                "html": {"type": "string"},
                "schema_version": {"type": "integer", "minimum": 1},
            },
        ),
    },
    {
        "name": "sitemap.submitted",
        "version": 1,
        "description": "A sitemap listing page URLs was submitted to search engines.",
        "advances_to": LifecycleState.INDEXED,
        "payload_schema": _schema(
            ["sitemap_url", "urls"],
            {"sitemap_url": _URL, "urls": {"type": "array", "items": _URL, "maxItems": 50000}},
        ),
    },
    {
        "name": "search_export.processed",
        "version": 1,
        "description": "Search impressions and clicks for a deliverable and day.",
        "advances_to": "",
        "payload_schema": _schema(
            ["date", "impressions", "clicks"],
            {
                "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                "impressions": {"type": "integer", "minimum": 0},
                "clicks": {"type": "integer", "minimum": 0},
            },
        ),
    },
    {
        "name": "invoice.generated",
        "version": 1,
        "description": "An invoice covering the deliverable was issued.",
        "advances_to": "",
        "payload_schema": _schema(
            ["invoice_id"],
            {
                "invoice_id": {"type": "string", "minLength": 1},
                "amount": {"type": "number"},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            },
        ),
    },
    {
        "name": "change.requested",
        "version": 1,
        "description": "The client asked for a change.",
        "advances_to": "",
        "payload_schema": _schema(
            ["summary"],
            {
                "summary": {"type": "string", "minLength": 1, "maxLength": 2000},
                "requested_by": {"type": "string", "maxLength": 200},
            },
        ),
    },
    {
        "name": "time.logged",
        "version": 1,
        "description": "Hours worked on the deliverable (counted against the scope's hours).",
        "advances_to": "",
        "payload_schema": _schema(
            ["hours"],
            {
                "hours": {"type": "number", "exclusiveMinimum": 0, "maximum": 24},
                "person": {"type": "string", "maxLength": 200},
                "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                "description": {"type": "string", "maxLength": 2000},
            },
        ),
    },
    {
        "name": "crm.touch",
        "version": 1,
        "description": "A CRM touch (lead, contact, opportunity) tied to the deliverable.",
        "advances_to": "",
        "payload_schema": _schema(
            ["touch_id"],
            {
                "touch_id": {"type": "string", "minLength": 1},
                "channel": {"type": "string", "maxLength": 100},
                "amount": {"type": "number"},
            },
        ),
    },
    {
        "name": "search_export.processed",
        "version": 2,
        "description": "Search numbers for one page of the deliverable and one day, as "
        "Search Console's search-analytics export has them.",
        "advances_to": "",
        "payload_schema": _schema(
            ["date", "impressions", "clicks"],
            {
                "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                "impressions": {"type": "integer", "minimum": 0},
                "clicks": {"type": "integer", "minimum": 0},
                "url": _URL,
                "ctr": {"type": "number", "minimum": 0, "maximum": 1},
                "position": {"type": "number", "minimum": 0},
            },
        ),
    },
    {
        "name": "crm.touch",
        "version": 2,
        "description": "A CRM touch (visit, MQL, SQL, opportunity, closed-won) tied to the "
        "deliverable, with its contact, landing URL and campaign parameters.",
        "advances_to": "",
        "payload_schema": _schema(
            ["touch_id"],  # a superset of version 1: its senders keep working
            {
                "touch_id": {"type": "string", "minLength": 1, "maxLength": 200},
                "touch_type": {
                    "type": "string",
                    "enum": ["visit", "mql", "sql", "opportunity", "closed_won"],
                },
                "contact_id": {"type": "string", "maxLength": 200},
                "account_id": {"type": "string", "maxLength": 200},
                "landing_url": _URL,
                "utm": {
                    "type": "object",
                    "additionalProperties": {"type": "string", "maxLength": 200},
                },
                "channel": {"type": "string", "maxLength": 100},
                "amount": {"type": "number", "minimum": 0},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            },
        ),
    },
    {
        "name": "revenue.recognized",
        "version": 1,
        "description": "Revenue was recognised for an invoice or opportunity the deliverable "
        "contributed to.",
        "advances_to": "",
        "payload_schema": _schema(
            ["reference", "amount", "currency", "date"],
            {
                "reference": {"type": "string", "minLength": 1, "maxLength": 200},
                "amount": {"type": "number", "minimum": 0, "maximum": 1e12},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
                "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$"},
                "contact_id": {"type": "string", "maxLength": 200},
                "account_id": {"type": "string", "maxLength": 200},
            },
        ),
    },
] + [
    {
        "name": name,
        "version": 1,
        "description": description,
        "advances_to": "",
        "internal": True,
        "payload_schema": _INTERNAL,
    }
    for name, description in [
        ("gate.failed", "A QA gate failed (written by Meshline)."),
        ("gate.passed", "A QA gate passed after failing (written by Meshline)."),
        ("ticket.opened", "A remediation ticket was opened (written by Meshline)."),
        ("ticket.acknowledged", "A ticket was acknowledged (written by Meshline)."),
        ("ticket.escalated", "A ticket moved up its escalation path (written by Meshline)."),
        ("ticket.reassigned", "A ticket got another assignee (written by Meshline)."),
        ("ticket.resolved", "A ticket was resolved (written by Meshline)."),
        ("ticket.cancelled", "A ticket was cancelled (written by Meshline)."),
        ("rota.handoff", "Duty for a role passed to another person (written by Meshline)."),
        ("scope.agreement_signed", "A scope agreement was signed (written by Meshline)."),
        (
            "billing.item_proposed",
            "Work beyond scope became a billable item (written by Meshline).",
        ),
        ("billing.item_approved", "Finance approved a billable item (written by Meshline)."),
        ("billing.item_rejected", "Finance rejected a billable item (written by Meshline)."),
        ("billing.item_adjusted", "Finance adjusted a billable item (written by Meshline)."),
        ("invoice.generated", "An invoice was finalised (written by Meshline)."),
        ("credit_note.issued", "A credit note corrected an invoice (written by Meshline)."),
        ("dispute.opened", "A client disputed an invoiced line (written by Meshline)."),
        (
            "export.generated",
            "A daily deliverable export was written: its address and SHA-256 (written by "
            "Meshline).",
        ),
        (
            "dispute.resolved",
            "A dispute was upheld (credited) or rejected (written by Meshline).",
        ),
        ("flow.completed", "A flow run reached its outcome (written by Meshline)."),
        ("flow.breached", "A flow run missed a due time (written by Meshline)."),
        ("flow.exception", "A flow could not start: data missing (written by Meshline)."),
        ("config.proposed", "A configuration change was proposed (written by Meshline)."),
        ("config.applied", "A configuration change was applied (written by Meshline)."),
        ("config.rejected", "A configuration change was rejected (written by Meshline)."),
        ("config.rolled_back", "A configuration change was rolled back (written by Meshline)."),
        ("incident.declared", "An incident paused non-essential flows (written by Meshline)."),
        ("incident.ended", "An incident ended; paused flows resumed (written by Meshline)."),
        (
            "processing.lagging",
            "Processing fell behind its lag or depth limit: an incident opened (written by "
            "Meshline). Route it to the operator role in the owner map.",
        ),
        (
            "processing.caught_up",
            "Processing caught up: the backlog incident closed itself (written by Meshline).",
        ),
        (
            "audit.sampled",
            "The month's sample audit drew its deliverables and froze their forensic reports "
            "(written by Meshline).",
        ),
        (
            "audit.reviewed",
            "Someone reviewed a sampled deliverable's forensic report and recorded what they "
            "found (written by Meshline).",
        ),
        (
            "governance.review_overdue",
            "A flow, gate or owner rule is due for review (written by Meshline).",
        ),
        ("governance.reviewed", "A flow, gate or owner rule was reviewed (written by Meshline)."),
        (
            "governance.assurance_requested",
            "A person was asked to confirm the SLA status of their open tickets this week "
            "(written by Meshline).",
        ),
        (
            "governance.assurance_confirmed",
            "A person confirmed the SLA status of their open tickets (written by Meshline).",
        ),
        (
            "governance.assurance_missed",
            "A weekly assurance check went unconfirmed past its due time: it escalates as a "
            "ticket (written by Meshline). Route it in the owner map.",
        ),
        (
            "subscription.failing",
            "An outbound subscription's receiver keeps failing: its breaker opened and a "
            "ticket went to the owner map's owner (written by Meshline).",
        ),
        (
            "subscription.recovered",
            "A failing subscription's receiver answered again (written by Meshline).",
        ),
        (
            "outbound.outage_started",
            "Several subscriptions' receivers fail at once: one systemic outage and one "
            "ticket instead of one per receiver (written by Meshline).",
        ),
        (
            "outbound.outage_ended",
            "Every failing subscription recovered: the systemic outage closed itself "
            "(written by Meshline).",
        ),
    ]
]


def sync_canonical_event_types(**kwargs) -> None:
    """Insert canonical type versions that the database does not have yet (idempotent)."""
    from deliveries.models import EventType

    using = kwargs.get("using", "default")
    existing = set(
        EventType.objects.using(using)
        .filter(organization__isnull=True)
        .values_list("name", "version")
    )
    missing = [
        EventType(organization=None, **entry)
        for entry in CANONICAL_EVENT_TYPES
        if (entry["name"], entry["version"]) not in existing
    ]
    if missing:
        EventType.objects.using(using).bulk_create(missing, ignore_conflicts=True)
