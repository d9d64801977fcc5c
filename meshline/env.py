"""Typed readers for environment variables.

Every setting Meshline reads from the environment goes through one of these, so a bad
value stops the process at start-up with a message naming the variable, instead of
surfacing later as a confusing error deep inside Django or Celery.
"""

import os
import re
from urllib.parse import parse_qs, unquote, urlparse


class ConfigError(RuntimeError):
    """Raised when an environment variable holds a value Meshline cannot use."""


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(
        f"{name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off"
    )


def env_choice(name: str, choices: tuple[str, ...], default: str) -> str:
    """One of a fixed set of words, e.g. a log format."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise ConfigError(f"{name}={raw!r} must be one of: {', '.join(choices)}")
    return value


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if minimum is not None and value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return list(default or [])
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_minutes_or_seconds(minutes_name: str, seconds_name: str, default_minutes: int) -> int:
    """A duration in seconds, set in minutes (the everyday knob) or in seconds (drills and
    tests want less than a minute); setting both is ambiguous and refused."""
    if os.environ.get(minutes_name) and os.environ.get(seconds_name):
        raise ConfigError(f"Set {minutes_name} or {seconds_name}, not both")
    minutes = env_int(minutes_name, default_minutes, minimum=1)
    return env_int(seconds_name, 60 * minutes, minimum=1)


_RATE = re.compile(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)")


def env_rate(name: str, default: str) -> str:
    """A request rate such as ``600/min`` (per s, min, hour or day), as DRF throttles read it."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if not _RATE.fullmatch(value):
        raise ConfigError(
            f"{name}={raw!r} is not a rate; write requests/period, e.g. 600/min or 10/s"
        )
    return value


def database_from_url(url: str, *, base_dir: str) -> dict:
    """Turn ``postgres://user:pass@host:port/name`` or ``sqlite:///path`` into DATABASES['default']."""
    parsed = urlparse(url)
    if parsed.scheme in {"sqlite", "sqlite3"}:
        # sqlite:///relative.db (three slashes) or sqlite:////absolute/path.db (four).
        path = unquote(parsed.path[1:]) if parsed.path not in {"", "/"} else "db.sqlite3"
        if not os.path.isabs(path):
            path = os.path.join(base_dir, path)
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        if not parsed.path.strip("/"):
            raise ConfigError(
                f"DATABASE_URL={url!r} names no database (postgres://user@host:5432/NAME)"
            )
        options = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")),
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": int(options.pop("conn_max_age", "60")),
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    raise ConfigError(f"DATABASE_URL={url!r}: scheme must be postgres:// or sqlite:///")
