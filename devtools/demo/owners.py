"""Demo configuration of the owners app: roles, owner map, rotas, calendar, policies."""

from devtools.factories import (
    OFFICE_HOURS,
    EscalationPolicyFactory,
    OwnerRoleFactory,
    OwnerRuleFactory,
)
from owners.models import BusinessCalendar, EscalationPolicy, StepAction, WaitKind

ROLES = [
    (
        "seo-delivery-owner",
        "SEO Delivery Owner",
        ["am@northwind.example", "admin@northwind.example"],
    ),
    ("creative-ops-lead", "Creative Ops Lead", ["admin@northwind.example", "am@northwind.example"]),
    ("account-manager", "Account Manager", ["am@northwind.example"]),
    # Whoever watches Meshline itself: processing backlog incidents (processing.lagging).
    ("platform-operator", "Platform Operator", ["admin@northwind.example"]),
]
RULES = [
    ("page.published", "", "", "seo-delivery-owner", 120, 480),
    ("sitemap.submitted", "", "", "seo-delivery-owner", 120, 480),
    ("asset.uploaded", "", "", "creative-ops-lead", 60, 480),
    # Without this rule a backlog incident would go to the catch-all (account managers).
    ("processing.lagging", "", "", "platform-operator", 15, 120),
    ("page.published", "enterprise", "landing_page", "seo-delivery-owner", 30, 240),
    ("", "", "", "account-manager", 240, 960),
]


class _DemoRuleFactory(OwnerRuleFactory):
    """The demo looks a rule up by its keys: seeding again adds none."""

    class Meta:
        django_get_or_create = ("organization", "event_type", "client_tier", "deliverable_type")


def configure(organization, users) -> None:
    """Idempotent: looks rows up by their natural keys before creating them."""
    BusinessCalendar.objects.update_or_create(
        organization=organization,
        is_default=True,
        defaults={
            "name": "Berlin office",
            "timezone": "Europe/Berlin",
            "working_hours": OFFICE_HOURS,
        },
    )
    roles = {
        slug: OwnerRoleFactory(
            organization=organization,
            slug=slug,
            name=name,
            people=[users[email] for email in people],
            people__name="Weekly",
        )
        for slug, name, people in ROLES
    }
    policy = EscalationPolicy.objects.filter(
        organization=organization, name="Standard delivery"
    ).first() or EscalationPolicyFactory(
        organization=organization,
        name="Standard delivery",
        repeat=1,
        steps=[
            (60, WaitKind.BUSINESS, StepAction.NOTIFY_PRIMARY),
            (120, WaitKind.BUSINESS, StepAction.NOTIFY_BACKUP),
            (240, WaitKind.BUSINESS, StepAction.NOTIFY_ROLE, roles["account-manager"]),
        ],
    )
    for event_type, tier, dtype, role, respond, resolve in RULES:
        _DemoRuleFactory(
            organization=organization,
            event_type=event_type,
            client_tier=tier,
            deliverable_type=dtype,
            owner_role=roles[role],
            respond_minutes=respond,
            resolve_minutes=resolve,
            escalation_policy=policy,
            position=100 if event_type else 1000,
        )
