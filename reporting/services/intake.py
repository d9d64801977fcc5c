"""Search performance, CRM touches and revenue in: from events (a processing step) and from
a whole day's search export (the bulk endpoint)."""

import codecs
import csv
import json
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from django.db import connection, transaction
from django.utils import timezone

from deliveries.models import Deliverable
from reporting.models import CrmTouch, RevenueRow, SearchPerformance, TouchType
from reporting.normalize import normalize_url, site_of

UNMATCHED_SAMPLE = 20
MAX_LINE = 4000


def on_batch_processed(batch) -> None:
    """Processing step: store the reporting rows the batch's events carry (idempotent).

    A batch's search rows are one read and one upsert; touches and revenue rows (rarer,
    and a touch may resolve a mismatch) are stored one event at a time.
    """
    searches = []
    for event, deliverable in batch.items:
        if event.event_type == "search_export.processed":
            searches.append((event, deliverable))
        elif (handler := HANDLERS.get(event.event_type)) is not None:
            handler(event, deliverable)
    if searches:
        record_search_events(batch.organization, searches)


SEARCH_FIELDS = ("deliverable", "impressions", "clicks", "ctr", "position", "as_of")


def record_search_events(organization, items) -> int:
    """Page-days from ``search_export.processed`` events; a later event for one replaces it.

    Later by when Meshline was told (``as_of``: the event's ``received_at``, the bulk
    import's time), not by when it is processed: a replayed export, or one received before
    the day's bulk import, leaves the newer numbers alone; of two events for one page-day,
    the one received last wins. Returns the rows written.
    """
    rows: dict[tuple, SearchPerformance] = {}
    for event, deliverable in items:
        row = _search_row(organization, event, deliverable)
        key = (row.site, row.date, row.url)
        if key not in rows or rows[key].as_of < row.as_of:
            rows[key] = row
    stored = SearchPerformance.objects.filter(
        organization=organization,
        url__in={url for _site, _date, url in rows},
        date__in={day for _site, day, _url in rows},
    ).values_list("site", "date", "url", "as_of")
    for site, day, url, as_of in stored:
        row = rows.get((site, day, url))
        if row is not None and as_of is not None and as_of >= row.as_of:
            del rows[(site, day, url)]
    SearchPerformance.objects.bulk_create(
        list(rows.values()),
        update_conflicts=True,
        unique_fields=["organization", "site", "date", "url"],
        update_fields=SEARCH_FIELDS,
    )
    return len(rows)


def _search_row(organization, event, deliverable) -> SearchPerformance:
    payload = event.payload
    url = normalize_url(payload.get("url") or deliverable.url)
    # A deliverable with no URL yet still gets its numbers, under a key of its own.
    site = site_of(url) if url else ""
    url = url or f"deliverable:{deliverable.deliverable_id}"
    impressions, clicks = int(payload["impressions"]), int(payload["clicks"])
    ctr = payload.get("ctr")
    return SearchPerformance(
        organization=organization,
        site=site,
        date=date.fromisoformat(payload["date"]),
        url=url,
        deliverable=deliverable,
        impressions=impressions,
        clicks=clicks,
        ctr=ctr if ctr is not None else (clicks / impressions if impressions else 0.0),
        position=payload.get("position"),
        as_of=event.received_at,
    )


def record_touch(event, deliverable) -> CrmTouch:
    """A ``crm.touch``; the first event naming a touch id wins. Resolves open mismatches."""
    from reporting.services.attribution import resolve_mismatches

    payload = event.payload
    touch, created = CrmTouch.objects.get_or_create(
        organization=event.organization,
        touch_id=payload["touch_id"],
        defaults={
            "event": event,
            "deliverable": deliverable,
            "touch_type": payload.get("touch_type") or TouchType.VISIT,
            "contact_id": payload.get("contact_id") or payload.get("account_id") or "",
            "landing_url": normalize_url(payload.get("landing_url", "")),
            "utm": payload.get("utm") or {},
            "amount": _decimal(payload.get("amount")),
            "occurred_at": event.occurred_at,
        },
    )
    if created:
        # Only the first time: a replayed old touch must not resolve a mismatch opened
        # since (its window may have moved past it).
        resolve_mismatches(touch)
    return touch


