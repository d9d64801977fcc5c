"""Hooks through which higher layers (owners, gates, billing) extend deliveries' views.

deliveries must not import them, so they register here from their AppConfig.ready():

- ``trail_sections[name] = fn(deliverable) -> list[dict]`` adds a section to the trail API;
- ``portal_sections`` holds ``(template, fn(request, deliverable) -> context)`` for the
  deliverable page;
- ``dashboard_panels`` holds ``(order, template, fn(request, scope) -> context)`` for the
  dashboard, where ``scope`` is a DashboardScope (organization, client, since).
"""

from collections.abc import Callable

trail_sections: dict[str, Callable] = {}
portal_sections: list[tuple[str, Callable]] = []
dashboard_panels: list[tuple[int, str, Callable]] = []
