"""Connector workflows.

- ``inbound``: receive a webhook into the raw inbox, map it to events, replay dead letters,
  endpoint health;
- ``outbound``: fan trail entries out to subscriptions and send them with retries behind a
  circuit breaker.
"""

from connectors.services.inbound import (
    KEPT_HEADERS,
    REFUSAL_STATUS,
    REJECTS_PER_MINUTE,
    Answer,
    Preview,
    create_endpoint,
    endpoint_health,
    map_delivery,
    preview,
    receive,
    replay,
    sweep_inbox,
)
from connectors.services.outbound import (
    SEND_DUE_BATCH,
    SEND_LEASE_SECONDS,
    enqueue,
    on_batch_processed,
    on_trail_appended,
    replay_outbound,
    send,
    send_due,
    set_paused,
    subscription_backlog,
    webhook_body,
)

__all__ = [
    "KEPT_HEADERS",
    "REFUSAL_STATUS",
    "REJECTS_PER_MINUTE",
    "SEND_DUE_BATCH",
    "SEND_LEASE_SECONDS",
    "Answer",
    "Preview",
    "create_endpoint",
    "endpoint_health",
    "enqueue",
    "map_delivery",
    "on_batch_processed",
    "on_trail_appended",
    "preview",
    "receive",
    "replay",
    "replay_outbound",
    "send",
    "send_due",
    "set_paused",
    "subscription_backlog",
    "sweep_inbox",
    "webhook_body",
]
