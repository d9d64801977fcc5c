"""Demo configuration for the owners app: roles, owner map, rotas, calendar, policies."""

from datetime import date, time

from owners.models import (
    BusinessCalendar,
    EscalationPolicy,
    EscalationStep,
    OwnerRole,
    OwnerRule,
    Rota,
    RotaLayer,
    StepAction,
    WaitKind,
)

ROLES = [
    (
        "seo-delivery-owner",
        "SEO Delivery Owner",
        ["am@northwind.example", "admin@northwind.example"],
    ),
    ("creative-ops-lead", "Creative Ops Lead", ["admin@northwind.example", "am@northwind.example"]),
    ("account-manager", "Account Manager", ["am@northwind.example"]),
]


def configure(organization, users) -> None:
    """Idempotent: looks rows up by their natural keys before creating them."""
    BusinessCalendar.objects.update_or_create(
        organization=organization,
        is_default=True,
        defaults={
            "name": "Berlin office",
            "timezone": "Europe/Berlin",
            "working_hours": {str(day): [["09:00", "17:30"]] for day in range(5)},
        },
    )
    roles = {}
    for slug, name, people in ROLES:
        role, _ = OwnerRole.objects.get_or_create(
            organization=organization, slug=slug, defaults={"name": name}
        )
        roles[slug] = role
        rota, _ = Rota.objects.get_or_create(
            organization=organization, role=role, defaults={"timezone": "Europe/Berlin"}
        )
        RotaLayer.objects.get_or_create(
            organization=organization,
            rota=rota,
            name="Weekly",
            defaults={
                "frequency": "weekly",
                "handoff_time": time(9),
                "start_date": date(2026, 1, 5),
                "people": [users[email].pk for email in people],
            },
        )
    policy, created = EscalationPolicy.objects.get_or_create(
        organization=organization, name="Standard delivery", defaults={"repeat": 1}
    )
    if created:
        for position, (wait, action, target) in enumerate(
            [
                (60, StepAction.NOTIFY_PRIMARY, None),
                (120, StepAction.NOTIFY_BACKUP, None),
                (240, StepAction.NOTIFY_ROLE, roles["account-manager"]),
            ]
        ):
            EscalationStep.objects.create(
                organization=organization,
                policy=policy,
                position=position,
                wait_minutes=wait,
                wait_kind=WaitKind.BUSINESS,
                action=action,
                target_role=target,
            )
    rules = [
        ("page.published", "", "", "seo-delivery-owner", 120, 480),
        ("sitemap.submitted", "", "", "seo-delivery-owner", 120, 480),
        ("asset.uploaded", "", "", "creative-ops-lead", 60, 480),
        ("page.published", "enterprise", "landing_page", "seo-delivery-owner", 30, 240),
        ("", "", "", "account-manager", 240, 960),
    ]
    for event_type, tier, dtype, role, respond, resolve in rules:
        OwnerRule.objects.get_or_create(
            organization=organization,
            event_type=event_type,
            client_tier=tier,
            deliverable_type=dtype,
            defaults={
                "owner_role": roles[role],
                "respond_minutes": respond,
                "resolve_minutes": resolve,
                "escalation_policy": policy,
                "position": 100 if event_type else 1000,
            },
        )
