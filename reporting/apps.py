from django.apps import AppConfig


class ReportingConfig(AppConfig):
    name = "reporting"
    verbose_name = "Reporting and attribution"

    def ready(self) -> None:
        from meshline import extensions as ext
        from reporting import demo, views
        from reporting.models import AttributionMismatch
        from reporting.services import intake

        # After gates (20): a touch's mismatch ticket is resolved in the same transaction.
        ext.processing_steps.register("reporting.intake", intake.on_batch_processed, order=40)
        ext.ticket_sources.register(
            "reporting.mismatch",
            ext.TicketSource(
                "attribution_mismatch",
                ("attribution_mismatch__deliverable",),
                AttributionMismatch.public_ids,
            ),
        )
        ext.dashboard_panels.register(
            "reporting.attribution",
            ext.Section("reporting/partials/attribution_panel.html", views.attribution_panel),
            order=40,
        )
        ext.deliverable_sections.register(
            "reporting.revenue",
            ext.Section("reporting/partials/deliverable_revenue.html", views.revenue_section),
            order=40,
        )
        ext.nav_links.register(
            "reporting.reporting", ext.NavLink("Reporting", "reporting"), order=50
        )
        ext.demo_after_events.register("reporting.demo", demo.after_events, order=40)
