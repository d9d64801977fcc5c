"""Counters kept as delta rows and folded later (``EventCount``, ``GateVerdictCount``).

Writers append deltas in their own transaction (no row another writer waits for); readers
sum every row of a bucket; ``fold`` merges an organization's deltas into one compacted row
per bucket. Safe beside writers (only the deltas read are deleted) and beside another
fold (the organization row is locked per chunk). Idempotent.
"""

from collections import defaultdict

from django.db import transaction

from meshline.models import Organization


def fold(model, organization, keys: tuple[str, ...], sums: tuple[str, ...], chunk: int) -> int:
    """Fold ``organization``'s delta rows of ``model`` (bucketed by ``keys``, counting in
    ``sums``) into compacted rows; returns how many deltas were folded."""
    folded = 0
    while True:
        with transaction.atomic():
            Organization.objects.select_for_update().filter(pk=organization.pk).first()
            deltas = list(
                model.objects.filter(organization=organization, compacted=False)
                .order_by("pk")
                .values_list("pk", *keys, *sums)[:chunk]
            )
            if not deltas:
                return folded
            totals: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(sums))
            for _pk, *values in deltas:
                bucket, counts = tuple(values[: len(keys)]), values[len(keys) :]
                for i, count in enumerate(counts):
                    totals[bucket][i] += count
            model.objects.filter(organization=organization, pk__in=[d[0] for d in deltas]).delete()
            existing = {
                tuple(getattr(row, key) for key in keys): row
                for row in model.objects.filter(
                    organization=organization,
                    compacted=True,
                    **{f"{keys[0]}__in": {bucket[0] for bucket in totals}},
                    **{f"{keys[-1]}__gte": min(b[-1] for b in totals)},
                    **{f"{keys[-1]}__lte": max(b[-1] for b in totals)},
                )
            }
            updated, created = [], []
            for bucket, counts in totals.items():
                row = existing.get(bucket)
                if row is None:
                    created.append(
                        model(
                            organization=organization,
                            compacted=True,
                            **dict(zip(keys, bucket, strict=True)),
                            **dict(zip(sums, counts, strict=True)),
                        )
                    )
                else:
                    for name, count in zip(sums, counts, strict=True):
                        setattr(row, name, getattr(row, name) + count)
                    updated.append(row)
            model.objects.bulk_update(updated, list(sums), batch_size=1000)
            model.objects.bulk_create(created, batch_size=1000)
        folded += len(deltas)
        if len(deltas) < chunk:
            return folded
