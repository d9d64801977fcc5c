"""Gate workflows: pick the gates an event triggers, evaluate, act on the verdict.

- ``processing``: the step event processing runs (timers, the batch's verdicts);
- ``verdicts``: one evaluation and what follows from it (ticket opened, kept, resolved);
- ``strictness``: a gate failing too often switches itself to monitor;
- ``sitemaps``: sitemap timers, settled by a listing or expired by the sweep;
- ``visibility``: pass rates, evaluations in the trail and the portal.
"""

from gates.services.processing import on_batch_processed
from gates.services.sitemaps import (
    expire_sitemap_timers,
    settle_sitemap_timers,
    start_sitemap_timer,
)
from gates.services.strictness import check_strictness, restore_gate
from gates.services.verdicts import (
    applies,
    evaluate,
    event_view,
    gate_source_prefix,
    history_for,
    history_types,
    latest_outcome,
    record_verdict,
    resolve_guard,
)
from gates.services.visibility import (
    artifact_response,
    evaluation_data,
    evaluations_for,
    find_artifact,
    pass_rates,
    portal_section,
    trail_section,
)

__all__ = [
    "applies",
    "artifact_response",
    "check_strictness",
    "evaluate",
    "evaluation_data",
    "evaluations_for",
    "event_view",
    "expire_sitemap_timers",
    "find_artifact",
    "gate_source_prefix",
    "history_for",
    "history_types",
    "latest_outcome",
    "on_batch_processed",
    "pass_rates",
    "portal_section",
    "record_verdict",
    "resolve_guard",
    "restore_gate",
    "settle_sitemap_timers",
    "start_sitemap_timer",
    "trail_section",
]
