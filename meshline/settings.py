"""Meshline settings: one module, driven by environment variables (see .env.example).

With no environment at all Meshline runs on its embedded default: SQLite, no Redis, Celery
tasks executed in-process. Set DATABASE_URL and CELERY_BROKER_URL to run for real.
"""

import os
from datetime import timedelta
from pathlib import Path

from meshline import queues
from meshline.env import (
    ConfigError,
    database_from_url,
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_minutes_or_seconds,
    env_rate,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = env_bool("MESHLINE_DEBUG", default=False)
SECRET_KEY = env_str("MESHLINE_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG and env_bool("MESHLINE_REQUIRE_SECRET_KEY", default=False):
        raise ConfigError("MESHLINE_SECRET_KEY must be set in production")
    SECRET_KEY = "insecure-development-key-change-me"

ALLOWED_HOSTS = env_list("MESHLINE_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("MESHLINE_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "axes",
    "csp",
    "meshline",
    "deliveries",
    "owners",
    "gates",
    "flows",
    "billing",
    "reporting",
    # Demo seeding, the gate smoke harness and the large-org generator (manage.py commands).
    "devtools",
    "connectors",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "meshline.tenancy.TenantMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

# --- Transport and browser security ---------------------------------------------------
# Production serves HTTPS only: MESHLINE_HTTPS=1 redirects http to https, marks the
# session and CSRF cookies Secure and sends HSTS. Off by default so that `make demo` works
# on http://127.0.0.1. `manage.py check --deploy` with .env.production.example is clean.
MESHLINE_HTTPS = env_bool("MESHLINE_HTTPS", default=False)
SECURE_SSL_REDIRECT = MESHLINE_HTTPS
SESSION_COOKIE_SECURE = MESHLINE_HTTPS
CSRF_COOKIE_SECURE = MESHLINE_HTTPS
SECURE_HSTS_SECONDS = env_int(
    "MESHLINE_HSTS_SECONDS", 365 * 24 * 3600 if MESHLINE_HTTPS else 0, minimum=0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("MESHLINE_HSTS_INCLUDE_SUBDOMAINS", default=True)
SECURE_HSTS_PRELOAD = env_bool("MESHLINE_HSTS_PRELOAD", default=False)
# Behind a proxy that terminates TLS: trust its X-Forwarded-Proto (only if it always sets
# it and clients cannot reach Meshline around it), or the SSL redirect loops forever.
if env_bool("MESHLINE_TRUST_X_FORWARDED_PROTO", default=False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp), on in every environment so that an inline script
# or style breaks in development first. Portal pages use only static files: no inline
# <script>, no on* handlers, no style= attributes (htmx's own indicator <style> is turned
# off in portal/base.html). `data:` images: the blank favicon.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

ROOT_URLCONF = "meshline.urls"
WSGI_APPLICATION = "meshline.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "meshline.tenancy.organization_context",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL", "sqlite:///db.sqlite3"), base_dir=str(BASE_DIR)
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# API rate limits are counted in the default cache. One process: local memory is enough.
# Several web processes or hosts: point MESHLINE_CACHE_URL at Redis so that they share one
# count per key (otherwise each process allows the full rate on its own).
_CACHE_URL = env_str("MESHLINE_CACHE_URL")
if _CACHE_URL and not _CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ConfigError(f"MESHLINE_CACHE_URL={_CACHE_URL!r} must be a redis:// or rediss:// URL")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _CACHE_URL}
        if _CACHE_URL
        else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    )
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "meshline.signin.SignInThrottleBackend",  # first: refuses locked-out sign-ins
    "django.contrib.auth.backends.ModelBackend",
]
# Sign-in throttling (portal and admin), per account and address: see meshline/signin.py.
AXES_FAILURE_LIMIT = env_int("MESHLINE_SIGNIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("MESHLINE_SIGNIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "meshline.signin.locked_out"
AXES_CLIENT_IP_CALLABLE = "meshline.signin.client_ip"
AXES_VERBOSE = False
# Reverse proxies in front of Meshline that append to X-Forwarded-For (0: none, use the
# connection's address). Sign-in throttling counts per client address.
MESHLINE_PROXY_COUNT = env_int("MESHLINE_PROXY_COUNT", 0, minimum=0)
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "org-picker"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True
# Where the default storage writes files (the reporting exports); never served statically:
# the portal and API hand them out after checking the tenant.
MEDIA_ROOT = env_str("MESHLINE_MEDIA_ROOT", str(BASE_DIR / "var" / "media"))

# plain: one readable line per record; json: one JSON object per line with trace_id,
# span_id, organization, deliverable_id, event_type and correlation_id when known
# (meshline/telemetry.py), for a log pipeline that searches by them.
MESHLINE_LOG_FORMAT = env_choice("MESHLINE_LOG_FORMAT", ("plain", "json"), "plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "meshline.telemetry.ContextFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "meshline.telemetry.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": MESHLINE_LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("MESHLINE_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # fpdf2 subsets fonts with fontTools, which logs ~40 INFO lines per PDF rendered.
        "fontTools": {"level": "WARNING"},
    },
}

EMAIL_BACKEND = env_str("MESHLINE_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")

# --- API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["meshline.auth.ApiKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["meshline.auth.HasApiKeyScope"],
    "DEFAULT_PARSER_CLASSES": ["meshline.parsers.JSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "meshline.schema.MeshlineAutoSchema",
    "EXCEPTION_HANDLER": "meshline.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": ["meshline.throttling.ApiKeyRateThrottle"],
}
# Requests per API key (all endpoints together); over it the API answers 429 with
# Retry-After. Counted in the default cache: see CACHES. The default (500/s) stops a
# runaway client, not a busy one: tools send single events at hundreds per second.
MESHLINE_API_RATE = env_rate("MESHLINE_API_RATE", "30000/min")
SPECTACULAR_SETTINGS = {
    "TITLE": "Meshline API",
    "DESCRIPTION": "Submit deliverable lifecycle events and read back trails. "
    "Authenticate with `Authorization: Api-Key <key>`.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "meshline.schema.close_event_objects",
    ],
    "ENUM_NAME_OVERRIDES": {
        "LifecycleStateEnum": "deliveries.models.LifecycleState",
        "TierEnum": "deliveries.models.Tier",
        "DeliverableTypeEnum": "deliveries.models.DeliverableType",
        "CheckNameEnum": "gates.models.CheckName",
        "InboxStateEnum": "connectors.models.InboxState",
        "ChangeKindEnum": "flows.models.ChangeKind",
    },
}

