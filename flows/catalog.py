"""Shipped flow templates: the seeds' four trigger-to-outcome paths.

An organization installs a template as an ordinary flow (``services.runs.install``) and
edits it from there; a template is never referenced again, so changing one here changes
no organization's flow.
"""

DAY = 8 * 60  # a business day, in business minutes (09:00-17:00)

TEMPLATES: dict[str, dict] = {
    "lead-to-brief": {
        "name": "Lead to brief",
        "description": "A marketing-qualified lead becomes an accepted scope.",
        "trigger_event_type": "crm.touch",
        "payload_conditions": {"stage": "mql"},
        "required_fields": ["contact_email"],
        "milestones": [
            {
                "event_type": "intake.received",
                "name": "Brief received",
                "due_minutes": 2 * DAY,
                "due_kind": "business",
            }
        ],
        "outcome_event_type": "scope.accepted",
        "due_minutes": 5 * DAY,
        "due_kind": "business",
        "runbook": "1. Call the lead's contact within a day.\n2. Send the brief template.\n"
        "3. Get the scope signed before the due time, or tell the account manager why not.",
        "affects_billing": True,
    },
    "brief-to-live": {
        "name": "Brief to live",
        "description": "An approved brief becomes a live page listed in the sitemap.",
        "trigger_event_type": "intake.received",
        "deliverable_types": ["landing_page", "seo_page"],
        "required_fields": ["requested_by"],
        "milestones": [
            {
                "event_type": "asset.approved",
                "name": "Assets approved",
                "due_minutes": 3 * DAY,
                "due_kind": "business",
            },
            {
                "event_type": "page.published",
                "name": "Page live",
                "due_minutes": 5 * DAY,
                "due_kind": "business",
            },
        ],
        "outcome_event_type": "sitemap.submitted",
        "due_minutes": 6 * DAY,
        "due_kind": "business",
        "runbook": "1. Check which milestone is late on the run.\n"
        "2. Assets late: chase the client's brand approver.\n"
        "3. Page late: ask the CMS team for a publish slot today.\n"
        "4. Sitemap late: resubmit the sitemap and confirm the URL is listed.",
        "affects_client_sla": True,
        "essential": True,
    },
    "change-request": {
        "name": "Change request",
        "description": "A client's change request is delivered and approved.",
        "trigger_event_type": "change.requested",
        "required_fields": ["summary"],
        "milestones": [],
        "outcome_event_type": "asset.approved",
        "due_minutes": 3 * DAY,
        "due_kind": "business",
        "runbook": "1. Confirm the change is inside the scope's revisions.\n"
        "2. Deliver the change and ask the client for approval.",
        "affects_client_sla": True,
    },
    "publish-to-indexed": {
        "name": "Publish to indexed",
        "description": "A published page is submitted in a sitemap within a day.",
        "trigger_event_type": "page.published",
        "required_fields": ["url"],
        "milestones": [],
        "outcome_event_type": "sitemap.submitted",
        "due_minutes": 24 * 60,
        "due_kind": "wall",
        "runbook": "1. Regenerate the sitemap.\n2. Submit it in Search Console.",
    },
}
