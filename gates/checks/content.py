"""Checks on content quality and on scope limits."""

import textstat

from gates.checks import CheckInput, CheckResult, register
from gates.checks.htmlparse import parse

REVISION_EVENT_TYPES = ["change.requested"]
# Flesch reading ease 60 ("plain English") or more earns full readability points.
PLAIN_ENGLISH = 60.0


def warm_up(**_signal) -> float:
    """Load textstat's dictionaries now (about 0.6 s), not in the first evaluation.

    Connected to Celery's ``worker_init`` (gates/apps.py): the worker's main process loads
    them once before it forks its pool, so no child pays it on its first page (measured in
    bench/gates.py: the first pages of each process waited over a second).
    """
    return float(textstat.flesch_reading_ease("Meshline warms its readability check up."))


def quality_score(html: str, *, target_words: int = 300) -> tuple[float, dict]:
    """0-100 from length, heading structure, readability and duplicated paragraphs.

    Deterministic and explainable: each part's points are returned with the score. Words,
    sentences and syllables are textstat's (pyphen hyphenation and the CMU pronouncing
    dictionary, both shipped in their wheels), so the Flesch reading ease is the standard one.
    """
    page = parse(html)
    text = " ".join(page.paragraphs)
    words = textstat.lexicon_count(text)
    length_points = min(30.0, 30.0 * words / target_words)
    h1 = sum(1 for tag, _ in page.headings if tag == "h1")
    h2 = sum(1 for tag, _ in page.headings if tag == "h2")
    heading_points = (10.0 if h1 == 1 else 0.0) + (10.0 if h2 >= 1 else 0.0)
    flesch = float(textstat.flesch_reading_ease(text)) if words else 0.0
    readability_points = max(0.0, min(30.0, 30.0 * flesch / PLAIN_ENGLISH))
    normalized = [" ".join(p.lower().split()) for p in page.paragraphs if len(p) > 20]
    duplicates = len(normalized) - len(set(normalized))
    duplicate_points = 20.0 if duplicates == 0 else max(0.0, 20.0 - 10.0 * duplicates)
    score = round(length_points + heading_points + readability_points + duplicate_points, 1)
    return score, {
        "words": words,
        "flesch_reading_ease": round(flesch, 1),
        "h1": h1,
        "h2": h2,
        "duplicated_paragraphs": duplicates,
        "points": {
            "length": round(length_points, 1),
            "headings": heading_points,
            "readability": round(readability_points, 1),
            "uniqueness": duplicate_points,
        },
    }


@register("content_quality_score")
def content_quality_score(check_input: CheckInput) -> CheckResult:
    """The payload's quality_score, or one computed from its HTML, against a threshold."""
    threshold = float(check_input.parameters.get("threshold", 60))
    payload = check_input.event.payload
    supplied = payload.get("quality_score")
    if supplied is not None:
        if not isinstance(supplied, int | float) or isinstance(supplied, bool):
            return CheckResult.errored(f"quality_score {supplied!r} is not a number.")
        score, details = float(supplied), {"source": "payload"}
    elif isinstance(payload.get("html"), str):
        score, details = quality_score(
            payload["html"], target_words=int(check_input.parameters.get("target_words", 300))
        )
        details["source"] = "computed"
    else:
        return CheckResult.errored("No quality_score and no html in the payload.")
    details["score"] = score
    details["threshold"] = threshold
    if score < threshold:
        return CheckResult.fail(f"Content quality {score} is below {threshold}.", details=details)
    return CheckResult(True, details=details)


def _latest_limits(check_input: CheckInput) -> dict | None:
    for event in reversed((*check_input.history, check_input.event)):
        if event.event_type == "scope.accepted":
            return event.payload.get("limits") or {}
    return None


@register("scope_limits")
def scope_limits(check_input: CheckInput) -> CheckResult:
    """Revisions, asset size and logged hours within the deliverable's accepted scope;
    beyond is billable."""
    limits = _latest_limits(check_input)
    if limits is None:
        return CheckResult.ok(note="No scope accepted yet: nothing to compare against.")
    problems, details = [], {"limits": limits}
    event = check_input.event
    if event.event_type == "asset.uploaded" and "asset_size_mb" in limits:
        size_mb = event.payload.get("size_bytes", 0) / 1_000_000
        details["asset_size_mb"] = round(size_mb, 2)
        if size_mb > float(limits["asset_size_mb"]):
            problems.append(
                f"Asset is {size_mb:.1f} MB; the scope allows {limits['asset_size_mb']} MB."
            )
    if "revisions" in limits:
        revision_types = set(
            check_input.parameters.get("revision_event_types", REVISION_EVENT_TYPES)
        )
        revisions = sum(1 for e in (*check_input.history, event) if e.event_type in revision_types)
        details["revisions"] = revisions
        if revisions > int(limits["revisions"]):
            problems.append(f"{revisions} revisions; the scope includes {limits['revisions']}.")
    if "hours" in limits:
        hours = float(check_input.totals.get("hours", 0))
        if event.event_type == "time.logged":
            hours += float(event.payload.get("hours", 0))
        details["hours"] = round(hours, 2)
        if hours > float(limits["hours"]):
            problems.append(f"{hours:g} hours logged; the scope includes {limits['hours']}.")
    if problems:
        return CheckResult.fail(*problems, details=details, billing_flag=True)
    return CheckResult(True, details=details)
