"""Hooks through which higher layers (owners, gates, billing) extend deliveries' views.

deliveries must not import them, so they register here from their AppConfig.ready():
``trail_sections[name] = fn(deliverable) -> list[dict]`` adds a section to the trail API,
and ``portal_sections`` adds ``(template_name, fn(request, deliverable) -> context)`` to the
deliverable page.
"""

from collections.abc import Callable

trail_sections: dict[str, Callable] = {}
portal_sections: list[tuple[str, Callable]] = []
