"""Demo data for flows: the four template flows, runs in every state, a pending change.

``configure`` installs the templates before the demo's events, so those events start and
advance runs as they are processed; ``demo_events`` adds a few of its own (an MQL with and
without its contact, a brief still in time); ``after_events`` breaches what is overdue and
leaves one proposal waiting for the second admin. Idempotent like the rest of the seed.
"""

from datetime import timedelta

from flows.catalog import TEMPLATES
from flows.models import Change, Flow, Incident, Review
from flows.services import assurance, changes, incidents, runs
from meshline.models import Role
from meshline.services import create_user
from owners.models import OwnerRole

SECOND_ADMIN = "lead@northwind.example"
FLOW_OWNERS = {"brief-to-live": "seo-delivery-owner", "lead-to-brief": "account-manager"}


def configure(organization, users) -> None:
    from devtools.demo import DEMO_PASSWORD

    # Four-eyes needs two admins: the demo's admin proposes, this one approves.
    create_user(SECOND_ADMIN, organization, Role.ADMIN, DEMO_PASSWORD)
    for template in TEMPLATES:
        role = OwnerRole.objects.filter(
            organization=organization, slug=FLOW_OWNERS.get(template, "")
        ).first()
        runs.install(organization, template, owner_role=role)


def demo_events(organization) -> list[dict]:
    """Events of their own, timed from the organization's creation (the first seed)."""
    anchor = organization.created_at.replace(second=0, microsecond=0)

    def event(event_type, ref, client, at, payload):
        return {
            "event_type": event_type,
            "deliverable_id": ref,
            "client_id": client,
            "idempotency_key": f"demo-flows-{ref}-{event_type}",
            "actor": {"role": "crm", "id": "hubspot"},
            "occurred_at": at.isoformat(),
            "payload": payload,
        }

    return [
        # A qualified lead that went on to a brief and a scope: lead-to-brief completes.
        event(
            "crm.touch",
            "BR-9001",
            "acme",
            anchor - timedelta(days=6),
            {
                "touch_id": "T-9001",
                "stage": "mql",
                "contact_email": "cmo@acme.example",
                "deliverable_type": "brief",
                "title": "Acme lead: loyalty programme",
            },
        ),
        event(
            "intake.received",
            "BR-9001",
            "acme",
            anchor - timedelta(days=5),
            {"requested_by": "cmo@acme.example"},
        ),
        event(
            "scope.accepted",
            "BR-9001",
            "acme",
            anchor - timedelta(days=4),
            {"limits": {"revisions": 2, "hours": 10}},
        ),
        # A qualified lead without a contact: the flow cannot start, a person is asked.
        event(
            "crm.touch",
            "BR-9002",
            "globex",
            anchor - timedelta(days=2),
            {
                "touch_id": "T-9002",
                "stage": "mql",
                "deliverable_type": "brief",
                "title": "Globex lead: patient portal",
            },
        ),
        event(
            "intake.received",
            "BR-9002",
            "globex",
            anchor - timedelta(days=1),
            {"requested_by": "it@globex.example"},
        ),
        # A brief that arrived an hour ago: brief-to-live is running, nothing is late.
        event(
            "intake.received",
            "LP-9003",
            "initech",
            anchor - timedelta(hours=1),
            {
                "requested_by": "marketing@initech.example",
                "deliverable_type": "landing_page",
                "title": "Initech launch page",
            },
        ),
        # A change request still being worked on: change-request is running.
        event(
            "change.requested",
            "LP-9003",
            "initech",
            anchor - timedelta(minutes=50),
            {"summary": "Swap the hero image"},
        ),
    ]


def after_events(organization) -> None:
    runs.breach_due_runs(organization)
    _past_incident(organization)
    _propose_owner_change(organization)
    _reviews_and_assurance(organization)


def _reviews_and_assurance(organization) -> None:
    """Every flow, gate and owner rule gets its review; brief-to-live's is overdue (on the
    SEO Delivery Owner's queue) and one rule was reviewed last month. The week the demo was
    made opens its assurance checks for everyone with open tickets (once: the same week)."""
    anchor = organization.created_at.replace(second=0, microsecond=0)
    assurance.sync(organization, anchor)
    brief = Flow.objects.filter(organization=organization, slug="brief-to-live").first()
    if brief is not None:
        Review.objects.filter(
            organization=organization, kind="flow", target_id=brief.pk, last_reviewed_at=None
        ).update(due_at=anchor - timedelta(days=3))
    reviewed = Review.objects.filter(organization=organization, kind="owner_rule").first()
    if reviewed is not None and reviewed.last_reviewed_at is None:
        from django.contrib.auth import get_user_model

        admin = get_user_model().objects.get(username="admin@northwind.example")
        assurance.complete(
            reviewed, admin, note="Checked against the new rota.", now=anchor - timedelta(days=30)
        )
    assurance.sync(organization, anchor)  # tells the owners of what is overdue now
    assurance.open_week(organization, anchor)


def _past_incident(organization) -> None:
    """A short CMS outage, declared and ended: the running runs got 20 minutes back."""
    if Incident.objects.filter(organization=organization).exists():
        return
    from django.contrib.auth import get_user_model

    lead = get_user_model().objects.get(username=SECOND_ADMIN)
    start = organization.created_at.replace(second=0, microsecond=0) - timedelta(minutes=30)
    incident = incidents.declare(organization, lead, "CMS publishing API down", at=start)
    incidents.end(incident, lead, at=start + timedelta(minutes=20))


def _propose_owner_change(organization) -> None:
    """The done-when story: the admin proposes a new owner for brief-to-live; the second
    admin approves it (or not) in the portal, and can roll it back."""
    flow = Flow.objects.filter(organization=organization, slug="brief-to-live").first()
    role = OwnerRole.objects.filter(organization=organization, slug="creative-ops-lead").first()
    if flow is None or role is None or flow.owner_role_id == role.pk:
        return
    # Proposed once: a re-seed after someone decided it proposes nothing again.
    if Change.objects.filter(organization=organization, kind="flow", target_id=flow.pk).exists():
        return
    from django.contrib.auth import get_user_model

    admin = get_user_model().objects.get(username="admin@northwind.example")
    changes.propose(
        flow,
        {"owner_role": role.pk},
        admin,
        reason="Creative ops owns late briefs from next week.",
    )
