"""Template filters for links built from stored data."""

import re

from django import template

register = template.Library()

# The whole URL, scheme to end, must be plain http(s) with no whitespace or control
# characters: browsers drop tabs and newlines inside a scheme ("java\tscript:") and strip
# leading spaces, so anything looser could still become a javascript: or data: link.
_HTTP_URL = re.compile(r"https?://[^\s\x00-\x1f\x7f]+", re.IGNORECASE)


@register.filter
def http_url(value) -> str:
    """``value`` if it is an http(s) URL safe to put in ``href``, else ``""``.

    For URLs that come from events or the admin (a ticket's context): render
    ``{% if value|http_url %}<a href=...>{% else %}{{ value }}{% endif %}``.
    """
    if isinstance(value, str) and _HTTP_URL.fullmatch(value):
        return value
    return ""
