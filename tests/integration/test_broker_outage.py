"""A worker outlives its broker: Redis flaps ten times under load, nobody restarts anything.

The test owns a private Redis (free port, no persistence) so that stopping it disturbs no
other test run. A prefork worker, as deployed, and beat run against it; events are posted
through the API before, during and after each outage. Ingestion must keep answering while
Redis is down (the event is committed; beat's sweep dispatches it later), and at the end
every event is processed exactly once by the same worker process that started.
"""

import socket
import subprocess
import time

import pytest
from django.core.management import call_command
from django_scopes import scopes_disabled

from deliveries.models import EventProcessing, ProcessingStatus
from tests.integration.conftest import CeleryProcess, wait_until

pytestmark = [pytest.mark.worker, pytest.mark.postgres, pytest.mark.redis]

FLAPS = 10
DOWN_SECONDS = 3
# Posted just before each outage: about a second of work, still running when Redis goes.
BURST = 40
TRICKLE = 3  # events per post while Redis is down
# Ingestion with the broker down must not wait for it (fail fast, the sweeper catches up).
INGEST_DEADLINE = 3
# The worker reconnects on a 2 s, 4 s, 6 s... backoff: after 3 s down it is back within ~4 s.
RECONNECT_TIMEOUT = 15
CONNECTED = "Connected to meshline.broker:Transport://"  # the worker's own transport


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A throwaway redis-server on 127.0.0.1 that the test stops and starts at will."""

    def __init__(self, port: int, log_path):
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(self.log_path),
            ]
        )
        wait_until(self._accepts, 10, 0.05, message=f"redis-server on port {self.port}")

    def stop(self) -> None:
        """Like ``redis-cli shutdown nosave``: every client connection drops at once."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False


@pytest.fixture
def private_redis(tmp_path):
    redis_server = PrivateRedis(_free_port(), tmp_path / "redis.log")
    redis_server.start()
    yield redis_server
    redis_server.stop()


def _start(name: str, args: list[str], env: dict, log_path, ready: str) -> CeleryProcess:
    process = CeleryProcess(name, args, env, log_path)
    process.start(ready_marker=ready)
    return process


@pytest.fixture
def flapping_stack(private_redis, celery_env, publisher, transactional_db, tmp_path):
    """A prefork worker and beat on the private Redis; this process publishes there too."""
    env = {
        **celery_env,
        "CELERY_BROKER_URL": private_redis.url,
        "MESHLINE_WORKER_CONCURRENCY": "2",
        "MESHLINE_WORKER_HEARTBEAT_FILE": str(tmp_path / "worker.heartbeat"),
        "MESHLINE_WORKER_HEARTBEAT_SECONDS": "1",
        # Beat sweeps often, but leaves events to their after-commit task for a while, so
        # that the worker is not flooded with duplicates of work already queued.
        "MESHLINE_SWEEP_INTERVAL_SECONDS": "2",
        "MESHLINE_SWEEP_GRACE_SECONDS": "4",
    }
    publisher.use(private_redis.url)
    worker = _start(
        "worker",
        ["worker", "--loglevel=INFO"],  # as deployed: gossip, mingle and heartbeats on
        env,
        tmp_path / "worker.log",
        " ready.",
    )
    beat = _start(
        "beat",
        ["beat", "--loglevel=INFO", f"--schedule={tmp_path / 'beat-schedule'}"],
        env,
        tmp_path / "beat.log",
        "beat: Starting",
    )
    yield worker, beat, env
    beat.stop()
    worker.stop()


def _post(api, event_body, first: int, count: int) -> list[str]:
    bodies = [
        event_body(
            deliverable_id=f"LP-{n}",
            idempotency_key=f"cms-evt-{n}",
            payload={"url": f"https://acme.example/lp/{n}"},
        )
        for n in range(first, first + count)
    ]
    started = time.monotonic()
    response = api.post("/api/v1/events", {"events": bodies}, format="json")
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.json()
    assert elapsed < INGEST_DEADLINE, f"ingest took {elapsed:.1f}s"
    results = response.json()["results"]
    assert [r["status"] for r in results] == ["accepted"] * len(bodies), results
    return [r["id"] for r in results]


def _processing(event_ids) -> dict[str, tuple[str, int]]:
    with scopes_disabled():
        return {
            str(event_id): (status, attempts)
            for event_id, status, attempts in EventProcessing.objects.filter(
                event_id__in=event_ids
            ).values_list("event_id", "status", "attempts")
        }


def test_worker_processes_every_event_through_ten_broker_outages(
    flapping_stack, private_redis, api_a, client_acme, event_body
):
    worker, beat, _ = flapping_stack
    pid = worker.proc.pid
    event_ids: list[str] = []

    for flap in range(1, FLAPS + 1):
        # Each outage must be one the worker lives through, not one it sleeps through in
        # its reconnect backoff: wait until it has connected again.
        wait_until(
            lambda flap=flap: worker.log().count(CONNECTED) >= flap,
            RECONNECT_TIMEOUT,
            message=f"the worker to reconnect before outage {flap}",
        )
        event_ids += _post(api_a, event_body, len(event_ids), BURST)
        time.sleep(0.3)  # the worker has taken the burst and is processing it
        private_redis.stop()
        down_until = time.monotonic() + DOWN_SECONDS
        while time.monotonic() < down_until:
            event_ids += _post(api_a, event_body, len(event_ids), TRICKLE)
            time.sleep(0.5)
        private_redis.start()

    def all_processed() -> bool:
        return set(_processing(event_ids).values()) == {(ProcessingStatus.PROCESSED, 1)}

    wait_until(
        all_processed,
        30,
        0.5,
        message=lambda: (
            f"{len(event_ids)} events processed once; not yet: "
            f"{ {k: v for k, v in _processing(event_ids).items() if v != ('processed', 1)} }"
        ),
    )
    assert len(_processing(event_ids)) == len(event_ids)
    assert worker.alive and worker.proc.pid == pid, worker.log()[-4000:]
    assert beat.alive, beat.log()[-4000:]
    log = worker.log()
    assert log.count("Connection to broker lost") >= FLAPS, log[-4000:]
    assert "Unrecoverable error" not in log


def test_worker_health_follows_the_consumer_connection(flapping_stack, private_redis):
    """Healthy while connected; stale (non-zero) once the broker has been gone too long."""
    _, _, env = flapping_stack
    heartbeat = env["MESHLINE_WORKER_HEARTBEAT_FILE"]
    wait_until(lambda: _health(heartbeat, max_age=5) == 0, 10, message="a fresh heartbeat")

    private_redis.stop()
    wait_until(lambda: _health(heartbeat, max_age=3) != 0, 15, message="a stale heartbeat")

    private_redis.start()
    wait_until(lambda: _health(heartbeat, max_age=3) == 0, 30, message="the heartbeat again")


def _health(path: str, max_age: int) -> int:
    try:
        call_command("worker_health", "--file", path, "--max-age", str(max_age))
    except SystemExit as exc:
        return exc.code
    return 0
