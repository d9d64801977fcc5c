"""The Celery application, and the base task every tenant-owned task runs under."""

import os

from celery import Celery, Task

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "meshline.settings")

app = Celery("meshline")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


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
