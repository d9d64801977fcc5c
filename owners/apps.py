from django.apps import AppConfig


class OwnersConfig(AppConfig):
    name = "owners"
    verbose_name = "Owners, rotas and tickets"

    def ready(self) -> None:
        from meshline import extensions as ext
        from owners import dashboard
        from owners.models import BacklogIncident
        from owners.services import tickets

        ext.trail_sections.register("owners.tickets", tickets.trail_section)
        ext.deliverable_sections.register(
            "owners.tickets",
            ext.Section("owners/partials/deliverable_tickets.html", tickets.portal_section),
            order=10,
        )
        ext.dashboard_panels.register(
            "owners.tickets",
            ext.Section("owners/partials/tickets_panel.html", dashboard.tickets_panel),
            order=10,
        )
        ext.dashboard_panels.register(
            "owners.backlog",
            ext.Section("owners/partials/backlog_panel.html", dashboard.backlog_panel),
            order=5,
        )
        ext.ticket_sources.register(
            "owners.backlog",
            ext.TicketSource("backlog_incident", ("backlog_incident",), BacklogIncident.public_ids),
        )
        ext.nav_links.register("owners.board", ext.NavLink("Board", "board"), order=5)
        ext.nav_links.register("owners.my_queue", ext.NavLink("My queue", "my-queue"), order=6)
        ext.nav_links.register("owners.rotas", ext.NavLink("Rotas", "rotas"), order=40)
