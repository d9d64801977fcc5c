"""What the benchmarks share: a resettable database, Redis, gunicorn, Celery, HTTP clients.

Everything here talks to 127.0.0.1 only. A bench script imports it as ``support`` (its own
directory is first on ``sys.path`` when it runs as ``python bench/<name>.py``).
"""

import argparse
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent


def _psycopg_url(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def admin_conninfo(url: str) -> tuple[str, str]:
    """(conninfo of the server's 'postgres' database, name of the bench database)."""
    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    if parsed.scheme not in {"postgres", "postgresql"}:
        sys.exit(f"{url!r}: the benchmarks need PostgreSQL (postgres://...)")
    return _psycopg_url(parsed._replace(path="/postgres", query="").geturl()), name


def reset_database(url: str, force: bool) -> None:
    """Create the bench database if needed, else empty it by recreating its public schema.

    Not DROP DATABASE: on a shared server it waits for every backend of every database to
    acknowledge, and one stalled COPY elsewhere can hold it indefinitely. A database left
    invalid by an interrupted DROP DATABASE is dropped (with a timeout) and created again.
    """
    import psycopg
    from psycopg import sql

    conninfo, name = admin_conninfo(url)
    if "bench" not in name and not force:
        sys.exit(f"refusing to reset database {name!r}: its name lacks 'bench' (use --force)")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT datconnlimit FROM pg_database WHERE datname = %s", [name])
        found = row.fetchone()
        if found is not None and found[0] == -2:
            conn.execute("SET statement_timeout = '30s'")
            try:
                conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(name)))
            except psycopg.errors.QueryCanceled:
                sys.exit(
                    f"database {name!r} is invalid (an interrupted DROP DATABASE) and cannot "
                    "be dropped now; pass --database-url with another name"
                )
            found = None
        if found is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            return
        # Sessions a crashed earlier run may have left on the bench database, and only there.
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
    with psycopg.connect(_psycopg_url(url), autocommit=True) as conn:
        conn.execute("SET lock_timeout = '60s'")
        conn.execute("DROP SCHEMA IF EXISTS public CASCADE")
        conn.execute("CREATE SCHEMA public")


def flush_redis(url: str) -> None:
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).flushdb()
    except Exception as exc:  # the caller decides whether Redis was needed
        print(f"  (could not flush {url}: {exc})")


def profiler_arguments(doc: str, database_url: str, redis_url: str) -> argparse.ArgumentParser:
    """The options every in-process profiler shares (ingest_profile.py, batch_profile.py):
    its own database and Redis, reset by ``fresh_services``, and how much of cProfile to
    print."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--top", type=int, default=0, help="also print the top N by cumtime")
    parser.add_argument("--database-url", default=database_url)
    parser.add_argument("--redis-url", default=redis_url)
    parser.add_argument("--force", action="store_true", help="reset even if it looks in use")
    return parser


def fresh_services(args) -> None:
    """Empty the profiler's database and Redis database before it runs."""
    reset_database(args.database_url, args.force)
    flush_redis(args.redis_url)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A child process of the bench (gunicorn, a Celery worker), its output in a temp file.

    It gets its own session so that stopping it stops its children (gunicorn's and
    Celery's pool processes) too.
    """

    name = "process"

    def __init__(self, cmd: list[str], env: dict):
        self.cmd = cmd
        self.env = env
        # Kept open for the whole run (the child writes to it); closed with the process.
        self.log = tempfile.TemporaryFile(prefix=f"meshline-bench-{self.name}-")  # noqa: SIM115
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.cmd,
            cwd=ROOT,
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.ready():
                return
            time.sleep(0.2)
        self.stop()
        sys.exit(f"{self.name} did not become ready:\n{self.output()}")

    def ready(self) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # warm shutdown for gunicorn and Celery
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")


def _service_env(database_url: str, broker_url: str) -> dict:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "CELERY_BROKER_URL": broker_url,
        "MESHLINE_LOG_LEVEL": "WARNING",
        "DJANGO_SETTINGS_MODULE": "meshline.settings",
        # The benches measure capacity, not the per-key limit (tests/test_throttling.py).
        "MESHLINE_API_RATE": "100000000/day",
    }
    env.pop("CELERY_TASK_ALWAYS_EAGER", None)
    return env


class Gunicorn(Process):
    name = "gunicorn"

    def __init__(
        self,
        database_url: str,
        broker_url: str,
        workers: int = 4,
        worker_class: str = "sync",
        threads: int = 4,
    ):
        self.port = free_port()
        cmd = [
            str(Path(sys.executable).parent / "gunicorn"),
            "meshline.wsgi",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(workers),
            "--worker-class",
            worker_class,
            "--log-level",
            "warning",
        ]
        if worker_class == "gthread":
            cmd += ["--threads", str(threads)]
        super().__init__(cmd, _service_env(database_url, broker_url))

    def ready(self) -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
            conn.request("GET", "/healthz")
            ok = conn.getresponse().status == 200
            conn.close()
            return ok
        except OSError:
            return False

    def errors(self) -> str:
        return self.output()


class CeleryWorker(Process):
    """``celery -A meshline worker`` as production runs it (prefork pool), on every queue
    (no ``-Q``: meshline/queues.py declares them all)."""

    name = "celery-worker"

    def __init__(self, database_url: str, broker_url: str, concurrency: int | None, **env):
        cmd = [
            str(Path(sys.executable).parent / "celery"),
            "-A",
            "meshline",
            "worker",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
        ]
        if concurrency:  # otherwise the product's default (settings.CELERY_WORKER_CONCURRENCY)
            cmd.append(f"--concurrency={concurrency}")
        super().__init__(cmd, {**_service_env(database_url, broker_url), **env})

    def ready(self) -> bool:
        return " ready." in self.output()


class Connection:
    """A keep-alive HTTP/1.1 connection to the API (reopened when the server closes it)."""

    def __init__(self, port: int, api_key: str, path: str = "/api/v1/events"):
        self.path = path
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Content-Type": "application/json", "Authorization": f"Api-Key {api_key}"}

    def post(self, body: bytes) -> tuple[int, bytes]:
        try:
            self.conn.request("POST", self.path, body=body, headers=self.headers)
            response = self.conn.getresponse()
            data = response.read()
        except (ConnectionError, http.client.HTTPException):
            self.conn.close()
            raise
        if response.will_close:
            self.conn.close()
        return response.status, data

    def close(self) -> None:
        self.conn.close()
