from django.apps import AppConfig


class OwnersConfig(AppConfig):
    name = "owners"
    verbose_name = "Owners, rotas and tickets"

    def ready(self) -> None:
        from deliveries import demo, extensions
        from owners import demo as owners_demo
        from owners.services import tickets

        extensions.trail_sections["tickets"] = tickets.trail_section
        extensions.portal_sections.append(
            ("owners/partials/deliverable_tickets.html", tickets.portal_section)
        )
        if owners_demo.configure not in demo.configure_hooks:
            demo.configure_hooks.append(owners_demo.configure)
