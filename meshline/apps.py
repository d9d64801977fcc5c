from django.apps import AppConfig


class MeshlineConfig(AppConfig):
    name = "meshline"
    verbose_name = "Organizations and access"

    def ready(self) -> None:
        from meshline import schema  # noqa: F401  (registers the OpenAPI auth extension)