def record_revenue(event, deliverable) -> RevenueRow:
    """A ``revenue.recognized`` row; the first event naming a reference wins."""
    payload = event.payload
    row, _ = RevenueRow.objects.get_or_create(
        organization=event.organization,
        reference=payload["reference"],
        defaults={
            "event": event,
            "deliverable": deliverable,
            "contact_id": payload.get("contact_id") or payload.get("account_id") or "",
            "amount": _decimal(payload["amount"]),
            "currency": payload["currency"],
            "date": date.fromisoformat(payload["date"]),
        },
    )
    return row


HANDLERS = {
    "crm.touch": record_touch,
    "revenue.recognized": record_revenue,
}


def _decimal(value) -> Decimal | None:
    return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))


# --- the bulk day import ------------------------------------------------------------------


class SearchImportError(ValueError):
    """A row of the export that cannot be stored; nothing of the day was stored."""

    def __init__(self, message: str, code: str = "invalid_row", line: int | None = None):
        super().__init__(f"Line {line}: {message}" if line else message)
        self.code = code
        self.line = line


@dataclass
class ImportResult:
    site: str
    date: date
    rows: int = 0
    pages: int = 0
    matched: int = 0
    unmatched: int = 0
    unmatched_sample: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Row:
    url: str
    deliverable_id: int | None
    impressions: int
    clicks: int
    position: float | None


CSV_FIELDS = {"page", "url", "impressions", "clicks", "ctr", "position", "date"}


def read_csv(stream: Iterable[str]) -> Iterator[tuple[int, dict]]:
    """(line number, row) from a CSV with a header: page (or url), impressions, clicks and
    optionally ctr, position, date (Search Console's column names, lower-cased)."""
    reader = csv.DictReader(stream)
    header = {name.strip().lower() for name in reader.fieldnames or []}
    if not header & {"page", "url"} or not {"impressions", "clicks"} <= header:
        raise SearchImportError(
            "The header needs page (or url), impressions and clicks.", "invalid_header", 1
        )
    for row in reader:
        yield reader.line_num, {(k or "").strip().lower(): v for k, v in row.items()}


def read_jsonl(stream: Iterable[str]) -> Iterator[tuple[int, dict]]:
    """(line number, row) from JSON lines, one object per line; blank lines are skipped."""
    for number, line in enumerate(stream, start=1):
        if len(line) > MAX_LINE:
            raise SearchImportError("The line is too long.", "line_too_long", number)
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            raise SearchImportError("Not a JSON object.", "invalid_json", number) from None
        if not isinstance(row, dict):
            raise SearchImportError("Not a JSON object.", "invalid_json", number)
        yield number, row


def _count(row: dict, name: str, line: int) -> int:
    value = row.get(name)
    try:
        number = int(str(value).strip()) if not isinstance(value, int | float) else value
    except ValueError:
        number = None
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if not isinstance(number, int) or isinstance(number, bool) or number < 0:
        raise SearchImportError(f"{name} must be a whole number >= 0.", f"invalid_{name}", line)
    return number


def _clean(row: dict, line: int, day: date, deliverables: dict[str, int]) -> _Row:
    raw_url = row.get("page") or row.get("url")
    if not isinstance(raw_url, str) or not raw_url.lower().startswith(("http://", "https://")):
        raise SearchImportError("page must be an http(s) URL.", "invalid_url", line)
    url = normalize_url(raw_url)
    if len(url) > 1000:
        raise SearchImportError("page is longer than 1000 characters.", "invalid_url", line)
    if row.get("date") not in (None, "") and str(row["date"]).strip() != day.isoformat():
        raise SearchImportError(
            f"date {row['date']} is not the day being imported ({day}).", "wrong_date", line
        )
    impressions, clicks = _count(row, "impressions", line), _count(row, "clicks", line)
    if clicks > impressions:
        raise SearchImportError("clicks exceed impressions.", "invalid_clicks", line)
    position = row.get("position")
    if position in (None, ""):
        position = None
    else:
        try:
            position = float(position)
        except (TypeError, ValueError):
            position = -1.0
        if not math.isfinite(position) or position < 0:
            raise SearchImportError("position must be a number >= 0.", "invalid_position", line)
    return _Row(url, deliverables.get(url), impressions, clicks, position)


def deliverables_by_url(organization) -> dict[str, int]:
    """Normalised URL -> deliverable pk, for the organization's deliverables with a URL."""
    return {
        normalize_url(url): pk
        for pk, url in Deliverable.objects.filter(organization=organization)
        .exclude(url="")
        .values_list("pk", "url")
        .iterator(chunk_size=5000)
    }


