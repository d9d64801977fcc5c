from django.apps import AppConfig


class DeliveriesConfig(AppConfig):
    name = "deliveries"
    verbose_name = "Deliveries"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from deliveries.catalog import sync_canonical_event_types

        post_migrate.connect(sync_canonical_event_types, sender=self)
