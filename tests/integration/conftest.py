"""A real Celery worker (and, on demand, beat) for the integration tests.

The worker is a separate process, started once per session against the pytest-django test
database and a Redis queue named for this run, so that concurrent test runs never consume
each other's messages. It cannot see rows inside a test's transaction: tests that use it
commit their data (transactional_db). In this process the Celery app stays eager, as the
unit tests expect, except while a test holds the ``publisher`` fixture.
"""

import ctypes
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection
from kombu import pools

from meshline import queues
from meshline.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 30
# Nothing listens on port 1: connecting is refused at once, as with Redis stopped.
UNREACHABLE_BROKER = "redis://127.0.0.1:1/0"
PR_SET_PDEATHSIG = 1

TASK_RECEIVED = re.compile(r"Task [\w.]+\[([0-9a-f-]{36})\] received")
TASK_FINISHED = re.compile(r"Task [\w.]+\[([0-9a-f-]{36})\] (?:succeeded|raised|failed)")


def _celery_command() -> list[str]:
    script = Path(sys.executable).with_name("celery")
    return [str(script)] if script.exists() else [sys.executable, "-m", "celery"]


def _die_with_parent() -> None:
    """Linux: SIGTERM the child if pytest is killed before its teardown can stop it.

    An orphaned worker would keep a connection to the test database open, and the next run
    could not drop and recreate it.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class CeleryProcess:
    """One ``celery -A meshline <command>`` subprocess, its output captured in a file."""

    def __init__(self, name: str, args: list[str], env: dict, log_path: Path):
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_path
        self.mark = 0  # log offset at the start of the current test
        self.proc: subprocess.Popen | None = None

    def start(self, ready_marker: str, timeout: float = READY_TIMEOUT) -> None:
        with self.log_path.open("wb") as log_file:
            self.proc = subprocess.Popen(
                [*_celery_command(), "-A", "meshline", *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + timeout
        while ready_marker not in self.log():
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"celery {self.name} exited ({self.proc.returncode}) before it was ready:\n"
                    f"{self.log()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"celery {self.name} not ready after {timeout}s:\n{self.log()}")
            time.sleep(0.1)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self, since: int = 0) -> str:
        try:
            with self.log_path.open("rb") as log_file:
                log_file.seek(since)
                return log_file.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def set_mark(self) -> None:
        self.mark = self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since_mark(self) -> str:
        return self.log(self.mark)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM is Celery's warm shutdown: the running task finishes first."""
        if not self.alive:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_processes: list[CeleryProcess] = []


def _database_url() -> str:
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = db["HOST"] or ""
    if db["PORT"]:
        host += f":{db['PORT']}"
    return f"postgres://{credentials}@{host}/{quote(db['NAME'], safe='')}"


@pytest.fixture(scope="session")
def celery_queue() -> str:
    """This run's queue: workers of concurrent runs on the same Redis never see our tasks."""
    return f"meshline-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def celery_env(django_db_setup, celery_queue) -> dict:
    """Environment of the worker and beat: production settings, the test database."""
    # django_db_setup has renamed the connection to the test database by now.
    env = {key: value for key, value in os.environ.items() if not key.startswith("CELERY_")}
    env.update(
        DJANGO_SETTINGS_MODULE="meshline.settings",
        DATABASE_URL=_database_url(),
        CELERY_BROKER_URL=settings.REDIS_URL,
        CELERY_TASK_ALWAYS_EAGER="0",
        CELERY_TASK_DEFAULT_QUEUE=celery_queue,
        # The beat test sweeps every second and dispatches events at once; nothing else
        # sends the sweep task to the worker.
        MESHLINE_SWEEP_INTERVAL_SECONDS="1",
        MESHLINE_SWEEP_GRACE_SECONDS="0",
        MESHLINE_ESCALATION_INTERVAL_SECONDS="1",
        MESHLINE_FLOW_BREACH_INTERVAL_SECONDS="1",
        MESHLINE_LOG_LEVEL="INFO",
        PYTHONUNBUFFERED="1",
    )
    return env


def _redis():
    import redis

    return redis.Redis.from_url(settings.REDIS_URL)


