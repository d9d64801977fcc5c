from django.apps import AppConfig


class MeshlineConfig(AppConfig):
    name = "meshline"
    verbose_name = "Organizations and access"

    def ready(self) -> None:
        from django.core.signals import request_started

        from meshline import checks, schema, telemetry  # noqa: F401  (deploy checks, OpenAPI auth)

        # A thread serves request after request: log keys never outlive their request.
        request_started.connect(telemetry.clear_keys, dispatch_uid="meshline.telemetry.clear_keys")
