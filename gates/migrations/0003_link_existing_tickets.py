"""Link the gate tickets opened before GateTicketLink existed, the one time their source_key
is parsed: failures are ``gate:<gate>:deliverable:<deliverable>:<evaluation>``, triage
tickets ``gate:<gate>:triage:<when>``. Their context loses its internal ``gate_id``."""

import uuid

from django.db import migrations


def link(apps, schema_editor):
    Ticket = apps.get_model("owners", "Ticket")
    Gate = apps.get_model("gates", "Gate")
    GateEvaluation = apps.get_model("gates", "GateEvaluation")
    GateTicketLink = apps.get_model("gates", "GateTicketLink")
    gates = dict(Gate.objects.values_list("pk", "organization_id"))
    tickets = Ticket.objects.filter(
        source__in=["gate_failure", "triage"], source_key__startswith="gate:"
    ).only("pk", "organization_id", "deliverable_id", "source_key", "context")
    for ticket in tickets.iterator(chunk_size=2000):
        parts = ticket.source_key.split(":")
        gate_id = int(parts[1]) if parts[1].isdigit() else None
        if gates.get(gate_id) != ticket.organization_id:
            continue  # not a gate we know (hand-made key): leave it unlinked
        fields = {"organization_id": ticket.organization_id, "gate_id": gate_id}
        if len(parts) == 5 and parts[2] == "deliverable" and ticket.deliverable_id:
            fields["deliverable_id"] = ticket.deliverable_id
            try:
                evaluation = uuid.UUID(parts[4])
            except ValueError:
                evaluation = None
            if (
                evaluation
                and GateEvaluation.objects.filter(pk=evaluation, opened__isnull=True).exists()
            ):
                fields["evaluation_id"] = evaluation
        GateTicketLink.objects.get_or_create(ticket_id=ticket.pk, defaults=fields)
        if "gate_id" in ticket.context:
            ticket.context.pop("gate_id")
            ticket.save(update_fields=["context"])


class Migration(migrations.Migration):
    dependencies = [("gates", "0002_ticket_links")]

    operations = [migrations.RunPython(link, migrations.RunPython.noop)]
