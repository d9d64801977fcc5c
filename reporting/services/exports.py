"""The programmatic daily export: one row per deliverable and day, as CSV or Parquet,
written through Django's storage API in bounded memory.

Rows come from ``roi.roi_queryset`` for the single day (the numbers the Reporting page
shows) and are streamed in chunks: a million deliverables never sit in a Python list.
"""

import csv
import hashlib
import io
import tempfile
from collections.abc import Callable, Iterator
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.core.files import File
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from deliveries.services import trail
from meshline.db import reading_to_the_end
from reporting.models import DailyExport, ExportFormat
from reporting.services import roi
from reporting.services.attribution import settings_for

CHUNK = 2000
# The documented schema (docs/architecture.md, "Reporting"): name, Parquet type.
COLUMNS: list[tuple[str, str]] = [
    ("date", "date32"),
    ("deliverable_id", "string"),
    ("client_id", "string"),
    ("deliverable_type", "string"),
    ("lifecycle_state", "string"),
    ("gate_status", "string"),
    ("open_tickets", "int64"),
    ("impressions", "int64"),
    ("clicks", "int64"),
    ("ctr", "float64"),
    ("position", "float64"),
    *[(name, "int64") for name in roi.TOUCH_FIELDS],
    ("attribution_model", "string"),
    ("attributed_revenue", "decimal128(18, 4)"),
    # Overruns invoiced for the deliverable that day, net of credit notes (billing).
    ("billed_amount", "decimal128(18, 2)"),
    ("billed_currency", "string"),
]
COLUMN_NAMES = [name for name, _ in COLUMNS]


def export_rows(organization, day: date) -> Iterator[dict]:
    """Every deliverable of the organization with its numbers for ``day``."""
    model = settings_for(organization).attribution_model
    start = datetime.combine(day, time(), tzinfo=organization.zone)
    queryset = roi.with_billed(
        roi.with_status(roi.roi_queryset(organization, model, day, day, active_only=False)),
        start,
        datetime.combine(day + timedelta(days=1), time(), tzinfo=organization.zone),
    ).order_by("deliverable_id")
    with reading_to_the_end():
        yield from (_export_row(row, day, model) for row in queryset.iterator(chunk_size=CHUNK))


def _export_row(row, day: date, model: str) -> dict:
    ctr, position = roi.ratios(row)
    return {
        "date": day,
        "deliverable_id": row.deliverable_id,
        "client_id": row.client.client_id,
        "deliverable_type": row.type,
        "lifecycle_state": row.state,
        "gate_status": row.gate_status,
        "open_tickets": row.open_tickets,
        "impressions": row.impressions,
        "clicks": row.clicks,
        "ctr": ctr,
        "position": position,
        **{name: getattr(row, name) for name in roi.TOUCH_FIELDS},
        "attribution_model": model,
        "attributed_revenue": Decimal(row.attributed_revenue).quantize(Decimal("0.0001")),
        "billed_amount": Decimal(row.billed_amount).quantize(Decimal("0.01")),
        "billed_currency": row.billed_currency,
    }


def write_csv(rows: Iterator[dict], out, progress: Callable[[int], None] | None = None) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.DictWriter(text, fieldnames=COLUMN_NAMES)
    writer.writeheader()
    count = 0
    for count, row in enumerate(rows, start=1):
        writer.writerow({**row, "position": "" if row["position"] is None else row["position"]})
        if progress and count % CHUNK == 0:
            progress(count)
    text.detach()
    return count


def parquet_schema():
    import pyarrow as pa

    types = {
        "date32": pa.date32(),
        "string": pa.string(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "decimal128(18, 4)": pa.decimal128(18, 4),
        "decimal128(18, 2)": pa.decimal128(18, 2),
    }
    return pa.schema([(name, types[kind]) for name, kind in COLUMNS])


def write_parquet(rows: Iterator[dict], out, progress: Callable[[int], None] | None = None) -> int:
    """One row group per chunk: memory holds one chunk, never the whole export."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    count = 0
    with pq.ParquetWriter(out, schema) as writer:
        chunk: list[dict] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == CHUNK:
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                count += len(chunk)
                chunk = []
                if progress:
                    progress(count)
        if chunk or not count:
            writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
            count += len(chunk)
    return count


WRITERS = {ExportFormat.CSV: write_csv, ExportFormat.PARQUET: write_parquet}


def write_export(organization, day: date, fmt: str, out, progress=None) -> int:
    """Write the day's export to a binary file object; returns the row count."""
    return WRITERS[fmt](export_rows(organization, day), out, progress)


def run_export(organization, day: date, fmt: str, *, progress=None) -> DailyExport:
    """Produce (or re-produce) the stored export of ``day``: idempotent per day and format.

    Written to a temporary file first, spilled to disk past 8 MB, then saved through the
    default storage (local disk, or any S3-compatible store by configuration).
    """
    name = f"exports/{organization.slug}/{day.isoformat()}/deliverables-{day.isoformat()}.{fmt}"
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as spool:
        rows = write_export(organization, day, fmt, spool, progress)
        size = spool.tell()
        spool.seek(0)
        digest = hashlib.sha256()
        for chunk in iter(lambda: spool.read(1024 * 1024), b""):
            digest.update(chunk)
        spool.seek(0)
        with transaction.atomic():
            export = (
                DailyExport.objects.select_for_update()
                .filter(organization=organization, date=day, format=fmt)
                .first()
            )
            if default_storage.exists(name):
                default_storage.delete(name)
            stored = default_storage.save(name, File(spool, name=name))
            if export is None:
                export = DailyExport(organization=organization, date=day, format=fmt)
            export.file.name = stored
            export.rows, export.size_bytes, export.created_at = rows, size, timezone.now()
            export.save()
            _announce(export, digest.hexdigest())
    return export


def _announce(export: DailyExport, sha256: str) -> None:
    """``export.generated`` in the trail, so an outbound subscription to it gets the file's
    address and digest. Keyed by content: re-running a day that changed nothing announces
    nothing new."""
    trail.record(
        export.organization,
        "export.generated",
        key=f"reporting:export:{export.pk}:{sha256}",
        occurred_at=export.created_at,
        payload={
            "export_id": str(export.pk),
            "date": export.date.isoformat(),
            "format": export.format,
            "rows": export.rows,
            "size_bytes": export.size_bytes,
            "sha256": sha256,
            "download": f"/api/v1/exports/{export.pk}/download",
        },
    )
