"""Demo configuration of the gates app: the built-in checks on the demo's events."""

from devtools.factories import GateFactory
from gates.models import CheckName, GateMode

GATES = [
    (
        "jsonld",
        "Schema.org JSON-LD",
        CheckName.SCHEMA_CHECK,
        ["page.published"],
        {},
        GateMode.ENFORCE,
        "Add a JSON-LD block (@type WebPage or Product with a name) to the page template, then republish.",
    ),
    (
        "seo-tags",
        "SEO tags",
        CheckName.SEO_TAGS_PRESENT,
        ["page.published"],
        {},
        GateMode.MONITOR,
        "Fill in title, meta description (50-160 chars), canonical, one h1 and Open Graph tags.",
    ),
    (
        "schema-version",
        "Payload schema version",
        CheckName.SCHEMA_VERSION,
        ["page.published"],
        {"min_version": 2},
        GateMode.ENFORCE,
        "Upgrade the CMS connector to payload schema v2.",
    ),
    (
        "sitemap",
        "Sitemap within 24 h",
        CheckName.SITEMAP_SYNC,
        ["page.published"],
        {"deadline_hours": 24},
        GateMode.ENFORCE,
        "Regenerate and submit the sitemap.",
    ),
    (
        "scope",
        "Scope limits",
        CheckName.SCOPE_LIMITS,
        ["asset.uploaded", "change.requested", "time.logged"],
        {},
        GateMode.ENFORCE,
        "Agree the overrun with the client; finance approves the billable item.",
    ),
]


def configure(organization, users) -> None:
    """Idempotent: a gate is looked up by its slug first."""
    for slug, name, check, event_types, parameters, mode, playbook in GATES:
        GateFactory(
            organization=organization,
            slug=slug,
            name=name,
            check_name=check,
            event_types=event_types,
            parameters=parameters,
            mode=mode,
            playbook=playbook,
        )


def after_events(organization) -> None:
    """Sitemap deadlines of the demo's older pages have passed: let them fail now."""
    from gates.services import expire_sitemap_timers

    expire_sitemap_timers(organization)
