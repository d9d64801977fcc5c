"""Deployment checks of Meshline's own settings (run by ``manage.py check --deploy``)."""

from django.conf import settings
from django.core.checks import Tags, Warning, register


@register(Tags.security, deploy=True)
def check_meshline_deployment(app_configs, **kwargs) -> list[Warning]:
    warnings = []
    if not settings.MESHLINE_METRICS_TOKEN:
        warnings.append(
            Warning(
                "MESHLINE_METRICS_TOKEN is not set: /metrics answers any connection from "
                "loopback, and behind a reverse proxy on this host that is every client.",
                hint="Set MESHLINE_METRICS_TOKEN; loopback access is meant for development.",
                id="meshline.W001",
            )
        )
    if settings.CACHES["default"]["BACKEND"].endswith("LocMemCache"):
        warnings.append(
            Warning(
                "API rate limits are counted in each process's memory: with several web "
                "processes a key gets the rate once per process.",
                hint="Set MESHLINE_CACHE_URL to a Redis URL shared by the web processes.",
                id="meshline.W002",
            )
        )
    return warnings
