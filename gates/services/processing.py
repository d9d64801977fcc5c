"""The gates step of event processing: start or settle sitemap timers, queue evaluations."""

from django.db import transaction

from deliveries.models import Deliverable, Event, EventSource
from gates.models import (
    CheckName,
    Gate,
    GateMode,
)
from gates.services.sitemaps import settle_sitemap_timers, start_sitemap_timer
from gates.services.verdicts import applies


def applicable_gates(event: Event, deliverable: Deliverable) -> list[Gate]:
    gates = Gate.objects.filter(organization=event.organization_id).exclude(mode=GateMode.OFF)
    return [gate for gate in gates if applies(gate, event, deliverable)]


def on_event_processed(event: Event, deliverable: Deliverable) -> None:
    """Processing step: start/settle sitemap timers, and queue the other gates' evaluations."""
    if event.source == EventSource.MESHLINE:
        return
    if event.event_type == "sitemap.submitted":
        settle_sitemap_timers(event)
    to_evaluate = []
    for gate in applicable_gates(event, deliverable):
        if gate.check_name == CheckName.SITEMAP_SYNC:
            if event.event_type == "page.published":
                start_sitemap_timer(gate, event, deliverable)
        else:
            to_evaluate.append(gate.pk)
    if to_evaluate:
        organization_id, event_id = event.organization_id, str(event.pk)

        def enqueue():
            from gates.tasks import evaluate_gate

            for gate_id in to_evaluate:
                # Broker down: gates.tasks.sweep_unevaluated re-queues the rest.
                if not evaluate_gate.publish(
                    organization_id=organization_id, gate_id=gate_id, event_id=event_id
                ):
                    return

        transaction.on_commit(enqueue)
