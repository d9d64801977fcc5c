"""The organization's own wording on agreements and invoices (BillingSettings): plain text
with ``$placeholders``, filled by ``string.Template``, which substitutes names and nothing
else (no attribute access, no template tags), so tenant text cannot reach into the server."""

from string import Template

AGREEMENT_PLACEHOLDERS = frozenset(
    {"organization", "client", "version", "currency", "valid_from", "valid_until", "accepted_by"}
)
INVOICE_PLACEHOLDERS = frozenset({"organization", "client", "number", "total", "currency"})


def unknown_placeholders(text: str, allowed: frozenset) -> list[str]:
    """Placeholders in ``text`` that ``fill`` would not know, plus malformed ``$`` uses
    (reported as the text that follows the ``$``). A literal dollar sign is ``$$``."""
    unknown = []
    for match in Template.pattern.finditer(text):
        name = match.group("named") or match.group("braced")
        if name is not None and name not in allowed:
            unknown.append(name)
        elif match.group("invalid") is not None:
            start = match.start("invalid")
            unknown.append(text[start : start + 12] or "$")
    return unknown


def fill(text: str, values: dict) -> str:
    """``text`` with its placeholders replaced; unknown ones are left as written."""
    return Template(text).safe_substitute(
        {k: "" if v is None else str(v) for k, v in values.items()}
    )
