"""Worker liveness: a file the worker touches while its consumer is connected.

A worker that lost its broker keeps running (it reconnects forever), so "the process is
up" says nothing. The heartbeat is a consumer bootstep: Celery starts it once the
connection is up and the task consumer is consuming, and stops it whenever the connection
is lost. While connected, the worker's event loop touches the file every few seconds; a
stale or missing file therefore means "not consuming", whatever the reason (broker gone,
event loop wedged). ``manage.py worker_health`` turns the file's age into an exit status
for a livenessProbe.
"""

import os
import time
from pathlib import Path

from celery import bootsteps
from django.conf import settings


def touch_heartbeat(path: str, now: float | None = None) -> None:
    """Write the pid and the time of this beat.

    The time is written rather than read back from the file's mtime so that the writer's
    and the reader's clock are the same one (the filesystem's may differ, e.g. on a
    network mount, and a test's frozen clock does not move it).
    """
    target = Path(path)
    # Written beside the target and renamed over it, so a reader never sees a torn file.
    tmp = target.with_name(f".{target.name}.{os.getpid()}")
    tmp.write_text(f"{os.getpid()} {time.time() if now is None else now:.3f}\n")
    tmp.replace(target)


def heartbeat_age(path: str, now: float | None = None) -> float | None:
    """Seconds since the worker last touched ``path``; None if it never has."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    try:
        beat = float(text.split()[1])
    except (IndexError, ValueError):  # written by an older worker: its mtime
        beat = Path(path).stat().st_mtime
    return (time.time() if now is None else now) - beat


class HeartbeatFile(bootsteps.StartStopStep):
    """Consumer step: touch the heartbeat file on the event loop's timer while connected."""

    # Started after the task consumer, so a fresh file means messages can arrive.
    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, c, **kwargs):
        super().__init__(c, **kwargs)
        self.path = settings.MESHLINE_WORKER_HEARTBEAT_FILE
        self.interval = settings.MESHLINE_WORKER_HEARTBEAT_SECONDS
        self.tref = None

    def start(self, c):
        touch_heartbeat(self.path)
        self.tref = c.timer.call_repeatedly(self.interval, touch_heartbeat, (self.path,))

    def stop(self, c):
        # Called on every connection loss (the consumer restarts its steps) and at shutdown.
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    shutdown = stop
