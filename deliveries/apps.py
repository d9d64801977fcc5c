from django.apps import AppConfig


class DeliveriesConfig(AppConfig):
    name = "deliveries"
    verbose_name = "Deliveries"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from deliveries.catalog import sync_canonical_event_types
        from deliveries.dashboard import throughput_panel
        from meshline.extensions import NavLink, Section, dashboard_panels, nav_links

        post_migrate.connect(sync_canonical_event_types, sender=self)

        dashboard_panels.register(
            "deliveries.throughput",
            Section("deliveries/partials/throughput_panel.html", throughput_panel),
            order=0,
        )
        nav_links.register("deliveries.dashboard", NavLink("Dashboard", "dashboard"), order=0)
        nav_links.register(
            "deliveries.deliverables", NavLink("Deliverables", "deliverable-list"), order=10
        )
        nav_links.register("deliveries.events", NavLink("Events", "event-list"), order=20)
        nav_links.register("deliveries.clients", NavLink("Clients", "client-list"), order=30)
