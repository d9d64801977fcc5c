"""Worker liveness without a worker: the probe command, the heartbeat step, the worker's
own broker options. tests/integration/test_broker_outage.py runs them against a real one."""

import os
import time
from types import SimpleNamespace

import pytest
from django.core.management import call_command

from meshline.celery import _configure_worker
from meshline.worker_health import HeartbeatFile, heartbeat_age, touch_heartbeat


def _probe(path, max_age=60) -> int:
    try:
        call_command("worker_health", "--file", str(path), "--max-age", str(max_age))
    except SystemExit as exc:
        return exc.code
    return 0


def test_fresh_heartbeat_is_healthy(tmp_path, capsys):
    path = tmp_path / "hb"
    touch_heartbeat(str(path))

    assert _probe(path) == 0
    assert "healthy" in capsys.readouterr().out
    assert path.read_text().split()[0] == str(os.getpid())


def test_stale_heartbeat_is_unhealthy(tmp_path, capsys):
    path = tmp_path / "hb"
    touch_heartbeat(str(path), now=time.time() - 3600)

    assert _probe(path, max_age=120) == 1
    assert "last heartbeat 3600s ago (max 120s)" in capsys.readouterr().err


def test_missing_heartbeat_is_unhealthy(tmp_path, capsys):
    assert _probe(tmp_path / "never-written") == 1
    assert "no heartbeat file" in capsys.readouterr().err


def test_heartbeat_age_is_measured_from_the_beat_to_the_given_now(tmp_path):
    path = tmp_path / "hb"
    touch_heartbeat(str(path), now=1_000_000.0)

    assert heartbeat_age(str(path), now=1_000_042.0) == pytest.approx(42)
    assert heartbeat_age(str(tmp_path / "absent"), now=1_000_000.0) is None


def test_a_heartbeat_without_a_time_falls_back_to_its_mtime(tmp_path):
    path = tmp_path / "hb"
    path.write_text("1234\n")  # as a worker before the beat carried its time wrote it
    mtime = path.stat().st_mtime

    assert heartbeat_age(str(path), now=mtime + 7) == pytest.approx(7)


class _Timer:
    def __init__(self):
        self.calls = []
        self.cancelled = False

    def call_repeatedly(self, interval, fun, args):
        self.calls.append((interval, fun, args))
        return self

    def cancel(self):
        self.cancelled = True


def test_heartbeat_step_beats_while_started_and_stops_on_connection_loss(tmp_path, settings):
    settings.MESHLINE_WORKER_HEARTBEAT_FILE = str(tmp_path / "hb")
    settings.MESHLINE_WORKER_HEARTBEAT_SECONDS = 7
    consumer = SimpleNamespace(timer=_Timer())
    step = HeartbeatFile(consumer)

    step.start(consumer)
    assert (tmp_path / "hb").exists()  # touched at once, not only after the first interval
    assert consumer.timer.calls == [(7, touch_heartbeat, (str(tmp_path / "hb"),))]

    step.stop(consumer)  # the consumer stops its steps whenever the connection is lost
    assert consumer.timer.cancelled
    step.shutdown(consumer)  # and again at shutdown: harmless


def test_worker_process_gets_its_own_transport_options(settings):
    """The publishers' options fail fast; celeryd_init gives the worker patient ones."""
    assert settings.CELERY_BROKER_TRANSPORT_OPTIONS["max_retries"] == 0
    assert settings.CELERY_BROKER_CONNECTION_MAX_RETRIES is None
    conf = SimpleNamespace(
        broker_url="redis://127.0.0.1:6379/0",
        broker_transport=None,
        broker_transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS,
    )
    worker = SimpleNamespace(app=SimpleNamespace(steps={"consumer": set()}))

    _configure_worker(conf=conf, instance=worker)

    assert conf.broker_transport_options == settings.MESHLINE_WORKER_BROKER_TRANSPORT_OPTIONS
    assert "max_retries" not in conf.broker_transport_options
    assert worker.app.steps["consumer"] == {HeartbeatFile}


@pytest.mark.parametrize(
    ("url", "transport"),
    [
        ("redis://127.0.0.1:6379/0", "meshline.broker:Transport"),
        ("rediss://broker.example:6380/0", "meshline.broker:Transport"),
        ("amqp://guest@127.0.0.1:5672//", None),
        ("memory://", None),
    ],
)
def test_worker_on_redis_gets_the_transport_that_survives_a_lost_connection(
    settings, url, transport
):
    conf = SimpleNamespace(broker_url=url, broker_transport=None, broker_transport_options={})
    _configure_worker(
        conf=conf, instance=SimpleNamespace(app=SimpleNamespace(steps={"consumer": set()}))
    )
    assert conf.broker_transport == transport


def test_detached_channel_leaves_unacked_messages_to_redis():
    """Celery 5.7 detaches the transport before closing a lost connection: restoring then
    would crash the worker (AttributeError on the detached client's hostname). kombu's
    QoS.restore_unacked_once returns early when the channel says not to restore."""
    from meshline.broker import Channel

    channel = Channel.__new__(Channel)
    channel.connection = SimpleNamespace(client=None)
    assert channel.do_restore is False

    channel.connection = SimpleNamespace(client=SimpleNamespace(hostname="127.0.0.1"))
    assert channel.do_restore is True