def import_search_day(
    organization, *, site: str, day: date, rows: Iterator[tuple[int, dict]]
) -> ImportResult:
    """Replace the organization's search rows for (site, day) with ``rows``, all or nothing.

    Re-sending a day replaces it, never doubles it. Rows for one page under different
    spellings (a trailing slash, a campaign parameter) are summed into one. Unmatched URLs
    are stored without a deliverable and counted, not dropped.
    """
    site = site.strip().lower()
    if not site or len(site) > 255:
        raise SearchImportError("site is required (the property's host).", "invalid_site")
    deliverables = deliverables_by_url(organization)
    result = ImportResult(site=site, date=day)
    unmatched_urls: list[str] = result.unmatched_sample

    def cleaned() -> Iterator[_Row]:
        for line, raw in rows:
            row = _clean(raw, line, day, deliverables)
            if site_of(row.url) != site:
                raise SearchImportError(
                    f"page {row.url} is not on the site {site}.", "wrong_site", line
                )
            result.rows += 1
            if row.deliverable_id is None:
                result.unmatched += 1
                if len(unmatched_urls) < UNMATCHED_SAMPLE and row.url not in unmatched_urls:
                    unmatched_urls.append(row.url)
            else:
                result.matched += 1
            yield row

    try:
        with transaction.atomic():
            SearchPerformance.objects.filter(
                organization=organization, site=site, date=day
            ).delete()
            if connection.vendor == "postgresql":
                result.pages = _copy_rows(organization, site, day, cleaned())
            else:
                result.pages = _orm_rows(organization, site, day, cleaned())
    except UnicodeDecodeError:
        raise SearchImportError("The body is not UTF-8 text.", "invalid_encoding") from None
    except csv.Error as exc:
        raise SearchImportError(f"Not readable as CSV: {exc}.", "invalid_csv") from None
    return result


def _copy_rows(organization, site: str, day: date, rows: Iterator[_Row]) -> int:
    """COPY into a temporary table, then one INSERT ... SELECT that folds duplicates:
    the rows stream through and never sit in Python lists."""
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE reporting_search_in (url text, deliverable_id bigint, "
            "impressions bigint, clicks bigint, position double precision) ON COMMIT DROP"
        )
        with cursor.cursor.copy(
            "COPY reporting_search_in (url, deliverable_id, impressions, clicks, position) "
            "FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(
                    (row.url, row.deliverable_id, row.impressions, row.clicks, row.position)
                )
        cursor.execute(
            f"INSERT INTO {SearchPerformance._meta.db_table} (organization_id, site, date, url, "
            "deliverable_id, impressions, clicks, ctr, position, as_of) "
            "SELECT %s, %s, %s, url, MIN(deliverable_id), SUM(impressions), SUM(clicks), "
            "COALESCE(SUM(clicks)::float / NULLIF(SUM(impressions), 0), 0), "
            "SUM(position * impressions) / NULLIF(SUM(impressions) FILTER "
            "(WHERE position IS NOT NULL), 0), %s "
            "FROM reporting_search_in GROUP BY url",
            [organization.pk, site, day, timezone.now()],
        )
        pages = cursor.rowcount
        cursor.execute("DROP TABLE reporting_search_in")
    return pages


def _orm_rows(organization, site: str, day: date, rows: Iterator[_Row]) -> int:
    """The fallback where there is no COPY (SQLite, the demo): folded in memory."""
    pages: dict[str, list] = {}
    now = timezone.now()
    for row in rows:
        page = pages.setdefault(row.url, [row.deliverable_id, 0, 0, 0.0, 0])
        page[1] += row.impressions
        page[2] += row.clicks
        if row.position is not None:
            page[3] += row.position * row.impressions
            page[4] += row.impressions
    SearchPerformance.objects.bulk_create(
        (
            SearchPerformance(
                organization=organization,
                site=site,
                date=day,
                url=url,
                deliverable_id=deliverable_id,
                impressions=impressions,
                clicks=clicks,
                ctr=clicks / impressions if impressions else 0.0,
                position=weighted / positioned if positioned else None,
                as_of=now,
            )
            for url, (deliverable_id, impressions, clicks, weighted, positioned) in pages.items()
        ),
        batch_size=2000,
    )
    return len(pages)


def text_lines(binary) -> Iterator[str]:
    """A request body (an iterable of byte lines) as text lines, decoded as UTF-8 (a BOM
    is dropped), one line at a time."""
    return codecs.iterdecode(iter(binary), "utf-8-sig")
