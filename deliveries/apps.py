from django.apps import AppConfig


class DeliveriesConfig(AppConfig):
    name = "deliveries"
    verbose_name = "Deliveries"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from deliveries.catalog import sync_canonical_event_types

        post_migrate.connect(sync_canonical_event_types, sender=self)

        from meshline.portal import add_nav_link

        add_nav_link(0, "Dashboard", "dashboard")
        add_nav_link(10, "Deliverables", "deliverable-list")
        add_nav_link(20, "Events", "event-list")
        add_nav_link(30, "Clients", "client-list")
