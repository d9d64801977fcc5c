from django.apps import AppConfig


class GatesConfig(AppConfig):
    name = "gates"
    verbose_name = "QA gates"

    def ready(self) -> None:
        from celery.signals import worker_init

        from gates import services, views
        from gates.checks import content
        from gates.models import GateTicketLink
        from meshline import extensions as ext

        ext.processing_steps.register("gates.evaluate", services.on_batch_processed, order=20)
        ext.resolve_guards.register("gates.still_failing", services.resolve_guard)
        ext.ticket_sources.register(
            "gates.link",
            ext.TicketSource(
                "gate_link",
                ("gate_link__gate", "gate_link__deliverable"),
                GateTicketLink.public_ids,
            ),
        )
        ext.trail_sections.register("gates.gate_evaluations", services.trail_section)
        ext.deliverable_sections.register(
            "gates.evaluations",
            ext.Section("gates/partials/deliverable_evaluations.html", services.portal_section),
            order=20,
        )
        ext.dashboard_panels.register(
            "gates.gates",
            ext.Section("gates/partials/gates_panel.html", views.gates_panel),
            order=20,
        )
        ext.nav_links.register("gates.gates", ext.NavLink("Gates", "gate-list"), order=35)
        worker_init.connect(content.warm_up, weak=False, dispatch_uid="gates.warm_up")
