"""Every index of a tenant table leads with its organization (tests/test_schema_distribution.py).

The API key's creator is a person (global), read by no query: its index only slowed writes.
Locks: DROP INDEX CONCURRENTLY, none that blocks reads or writes.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from meshline.migration_operations import DropFieldIndexConcurrently


class Migration(migrations.Migration):
    atomic = False  # CONCURRENTLY cannot run in a transaction

    dependencies = [
        ("meshline", "0002_organization_timezone"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        DropFieldIndexConcurrently(
            model_name="apikey",
            name="created_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