@pytest.fixture(scope="session")
def celery_worker(celery_env, celery_queue, tmp_path_factory):
    """One solo-pool worker for the session, stopped (and its queue deleted) at the end."""
    worker = CeleryProcess(
        "worker",
        [
            "worker",
            "--pool=solo",
            "--loglevel=INFO",
            f"--hostname={celery_queue}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        celery_env,
        tmp_path_factory.mktemp("celery") / "worker.log",
    )
    _processes.append(worker)
    worker.start(ready_marker=" ready.")
    yield worker
    # Stopped before django_db_setup's teardown: a connected worker would block DROP DATABASE.
    worker.stop()
    _processes.remove(worker)
    client = _redis()
    for key in client.scan_iter(f"*{celery_queue}*"):
        client.delete(key)


class Publisher:
    """Switches this process's Celery app between eager execution and a real broker.

    Broker connections are cached twice, on the app and in kombu's global pools (keyed by
    URL): both are dropped on every switch, or the next publish would reuse the old broker.
    """

    KEYS = ("task_always_eager", "broker_url", "task_default_queue")

    def __init__(self, app, queue: str):
        self.app = app
        self.queue = queue
        self.saved = {key: app.conf[key] for key in self.KEYS}

    def use(self, broker_url: str, queue: str | None = None) -> None:
        """Publish to ``broker_url``, to the queues named after ``queue`` (this run's by
        default; a test with workers of its own passes theirs)."""
        self.app.conf.task_always_eager = False
        self.app.conf.broker_url = broker_url
        self.app.conf.task_default_queue = queue or self.queue
        self._forget_connections()

    def restore(self) -> None:
        for key, value in self.saved.items():
            self.app.conf[key] = value
        self._forget_connections()

    def _forget_connections(self) -> None:
        pools.reset()
        self.app._pool = None
        # AMQP caches the queues and routes it built from the old task_default_queue.
        self.app.__dict__.pop("amqp", None)


@pytest.fixture
def publisher(celery_queue):
    """Publish to this run's queue for real; ``publisher.use(url)`` to change broker."""
    publisher = Publisher(celery_app, celery_queue)
    yield publisher
    publisher.restore()


@pytest.fixture
def worker(celery_worker, publisher, transactional_db):
    """The running worker, with this process publishing to it through the real broker."""
    if not celery_worker.alive:
        pytest.fail(f"the celery worker has died:\n{celery_worker.log()}")
    publisher.use(settings.REDIS_URL)
    celery_worker.set_mark()
    yield celery_worker
    # Let late tasks (a second dispatch, a beat sweep) finish before the database is
    # flushed under them.
    wait_idle(celery_worker, publisher.queue)


@pytest.fixture
def start_worker(celery_env, transactional_db, tmp_path):
    """Start workers of the test's own (stopped at its end, before the database is flushed).

    ``start_worker(name, default_queue=..., queues=[...], env={...}, args=[...])``: the
    node is ``name@host``; it consumes ``queues`` (``-Q``), or every queue named after
    ``default_queue`` without them, as a production worker without ``-Q`` does.
    """
    started: list[CeleryProcess] = []
    namespaces: set[str] = set()

    def start(name, *, default_queue, queues=(), env=None, args=()) -> CeleryProcess:
        worker_env = {
            **celery_env,
            "CELERY_TASK_DEFAULT_QUEUE": default_queue,
            "MESHLINE_WORKER_HEARTBEAT_FILE": str(tmp_path / f"{name}.heartbeat"),
            **(env or {}),
        }
        command = [
            "worker",
            "--loglevel=INFO",
            f"--hostname={name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            *args,
        ]
        if queues:
            command.append(f"--queues={','.join(queues)}")
        process = CeleryProcess(name, command, worker_env, tmp_path / f"{name}.log")
        _processes.append(process)
        started.append(process)
        namespaces.add(default_queue)
        process.start(ready_marker=" ready.")
        return process

    yield start
    for process in started:  # all at once: each finishes its running task meanwhile
        if process.alive:
            process.proc.terminate()
    for process in started:
        process.stop()
        _processes.remove(process)
    client = _redis()
    for namespace in namespaces:  # the queues and kombu's bindings of the test's workers
        for key in client.scan_iter(f"*{namespace}*"):
            client.delete(key)


@pytest.fixture
def celery_beat(worker, celery_env, tmp_path):
    """Start beat beside the worker (sweep every second); stopped at the end of the test."""
    started: list[CeleryProcess] = []

    def start() -> CeleryProcess:
        beat = CeleryProcess(
            "beat",
            ["beat", "--loglevel=INFO", f"--schedule={tmp_path / 'beat-schedule'}"],
            celery_env,
            tmp_path / "beat.log",
        )
        _processes.append(beat)
        started.append(beat)
        beat.start(ready_marker="beat: Starting")
        return beat

    yield start
    for beat in started:
        beat.stop()
        _processes.remove(beat)


def wait_until(predicate, timeout: float = 20, interval: float = 0.1, message=""):
    """Poll until ``predicate()`` is truthy; return its value or fail after ``timeout``.

    ``message`` (a string, or a callable for details known only at the end) names what
    was awaited.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            detail = message() if callable(message) else message
            pytest.fail(f"timed out after {timeout}s waiting for {detail or predicate}")
        time.sleep(interval)


def wait_idle(worker: CeleryProcess, queue: str, timeout: float = 10) -> None:
    """Wait until the queue is empty and every task the worker received has finished."""

    def idle() -> bool:
        log = worker.log(worker.mark)
        running = set(TASK_RECEIVED.findall(log)) - set(TASK_FINISHED.findall(log))
        return not running and all(
            _redis().llen(name) == 0 for name in queues.names(queue).values()
        )

    wait_until(idle, timeout, message="the worker to finish its tasks")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Attach the worker's (and beat's) log of the failing test to the report."""
    report = yield
    if report.failed:
        for process in _processes:
            report.sections.append(
                (f"celery {process.name} log", process.log_since_mark() or "(empty)")
            )
    return report
