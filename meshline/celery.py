"""The Celery application, and the base task every tenant-owned task runs under."""

import logging
import os

from celery import Celery, Task
from celery.signals import celeryd_init
from celery.worker.consumer import Consumer as CeleryConsumer

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshline.settings")

log = logging.getLogger(__name__)

app = Celery("meshline")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@celeryd_init.connect
def _configure_worker(conf=None, instance=None, **kwargs):
    """Only in ``celery worker``: the consumer's transport options, and the heartbeat file.

    The settings' transport options are the publishers' fail-fast ones; the worker's own
    connection is meant to wait out an outage instead.
    """
    from django.conf import settings

    from meshline.worker_health import HeartbeatFile

    conf.broker_transport_options = settings.MESHLINE_WORKER_BROKER_TRANSPORT_OPTIONS
    instance.app.steps["consumer"].add(HeartbeatFile)


class Consumer(CeleryConsumer):
    """The worker's consumer (setting CELERY_WORKER_CONSUMER), surviving a lost broker.

    Celery 5.7.0, on losing the connection, first collects it (which detaches the kombu
    transport: ``transport.client = None``) and then closes it. If a message is still
    unacknowledged (an acks_late task running, or prefetched), closing its channel restores
    it through the detached transport, and kombu's Redis channel raises
    ``AttributeError: 'NoneType' object has no attribute 'hostname'``. Nothing catches that
    one: "Unrecoverable error", the worker exits, and no one processes anything until a
    person restarts it. By then ``self.connection`` is already None and the reconnect loop
    only has to start; what the AttributeError skipped is the optional cancelling of
    running tasks (off here) and a prefetch reduction we do not use. The message is not
    lost: Redis keeps it in its unacked set (redelivered after the visibility timeout), and
    the events it carried stay pending for the sweeper.
    """

    def on_connection_error_after_connected(self, exc):
        try:
            super().on_connection_error_after_connected(exc)
        except AttributeError:
            log.warning(
                "consumer: ignored an error closing the lost broker connection; reconnecting",
                exc_info=True,
            )


class TenantTask(Task):
    """Runs the task inside the django-scopes scope of the organization it names.

    Tenant tasks take ``organization_id=`` by keyword; without it the task refuses to run,
    so no task can touch tenant rows without saying whose rows they are.
    """

    abstract = True

    def __call__(self, *args, **kwargs):
        from django_scopes import scope

        from meshline.models import Organization

        organization_id = kwargs.get("organization_id")
        if organization_id is None:
            raise TypeError(f"{self.name} must be called with organization_id=")
        organization = Organization.objects.get(pk=organization_id)
        with scope(organization=organization):
            return super().__call__(*args, **kwargs)
