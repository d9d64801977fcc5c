"""Workflows of the deliveries app: ingesting events and processing them."""

from deliveries.services.ingest import IngestResult, ingest_events, validate_envelope
from deliveries.services.processing import (
    dispatch_events,
    process_event,
    sweep_unprocessed_events,
)

__all__ = [
    "IngestResult",
    "dispatch_events",
    "ingest_events",
    "process_event",
    "sweep_unprocessed_events",
    "validate_envelope",
]
