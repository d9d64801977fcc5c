"""Test settings: real PostgreSQL and Redis when reachable, SQLite and eager tasks otherwise.

DATABASE_URL / CELERY_BROKER_URL win when set. Otherwise the servers are probed on
127.0.0.1 (PostgreSQL 5432, Redis 6379); tests that need a missing server are skipped and
say so, unless MESHLINE_REQUIRE_SERVICES=1 (CI), which turns every such skip into a failure.
"""

import os
import socket


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


if "DATABASE_URL" not in os.environ and _reachable(5432):
    os.environ["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/meshline"
REDIS_URL = os.environ.get("MESHLINE_TEST_REDIS_URL") or (
    "redis://127.0.0.1:6379/13" if _reachable(6379) else ""
)

from meshline.settings import *  # noqa: E402, F403

# Unit tests run tasks in-process; the worker tests (tests/integration) use REDIS_URL.
CELERY_TASK_ALWAYS_EAGER = True
CELERY_BROKER_URL = "memory://"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Throttle counts (and anything else cached) stay in this process, whatever the environment.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
