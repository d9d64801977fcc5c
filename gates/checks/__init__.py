"""Built-in checks: pure functions of (event, deliverable, history, parameters) → verdict.

A check never touches the database or the network: payload HTML is parsed (never
executed) with selectolax (Lexbor, an HTML5 parser), no URL in a payload is fetched, and
images are bounded in bytes and pixels before they are decoded.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class EventView:
    """What a check may see of an event."""

    id: str
    event_type: str
    occurred_at: datetime
    payload: dict


@dataclass(frozen=True)
class CheckInput:
    event: EventView
    deliverable_type: str
    deliverable_url: str
    history: tuple[EventView, ...]  # earlier events of the deliverable, oldest first
    parameters: dict
    # Sums over the deliverable's whole earlier history, where a bounded ``history`` would
    # undercount (scope_limits: "hours" logged before this event).
    totals: dict = field(default_factory=dict)


@dataclass
class ArtifactOut:
    name: str
    content_type: str
    data: bytes


@dataclass
class CheckResult:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)
    artifacts: list[ArtifactOut] = field(default_factory=list)
    billing_flag: bool = False
    error: bool = False  # the check could not decide (bad input): outcome "error"

    @classmethod
    def ok(cls, **details) -> "CheckResult":
        return cls(True, details=details)

    @classmethod
    def fail(cls, *reasons: str, **kwargs) -> "CheckResult":
        return cls(False, list(reasons), **kwargs)

    @classmethod
    def errored(cls, reason: str) -> "CheckResult":
        return cls(False, [reason], error=True)


CHECKS: dict[str, Callable[[CheckInput], CheckResult]] = {}


def register(name: str):
    def decorator(fn):
        CHECKS[name] = fn
        return fn

    return decorator


def run(name: str, check_input: CheckInput) -> CheckResult:
    """Run a check; a crash inside it is an ``error`` verdict with the reason, never a 500."""
    try:
        return CHECKS[name](check_input)
    except Exception as exc:  # a check bug must not stop processing: record it
        return CheckResult.errored(f"{name} raised {type(exc).__name__}: {exc}")


from gates.checks import content, images, structured  # noqa: E402, F401  (register the checks)
