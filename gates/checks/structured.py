"""Checks on a page's structure: schema.org JSON-LD, SEO tags, payload schema version."""

import json

from gates.checks import CheckInput, CheckResult, register
from gates.checks.htmlparse import parse

DEFAULT_ALLOWED_TYPES = [
    "WebPage",
    "Article",
    "BlogPosting",
    "Product",
    "FAQPage",
    "Organization",
    "LocalBusiness",
    "Service",
    "BreadcrumbList",
    "Event",
]
# Per type, what schema.org consumers (search engines' rich results) need; "*" for the rest.
# A BreadcrumbList or an FAQPage has no name: its items are what it is for.
DEFAULT_REQUIRED = {
    "*": ["name"],
    "Product": ["name", "offers"],
    "Article": ["headline"],
    "BlogPosting": ["headline"],
    "BreadcrumbList": ["itemListElement"],
    "FAQPage": ["mainEntity"],
}


def _html(check_input: CheckInput) -> str | None:
    html = check_input.event.payload.get("html")
    return html if isinstance(html, str) and html.strip() else None


def _types(node: dict) -> list[str]:
    value = node.get("@type")
    if isinstance(value, str):
        return [value]
    # A malformed @type (object, number) has no usable type: the page fails, not the check.
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _nodes(documents: list) -> list[dict]:
    """Top-level nodes: each object, or the members of its @graph (an array or one object)."""
    nodes = []
    for item in documents:
        if not isinstance(item, dict):
            continue
        graph = item.get("@graph")
        if graph is None:
            nodes.append(item)
        else:
            nodes.extend(
                n for n in (graph if isinstance(graph, list) else [graph]) if isinstance(n, dict)
            )
    return nodes


@register("schema_check")
def schema_check(check_input: CheckInput) -> CheckResult:
    """JSON-LD present, valid JSON, an allowed @type, and that type's required properties."""
    html = _html(check_input)
    if html is None:
        return CheckResult.errored("The event has no payload.html to check.")
    params = check_input.parameters
    allowed = set(params.get("allowed_types") or DEFAULT_ALLOWED_TYPES)
    required = params.get("required_properties") or DEFAULT_REQUIRED
    blocks = parse(html).jsonld
    if not blocks:
        return CheckResult.fail(
            'No schema.org JSON-LD (<script type="application/ld+json">) in the page.',
            details={"artifact": "page html", "jsonld_blocks": 0},
        )
    nodes, problems = [], []
    has_context = False
    for index, block in enumerate(blocks):
        try:
            data = json.loads(block)
        except json.JSONDecodeError as exc:
            problems.append(
                f"JSON-LD block {index + 1} is not valid JSON: {exc.msg} "
                f"(line {exc.lineno}, column {exc.colno})."
            )
            continue
        documents = data if isinstance(data, list) else [data]
        # A top-level @context covers the nodes of its @graph (the Yoast/WordPress shape).
        has_context = has_context or any(
            isinstance(item, dict) and item.get("@context") for item in documents
        )
        nodes.extend(_nodes(documents))
    typed = [node for node in nodes if set(_types(node)) & allowed]
    if not typed and not problems:
        found = sorted({t for node in nodes for t in _types(node)}) or ["none"]
        problems.append(
            f"No JSON-LD node has an allowed @type (found: {', '.join(found)}; "
            f"allowed: {', '.join(sorted(allowed))})."
        )
    if nodes and not has_context and not any(node.get("@context") for node in nodes):
        problems.append("JSON-LD has no @context (expected https://schema.org).")
    for node in typed:
        for node_type in _types(node):
            for prop in required.get(node_type, required.get("*", [])):
                if node.get(prop) in (None, "", []):
                    problems.append(f"{node_type} is missing required property '{prop}'.")
    if problems:
        return CheckResult.fail(*problems, details={"jsonld": blocks[:3]})
    return CheckResult.ok(types=sorted({t for node in typed for t in _types(node)}))


@register("seo_tags_present")
def seo_tags_present(check_input: CheckInput) -> CheckResult:
    """Title, meta description within bounds, canonical, exactly one h1, Open Graph basics."""
    html = _html(check_input)
    if html is None:
        return CheckResult.errored("The event has no payload.html to check.")
    params = check_input.parameters
    min_desc, max_desc = params.get("description_min", 50), params.get("description_max", 160)
    max_title = params.get("title_max", 70)
    page = parse(html)
    problems = []
    if not page.title:
        problems.append("Missing <title>.")
    elif len(page.title) > max_title:
        problems.append(f"<title> is {len(page.title)} characters; at most {max_title}.")
    description = page.metas.get("description", "")
    if not description:
        problems.append('Missing <meta name="description">.')
    elif not min_desc <= len(description) <= max_desc:
        problems.append(
            f"Meta description is {len(description)} characters; expected {min_desc}-{max_desc}."
        )
    if not page.links.get("canonical"):
        problems.append('Missing <link rel="canonical">.')
    h1_count = sum(1 for tag, _ in page.headings if tag == "h1")
    if h1_count != 1:
        problems.append(f"Expected exactly one <h1>; found {h1_count}.")
    for prop in ("og:title", "og:description", "og:image"):
        if not page.metas.get(prop):
            problems.append(f'Missing Open Graph <meta property="{prop}">.')
    if problems:
        return CheckResult.fail(
            *problems, details={"title": page.title, "description": description}
        )
    return CheckResult.ok(title=page.title)


@register("schema_version")
def schema_version(check_input: CheckInput) -> CheckResult:
    """The payload declares a schema version at or above the gate's minimum."""
    minimum = int(check_input.parameters.get("min_version", 1))
    declared = check_input.event.payload.get("schema_version")
    if declared is None:
        return CheckResult.fail(f"The payload declares no schema_version (minimum {minimum}).")
    if not isinstance(declared, int) or isinstance(declared, bool):
        return CheckResult.errored(f"schema_version {declared!r} is not a whole number.")
    if declared < minimum:
        return CheckResult.fail(f"schema_version {declared} is below the minimum {minimum}.")
    return CheckResult.ok(schema_version=declared)
