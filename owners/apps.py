from django.apps import AppConfig


class OwnersConfig(AppConfig):
    name = "owners"
    verbose_name = "Owners, rotas and tickets"

    def ready(self) -> None:
        from deliveries import demo, extensions
        from meshline.portal import add_nav_link
        from owners import dashboard
        from owners import demo as owners_demo
        from owners.services import tickets

        extensions.trail_sections["tickets"] = tickets.trail_section
        extensions.portal_sections.append(
            ("owners/partials/deliverable_tickets.html", tickets.portal_section)
        )
        if owners_demo.configure not in demo.configure_hooks:
            demo.configure_hooks.append(owners_demo.configure)
        panel = (10, "owners/partials/tickets_panel.html", dashboard.tickets_panel)
        if panel not in extensions.dashboard_panels:
            extensions.dashboard_panels.append(panel)
        add_nav_link(5, "Board", "board")
        add_nav_link(6, "My queue", "my-queue")
        add_nav_link(40, "Rotas", "rotas")
