"""The monthly sample audit: SampleAudit.SIZE deliverables of the month drawn at random,
reproducibly, each with its forensic report frozen as a PDF at the draw, reviewed by a
person who records what they found.

The seed is derived from the organization's id and the month, and stored: anyone can redraw
the same sample (``draw_sample``) from the same population, which is the deliverables with
an event in that month, in id order. Drawing is idempotent per month (beat runs it for the
month just ended; an admin can run it for any past month).
"""

import hashlib
import random
from datetime import UTC, date, datetime

from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from deliveries.models import Deliverable, Event
from deliveries.services import trail
from meshline.models import Membership, Role
from reporting.models import AuditFinding, SampleAudit, SampleAuditItem
from reporting.services import forensic_pdf, forensics

# Who reviews: the people who answer for what a report shows.
REVIEWERS = (Role.ADMIN, Role.ACCOUNT_MANAGER, Role.FINANCE)


class AuditError(Exception):
    """A review that cannot be recorded; ``field`` names the form field."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field


def month_start(day: date) -> date:
    return day.replace(day=1)


def _next_month(month: date) -> date:
    return date(month.year + (month.month == 12), month.month % 12 + 1, 1)


def seed_for(organization, month: date) -> int:
    digest = hashlib.sha256(f"{organization.pk}:{month.isoformat()}".encode()).digest()
    return int.from_bytes(digest[:7], "big")


def population(organization, month: date) -> list[int]:
    """Ids of the deliverables with an event in ``month`` (UTC), in id order."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    end_month = _next_month(month)
    end = datetime(end_month.year, end_month.month, 1, tzinfo=UTC)
    # Distinct in the database: a month of a busy organization is millions of events.
    return list(
        Event.objects.filter(
            organization=organization,
            occurred_at__gte=start,
            occurred_at__lt=end,
            deliverable__isnull=False,
        )
        .order_by("deliverable_id")
        .values_list("deliverable_id", flat=True)
        .distinct()
    )


def draw_sample(seed: int, ids: list[int], size: int = SampleAudit.SIZE) -> list[int]:
    """The sample: the same seed and population always give the same ids, in draw order."""
    return random.Random(seed).sample(ids, min(size, len(ids)))


def draw(organization, month: date, now: datetime | None = None) -> SampleAudit | None:
    """The month's audit, drawn once (None: no deliverable had an event that month)."""
    now = now or timezone.now()
    month = month_start(month)
    existing = SampleAudit.objects.filter(organization=organization, month=month).first()
    if existing is not None:
        return existing
    ids = population(organization, month)
    if not ids:
        return None
    seed = seed_for(organization, month)
    picked = draw_sample(seed, ids)
    deliverables = Deliverable.objects.select_related("client", "organization").in_bulk(picked)
    try:
        with transaction.atomic():
            audit = SampleAudit.objects.create(
                organization=organization,
                month=month,
                seed=seed,
                drawn_at=now,
                population=len(ids),
            )
            for position, pk in enumerate(picked, start=1):
                _add_item(audit, deliverables[pk], position)
            trail.record(
                organization,
                "audit.sampled",
                key=f"audit:{audit.pk}:sampled",
                occurred_at=now,
                payload={
                    "audit_id": str(audit.pk),
                    "month": month.isoformat()[:7],
                    "seed": seed,
                    "population": len(ids),
                    "deliverables": [deliverables[pk].deliverable_id for pk in picked],
                },
            )
    except IntegrityError:  # a concurrent draw of the same month won
        return SampleAudit.objects.get(organization=organization, month=month)
    return audit


def _add_item(audit: SampleAudit, deliverable, position: int) -> None:
    """Freeze the deliverable's forensic report as it stands at the draw."""
    content = forensic_pdf.render(forensics.report(deliverable), deliverable.created_at)
    name = (
        f"audits/{audit.organization.slug}/{audit.label}/"
        f"{position:02d}-{deliverable.deliverable_id}.pdf"
    )
    if default_storage.exists(name):
        default_storage.delete(name)
    stored = default_storage.save(name, ContentFile(content, name=name))
    SampleAuditItem.objects.create(
        organization=audit.organization,
        audit=audit,
        deliverable=deliverable,
        position=position,
        report=stored,
        report_sha256=hashlib.sha256(content).hexdigest(),
    )


def record_review(
    item: SampleAuditItem, user, *, finding: str, notes: str = "", now=None
) -> SampleAuditItem:
    """Who reviewed the item's report and what they found; a later review replaces it, and
    each is in the trail."""
    now = now or timezone.now()
    if not Membership.objects.filter(
        organization=item.organization_id, user=user, role__in=REVIEWERS
    ).exists():
        raise PermissionDenied("Admins, account managers and finance review audits.")
    if finding not in AuditFinding.values:
        raise AuditError("Choose what you found.", "finding")
    notes = notes.strip()
    if finding == AuditFinding.ISSUE and not notes:
        raise AuditError("Say what the issue is.", "notes")
    item.finding, item.notes, item.reviewed_by, item.reviewed_at = finding, notes, user, now
    item.save(update_fields=["finding", "notes", "reviewed_by", "reviewed_at"])
    trail.record(
        item.organization,
        "audit.reviewed",
        key=f"audit-item:{item.pk}:reviewed:{now.isoformat()}",
        actor_role="user",
        actor_id=user.email or user.username,
        deliverable=item.deliverable,
        occurred_at=now,
        payload={
            "audit_id": str(item.audit_id),
            "deliverable_id": item.deliverable.deliverable_id,
            "finding": finding,
            "notes": notes,
            "report_sha256": item.report_sha256,
        },
    )
    return item
