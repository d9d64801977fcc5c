import time

from django.conf import settings
from django.core.management.base import BaseCommand

from meshline.worker_health import heartbeat_age


class Command(BaseCommand):
    help = (
        "Liveness probe for a Celery worker: exit 0 if its consumer touched the heartbeat "
        "file recently, 1 otherwise (not connected to the broker, or stuck)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--file",
            default=settings.MESHLINE_WORKER_HEARTBEAT_FILE,
            help="heartbeat file (MESHLINE_WORKER_HEARTBEAT_FILE)",
        )
        parser.add_argument(
            "--max-age",
            type=int,
            default=settings.MESHLINE_WORKER_HEARTBEAT_MAX_AGE,
            help="seconds after which the heartbeat is stale (MESHLINE_WORKER_HEARTBEAT_MAX_AGE)",
        )

    def handle(self, file, max_age, **options):
        age = heartbeat_age(file, now=time.time())
        if age is None:
            self.stderr.write(f"unhealthy: no heartbeat file at {file}")
            raise SystemExit(1)
        if age > max_age:
            self.stderr.write(f"unhealthy: last heartbeat {age:.0f}s ago (max {max_age}s)")
            raise SystemExit(1)
        self.stdout.write(f"healthy: last heartbeat {age:.1f}s ago")
