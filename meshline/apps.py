from django.apps import AppConfig


class MeshlineConfig(AppConfig):
    name = "meshline"
    verbose_name = "Organizations and access"

    def ready(self) -> None:
        from meshline import checks, schema  # noqa: F401  (register deploy checks, OpenAPI auth)
