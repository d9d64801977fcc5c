"""Moved to devtools.demo (developer tooling lives outside the domain apps); these names
stay importable from here so existing imports keep working."""

from devtools.demo import (
    DEMO_CLIENTS,
    DEMO_NAME,
    DEMO_PASSWORD,
    DEMO_SLUG,
    DEMO_TIMEZONE,
    DEMO_USERS,
    demo_events,
    seed_demo,
)

__all__ = [
    "DEMO_CLIENTS",
    "DEMO_NAME",
    "DEMO_PASSWORD",
    "DEMO_SLUG",
    "DEMO_TIMEZONE",
    "DEMO_USERS",
    "demo_events",
    "seed_demo",
]
