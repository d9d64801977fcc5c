from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "connectors"
    verbose_name = "Connectors"

    def ready(self) -> None:
        from connectors import demo, services
        from connectors.models import OutboundOutage
        from meshline import extensions as ext

        # Canonical events reach subscribers once processed; Meshline's own entries
        # (ticket.opened, gate.failed...) as they are appended to the trail.
        ext.processing_steps.register("connectors.subscriptions", services.on_batch_processed)
        ext.trail_listeners.register("connectors.subscriptions", services.on_trail_appended)
        ext.ticket_sources.register(
            "connectors.outage",
            ext.TicketSource(
                "outbound_outage", ("outbound_outage__subscription",), OutboundOutage.public_ids
            ),
        )
        ext.nav_links.register(
            "connectors.connections", ext.NavLink("Connections", "connections"), order=60
        )
        ext.demo_configure.register("connectors.endpoints", demo.configure, order=30)
        ext.demo_after_events.register("connectors.webhook", demo.after_events, order=30)
