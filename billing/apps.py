from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from billing import demo, views
        from billing.models import BillingTicketLink
        from billing.services import overruns
        from meshline import extensions as ext

        # After gates (20): the scope-limits gate judges the same event first.
        ext.processing_steps.register("billing.overruns", overruns.on_batch_processed, order=30)
        ext.ticket_sources.register(
            "billing.link",
            ext.TicketSource(
                "billing_link", ("billing_link__deliverable",), BillingTicketLink.public_ids
            ),
        )
        ext.deliverable_sections.register(
            "billing.items",
            ext.Section("billing/partials/deliverable_billing.html", views.deliverable_section),
            order=30,
        )
        ext.nav_links.register("billing.billing", ext.NavLink("Billing", "billing-queue"), order=40)
        ext.demo_configure.register("billing.settings", demo.configure, order=30)
        ext.demo_after_events.register("billing.invoice", demo.after_events, order=30)
