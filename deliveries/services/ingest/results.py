"""What ingestion answers per event, and the shape of its errors."""

from dataclasses import dataclass, field
from datetime import datetime

from django.db import models


class Status(models.TextChoices):
    """An event's outcome in the answer to POST /api/v1/events."""

    ACCEPTED = "accepted", "Accepted"
    DUPLICATE = "duplicate", "Duplicate"
    REJECTED = "rejected", "Rejected"


@dataclass
class IngestResult:
    """The answer for one submitted event."""

    index: int
    status: Status = Status.REJECTED
    event_id: str | None = None
    errors: list[dict] = field(default_factory=list)

    @property
    def is_conflict(self) -> bool:
        return any(error["code"] == "idempotency_conflict" for error in self.errors)

    def as_dict(self) -> dict:
        data: dict = {"index": self.index, "status": self.status}
        if self.event_id:
            data["id"] = self.event_id
        if self.errors:
            data["errors"] = self.errors
        return data


@dataclass
class Candidate:
    """A submitted event whose envelope and payload are valid, ready to store."""

    result: IngestResult
    data: dict
    occurred_at: datetime
    schema_version: int
    idempotency_key: str
    digest: str
    client_pk: int | None = None


def _error(code: str, message: str, field_name: str | None = None) -> dict:
    """One machine-readable error: {code, message[, field]}, the API's error body shape."""
    error = {"code": code, "message": message}
    if field_name:
        error["field"] = field_name
    return error
