"""The Celery application, and the base tasks every Meshline task runs under.

``MeshlineTask`` (every task's base) knows how to publish itself the way Meshline always
does: tolerating a broker outage (the database is the source of truth; sweepers re-queue
what could not be published), after the surrounding transaction commits, or once per
organization for a beat task's fan-out. ``TenantTask`` adds the organization's scope.
"""

import logging
import os

from celery import Celery, Task
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    beat_init,
    before_task_publish,
    celeryd_init,
    worker_process_init,
    worker_process_shutdown,
)
from celery.worker.consumer import Consumer as CeleryConsumer

from meshline import queues, telemetry

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshline.settings")
log = logging.getLogger(__name__)


class MeshlineTask(Task):
    """Base of every task in the app (``task_cls``): publishing helpers."""

    abstract = True

    def publish(self, **kwargs) -> bool:
        """Enqueue now; False (logged, never raised) when the broker cannot be reached.

        Only for work a sweeper re-queues from the database: an API request or a commit
        must not fail because Redis is down.
        """
        try:
            self.apply_async(kwargs=kwargs)
        except Exception:  # broker down or misconfigured; the sweeper is the safety net
            log.warning("%s: broker unreachable, left for the sweeper", self.name, exc_info=True)
            return False
        return True

    def publish_on_commit(self, **kwargs) -> None:
        """``publish`` once the current transaction commits (at once outside one).

        The message carries the trace of the code that called this, even if the commit
        happens after its span ended (meshline.telemetry.on_commit).
        """
        telemetry.on_commit(lambda: self.publish(**kwargs))

    def fan_out(self, model, *conditions, **filters) -> int:
        """Publish this (tenant) task once per organization owning a matching row.

        ``model.objects.filter(*conditions, **filters)`` across tenants, e.g. every due
        ticket: a beat task finds who has work, each organization's task does it in its
        own scope.
        """
        from django_scopes import scopes_disabled

        with scopes_disabled():
            organization_ids = list(
                model.objects.filter(*conditions, **filters)
                .order_by()  # no default ordering in the DISTINCT: one row each
                .values_list("organization_id", flat=True)
                .distinct()
            )
        return self.fan_out_to(organization_ids)

    def fan_out_to(self, organization_ids) -> int:
        """Publish this (tenant) task once per organization id, each id once.

        For a beat task whose organizations come from more than one query (those with work
        to do, plus those with something open to close).
        """
        unique = list(dict.fromkeys(organization_ids))
        for organization_id in unique:
            self.publish(organization_id=organization_id)
        return len(unique)


app = Celery("meshline", task_cls=MeshlineTask)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@celeryd_init.connect
def _configure_worker(conf=None, instance=None, **kwargs):
    """Only in ``celery worker``: the consumer's transport, its options, the heartbeat file.

    The settings' transport options are the publishers' fail-fast ones; the worker's own
    connection is meant to wait out an outage instead, on a Redis transport that survives
    Celery's teardown of a lost connection (meshline/broker.py).
    """
    from urllib.parse import urlsplit

    from django.conf import settings

    from meshline.worker_health import HeartbeatFile

    conf.broker_transport_options = settings.MESHLINE_WORKER_BROKER_TRANSPORT_OPTIONS
    if urlsplit(conf.broker_url or "").scheme in ("redis", "rediss"):
        conf.broker_transport = "meshline.broker:Transport"
    instance.app.steps["consumer"].add(HeartbeatFile)


# Tracing (off unless OTEL_* says otherwise): once per process that runs tasks. Prefork
# children (and the solo pool) get worker_process_init after the fork, so the SDK's export
# thread and the instrumented database connections are their own.
worker_process_init.connect(lambda **kwargs: telemetry.setup("worker"), weak=False)
worker_process_shutdown.connect(lambda **kwargs: telemetry.flush(), weak=False)
beat_init.connect(lambda **kwargs: telemetry.setup("beat"), weak=False)
# Celery configures the worker's and beat's logging itself: MESHLINE_LOG_FORMAT=json there too.
before_task_publish.connect(queues.stamp_sent_at, weak=False)
after_setup_logger.connect(telemetry.json_logging_for_celery, weak=False)
after_setup_task_logger.connect(telemetry.json_logging_for_celery, weak=False)


class Consumer(CeleryConsumer):
    """The worker's consumer (setting CELERY_WORKER_CONSUMER), without mingle and gossip.

    Both talk to the other workers over broadcast queues; after the broker comes back,
    mingle's "hello" waited for replies that never came and the consumer never started
    consuming again (tests/integration/test_broker_outage.py: the worker reconnected, said
    "mingle: searching for neighbors" and processed nothing more). Meshline uses neither
    (no task revocation to sync, no worker-event logical clock), so they are left out, as
    ``celery worker --without-mingle --without-gossip`` would.
    """

    def __init__(self, *args, worker_options=None, **kwargs):
        # The steps stay in the blueprint (others require them) but disabled, exactly as
        # the command-line flags do it.
        options = {**(worker_options or {}), "without_mingle": True, "without_gossip": True}
        super().__init__(*args, worker_options=options, **kwargs)


class TenantTask(MeshlineTask):
    """Runs the task inside the django-scopes scope of the organization it names.

    Callers publish with ``organization_id=`` (ids, not objects, cross the broker); the task
    function receives ``organization=``, loaded once here. Without it the task refuses to
    run, so no task can touch tenant rows without saying whose rows they are.
    """

    abstract = True
    # Celery checks published arguments against the function's signature, which takes
    # ``organization`` where callers send ``organization_id``: __call__ does the check.
    typing = False

    def __call__(self, *args, **kwargs):
        from django_scopes import scope

        from meshline.models import Organization

        organization_id = kwargs.pop("organization_id", None)
        if organization_id is None:
            raise TypeError(f"{self.name} must be called with organization_id=")
        organization = Organization.objects.get(pk=organization_id)
        with scope(organization=organization), telemetry.scoped_keys():
            telemetry.tag_organization(organization)
            return super().__call__(*args, organization=organization, **kwargs)

    def signature_from_request(self, request=None, args=None, kwargs=None, **options):
        """A retry re-publishes the request's arguments: the organization goes back to its id."""
        request = request or self.request
        kwargs = dict(request.kwargs if kwargs is None else kwargs)
        organization = kwargs.pop("organization", None)
        if organization is not None:
            kwargs["organization_id"] = organization.pk
        return super().signature_from_request(request, args, kwargs, **options)
