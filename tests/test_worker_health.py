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
    assert path.read_text() == f"{os.getpid()}\n"


def test_stale_heartbeat_is_unhealthy(tmp_path, capsys):
    path = tmp_path / "hb"
    touch_heartbeat(str(path))
    an_hour_ago = time.time() - 3600
    os.utime(path, (an_hour_ago, an_hour_ago))

    assert _probe(path, max_age=120) == 1
    assert "last heartbeat 3600s ago (max 120s)" in capsys.readouterr().err


def test_missing_heartbeat_is_unhealthy(tmp_path, capsys):
    assert _probe(tmp_path / "never-written") == 1
    assert "no heartbeat file" in capsys.readouterr().err


def test_heartbeat_age_is_measured_from_the_given_now(tmp_path):
    path = tmp_path / "hb"
    touch_heartbeat(str(path))
    mtime = path.stat().st_mtime

    assert heartbeat_age(str(path), now=mtime + 42) == pytest.approx(42)
    assert heartbeat_age(str(tmp_path / "absent"), now=mtime) is None


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
    conf = SimpleNamespace(broker_transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS)
    worker = SimpleNamespace(app=SimpleNamespace(steps={"consumer": set()}))

    _configure_worker(conf=conf, instance=worker)

    assert conf.broker_transport_options == settings.MESHLINE_WORKER_BROKER_TRANSPORT_OPTIONS
    assert "max_retries" not in conf.broker_transport_options
    assert worker.app.steps["consumer"] == {HeartbeatFile}


def test_consumer_survives_celerys_teardown_error_on_a_lost_connection(monkeypatch, caplog):
    """Celery 5.7.0 raises AttributeError closing a collected connection: not fatal here."""
    from celery.worker.consumer import Consumer as CeleryConsumer

    from meshline.celery import Consumer

    def teardown_crash(self, exc):
        raise AttributeError("'NoneType' object has no attribute 'hostname'")

    monkeypatch.setattr(CeleryConsumer, "on_connection_error_after_connected", teardown_crash)
    consumer = Consumer.__new__(Consumer)  # the handler needs no state once the parent raised

    consumer.on_connection_error_after_connected(ConnectionError("Connection closed by server."))

    assert "ignored an error closing the lost broker connection" in caplog.text


def test_consumer_still_raises_other_errors_on_a_lost_connection(monkeypatch):
    from celery.worker.consumer import Consumer as CeleryConsumer

    from meshline.celery import Consumer

    def other_bug(self, exc):
        raise KeyError("not a teardown error")

    monkeypatch.setattr(CeleryConsumer, "on_connection_error_after_connected", other_bug)

    with pytest.raises(KeyError):
        Consumer.__new__(Consumer).on_connection_error_after_connected(ConnectionError())


def test_worker_uses_the_surviving_consumer(settings):
    from meshline.celery import app

    assert settings.CELERY_WORKER_CONSUMER == "meshline.celery:Consumer"
    assert app.conf.worker_consumer == "meshline.celery:Consumer"
