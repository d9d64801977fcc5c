"""Owner roles: who owns a kind of work; people are attached through rotas."""

from django.db import models
from simple_history.models import HistoricalRecords

from meshline.models import TenantModel


class OwnerRole(TenantModel):
    """A role that owns work ("SEO Delivery Owner"); people are attached through rotas."""

    slug = models.SlugField(max_length=63, db_index=False)

    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    history = HistoricalRecords()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="owner_role_slug_unique")
        ]

    def __str__(self) -> str:
        return self.name