# Ingestion limits. The body limit is checked before JSON parsing.
MESHLINE_MAX_BODY_BYTES = env_int("MESHLINE_MAX_BODY_BYTES", 8 * 1024 * 1024, minimum=1024)
MESHLINE_MAX_EVENT_BYTES = env_int("MESHLINE_MAX_EVENT_BYTES", 512 * 1024, minimum=1024)
MESHLINE_MAX_BATCH = env_int("MESHLINE_MAX_BATCH", 500, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = MESHLINE_MAX_BODY_BYTES
# Events a worker claims and processes in one transaction (deliveries.services.processing).
MESHLINE_PROCESSING_BATCH_SIZE = env_int("MESHLINE_PROCESSING_BATCH_SIZE", 200, minimum=1)
# A large request's events go to this many tasks, split by deliverable, so that as many
# workers process it side by side (match the processing workers' total concurrency).
MESHLINE_PROCESSING_PARTITIONS = env_int("MESHLINE_PROCESSING_PARTITIONS", 4, minimum=1)
# Small requests' events wait in a Redis list per organization and one task at a time is
# woken to take them (deliveries/services/wakeups.py), instead of a task per request. Only
# with a Redis broker; off, every request publishes its own task.
MESHLINE_PROCESSING_COALESCE = env_bool("MESHLINE_PROCESSING_COALESCE", default=True)
# Events still unprocessed after this long are reported as stuck (log and metric).
MESHLINE_STUCK_AFTER_SECONDS = env_int("MESHLINE_STUCK_AFTER_SECONDS", 30 * 60, minimum=1)
# The sweeper leaves fresh events to their after-commit task for this long.
MESHLINE_SWEEP_GRACE_SECONDS = env_int("MESHLINE_SWEEP_GRACE_SECONDS", 30, minimum=0)

MESHLINE_METRICS_TOKEN = env_str("MESHLINE_METRICS_TOKEN", "")
# Where every process adds its latency observations so that any web process reports them
# all (meshline/metrics.py). Unset: the broker's Redis, else MESHLINE_CACHE_URL's, else
# each process keeps its own (right only when tasks run in the web process, as in eager mode).
MESHLINE_METRICS_REDIS_URL = env_str("MESHLINE_METRICS_REDIS_URL")
if MESHLINE_METRICS_REDIS_URL and not MESHLINE_METRICS_REDIS_URL.startswith(
    ("redis://", "rediss://", "unix://")
):
    raise ConfigError(
        f"MESHLINE_METRICS_REDIS_URL={MESHLINE_METRICS_REDIS_URL!r} must be a redis:// URL"
    )

# Processing backlog incidents (owners/services/backlog_incidents.py), the seeds' "lost
# event" exception: an organization whose oldest pending event has waited longer than the
# lag limit, or with more pending events than the depth limit, gets one incident ticket
# (event type processing.lagging in the owner map); it resolves itself once both are back
# under. MINUTES is the everyday knob; SECONDS replaces it (drills, tests); not both.
MESHLINE_LAG_INCIDENT_SECONDS = env_minutes_or_seconds(
    "MESHLINE_LAG_INCIDENT_MINUTES", "MESHLINE_LAG_INCIDENT_SECONDS", 30
)
MESHLINE_BACKLOG_INCIDENT_DEPTH = env_int("MESHLINE_BACKLOG_INCIDENT_DEPTH", 50_000, minimum=1)
# Webhooks call only public addresses (meshline/outbound.py); these hosts, addresses or
# CIDR networks are allowed anyway (an operator's own receiver on a private network).
MESHLINE_OUTBOUND_ALLOWED_HOSTS = env_list("MESHLINE_OUTBOUND_ALLOWED_HOSTS", [])
# Outbound outages (connectors/services/outages.py): a subscription whose breaker opens gets
# one ticket (owner map: subscription.failing); when this many are failing at once it is
# one systemic outage with one ticket (owner map: outbound.outage_started) instead.
MESHLINE_OUTBOUND_OUTAGE_SUBSCRIPTIONS = env_int(
    "MESHLINE_OUTBOUND_OUTAGE_SUBSCRIPTIONS", 3, minimum=2
)
# Largest body POST /hooks/<endpoint> accepts (413 beyond it); vendors' post payloads with
# full HTML content stay well under it.
MESHLINE_HOOK_MAX_BYTES = env_int("MESHLINE_HOOK_MAX_BYTES", 512 * 1024, minimum=1024)
# Billing's PDFs (billing/services/pdf.py) print any script a client name may be in with
# this TrueType font (regular; a "-Bold" file beside it is used for headings). Unset or
# missing: Debian's DejaVu Sans if installed, else PDF's built-in Helvetica (Latin-1 only:
# other characters print as "?").
MESHLINE_PDF_FONT = env_str("MESHLINE_PDF_FONT", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

# --- Celery --------------------------------------------------------------------------------
# No broker configured: the embedded default runs tasks in-process, right after commit.
CELERY_TASK_ALWAYS_EAGER = env_bool(
    "CELERY_TASK_ALWAYS_EAGER", default=not env_str("CELERY_BROKER_URL")
)
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or "memory://"
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_TASK_DEFAULT_QUEUE", "meshline")
# One queue per kind of work (meshline/queues.py), each named after the default queue:
# meshline.processing, meshline.gates, ... A worker without -Q consumes them all.
CELERY_TASK_QUEUES = queues.declare(CELERY_TASK_DEFAULT_QUEUE)
CELERY_TASK_ROUTES = ("meshline.queues.route",)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Tasks spend most of their time waiting on PostgreSQL round trips, not on the CPU: two
# processes per core kept event -> ticket p95 at 115 ms where one per core (Celery's
# default) queued to 3.1 s, at 8 pages/s on 2 cores (bench/gates.py, bench/README.md).
# The cores this process may use (a container's CPU set, not the host's). Each process
# holds its own database connection: budget max_connections for them.
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
CELERY_WORKER_CONCURRENCY = env_int("MESHLINE_WORKER_CONCURRENCY", 2 * (_CORES or 1), minimum=1)
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# Two opposite needs share one broker. Publishing (an API request, beat, a task that
# dispatches) must never wait for a broker that is down: fail fast, the event is already
# committed and the sweeper dispatches it once the broker is back.
CELERY_TASK_PUBLISH_RETRY = False
CELERY_BROKER_CONNECTION_TIMEOUT = 1
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 1,
    "socket_timeout": 5,
    "max_retries": 0,
}
# The worker's consumer connection must outlive any outage: it reconnects forever, with
# Celery's backoff (2 s, 4 s, ... capped at 30 s). Only connection owners (the worker's
# consumer, beat) read these; publishers never retry (above).
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# In the worker process (meshline.celery swaps them in at celeryd_init) the transport keeps
# the short timeouts but not "max_retries": 0, which would make every channel the consumer
# opens after a reconnect give up on the first refused connection.
# ... without the steps that stopped it consuming after a reconnect (see the class).
CELERY_WORKER_CONSUMER = "meshline.celery:Consumer"
MESHLINE_WORKER_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 2,
    "socket_timeout": 10,
    "socket_keepalive": True,
}
# Liveness: the worker touches this file every MESHLINE_WORKER_HEARTBEAT_SECONDS while its
# consumer is connected; `manage.py worker_health` fails once it is older than
# MESHLINE_WORKER_HEARTBEAT_MAX_AGE (README, "Running for real").
MESHLINE_WORKER_HEARTBEAT_FILE = env_str(
    "MESHLINE_WORKER_HEARTBEAT_FILE", "/tmp/meshline-worker.heartbeat"
)
MESHLINE_WORKER_HEARTBEAT_SECONDS = env_int("MESHLINE_WORKER_HEARTBEAT_SECONDS", 10, minimum=1)
MESHLINE_WORKER_HEARTBEAT_MAX_AGE = env_int("MESHLINE_WORKER_HEARTBEAT_MAX_AGE", 120, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "sweep-unprocessed-events": {
        "task": "deliveries.sweep_unprocessed_events",
        "schedule": env_int("MESHLINE_SWEEP_INTERVAL_SECONDS", 30, minimum=1),
    },
    "backlog-incidents": {
        "task": "owners.backlog_sweep",
        "schedule": env_int("MESHLINE_BACKLOG_CHECK_SECONDS", 60, minimum=1),
    },
    "escalation-sweep": {
        "task": "owners.escalation_sweep",
        "schedule": env_int("MESHLINE_ESCALATION_INTERVAL_SECONDS", 30, minimum=1),
    },
    "rota-handoffs": {"task": "owners.handoff_sweep", "schedule": 60},
    "compact-event-counts": {"task": "deliveries.compact_event_counts", "schedule": 60},
    "compact-gate-verdict-counts": {"task": "gates.compact_verdict_counts", "schedule": 60},
    "sitemap-timers": {"task": "gates.timer_sweep", "schedule": 60},
    "unevaluated-gates": {"task": "gates.sweep_unevaluated", "schedule": 600},
    "flow-breaches": {
        "task": "flows.breach_sweep",
        "schedule": env_int("MESHLINE_FLOW_BREACH_INTERVAL_SECONDS", 60, minimum=1),
    },
    "flow-reviews-and-assurance": {"task": "flows.assurance_sweep", "schedule": 3600},
    "resend-pending-notifications": {
        "task": "owners.resend_pending_notifications",
        "schedule": 300,
    },
    # Yesterday's attribution and exports; hourly, since "yesterday" turns over at each
    # organization's own midnight and a re-run of a day is harmless (idempotent per day).
    "reporting-nightly": {"task": "reporting.nightly", "schedule": 3600},
    "connectors-send-due": {"task": "connectors.send_due_deliveries", "schedule": 15},
    "connectors-sweep-inbox": {"task": "connectors.sweep_inbox", "schedule": 60},
}
DEFAULT_FROM_EMAIL = env_str("MESHLINE_FROM_EMAIL", "Meshline <meshline@localhost>")
