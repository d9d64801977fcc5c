from django.apps import AppConfig


class GatesConfig(AppConfig):
    name = "gates"
    verbose_name = "QA gates"

    def ready(self) -> None:
        from deliveries import demo, extensions
        from deliveries.services import register_step
        from gates import demo as gates_demo
        from gates import services, views
        from meshline.portal import add_nav_link
        from owners.services import tickets

        register_step(services.on_event_processed)
        if services.resolve_guard not in tickets.resolve_guards:
            tickets.resolve_guards.append(services.resolve_guard)
        extensions.trail_sections["gate_evaluations"] = services.trail_section
        extensions.portal_sections.append(
            ("gates/partials/deliverable_evaluations.html", services.portal_section)
        )
        if gates_demo.configure not in demo.configure_hooks:
            demo.configure_hooks.append(gates_demo.configure)
            demo.after_hooks.append(gates_demo.after_events)
        panel = (20, "gates/partials/gates_panel.html", views.gates_panel)
        if panel not in extensions.dashboard_panels:
            extensions.dashboard_panels.append(panel)
        add_nav_link(35, "Gates", "gate-list")
