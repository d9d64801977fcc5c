"""Meshline's one extension registry: how a higher layer plugs into a lower one.

Dependencies point one way (meshline <- deliveries <- owners <- gates <- billing ...). A lower
layer never imports a higher one: it reads an extension point here, and the higher layer
registers into it from its ``AppConfig.ready()``. Every point

- holds values of one documented shape (the ``ExtensionPoint`` docstring and its type);
- takes a unique name per registration, ``"<app>.<what>"``: registering a name twice raises
  ``DuplicateExtension`` (a second ``ready()`` or a copy-pasted line is a bug, not a no-op);
- yields its values in explicit order (``order``, then name), never in import order;
- accepts registrations only while Django starts (``AppConfig.ready()``): one registered
  later would reach some processes and not others. Tests use ``override()``.

The points, and who reads them, are listed in docs/architecture.md ("Extension points").
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple, TypeVar

from django.apps import apps
from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")


class DuplicateExtension(ImproperlyConfigured):
    """A name registered twice on one extension point."""


class LateRegistration(ImproperlyConfigured):
    """A registration after Django finished starting (outside ``AppConfig.ready()``)."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    name: str
    order: int
    value: T


class ExtensionPoint(Generic[T]):
    """A named, ordered set of values that higher layers contribute."""

    def __init__(self, name: str, doc: str):
        self.name = name
        self.__doc__ = doc
        self._entries: dict[str, Entry[T]] = {}
        self._ordered: list[Entry[T]] | None = None

    def register(self, name: str, value: T, *, order: int = 100) -> T:
        """Add ``value`` under ``name``; call from ``AppConfig.ready()`` only."""
        if apps.ready:
            raise LateRegistration(
                f"{self.name}: register {name!r} from AppConfig.ready(), not at run time"
            )
        self._add(name, value, order)
        return value

    @contextmanager
    def override(self, name: str, value: T, *, order: int = 100) -> Iterator[T]:
        """Register ``value`` for the duration of a ``with`` block (tests)."""
        self._add(name, value, order)
        try:
            yield value
        finally:
            del self._entries[name]
            self._ordered = None

    def _add(self, name: str, value: T, order: int) -> None:
        if name in self._entries:
            raise DuplicateExtension(f"{self.name}: {name!r} is registered already")
        self._entries[name] = Entry(name, order, value)
        self._ordered = None

    def entries(self) -> list[Entry[T]]:
        if self._ordered is None:
            self._ordered = sorted(self._entries.values(), key=lambda e: (e.order, e.name))
        return self._ordered

    def __iter__(self) -> Iterator[T]:
        return iter([entry.value for entry in self.entries()])

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"<ExtensionPoint {self.name}: {[e.name for e in self.entries()]}>"


class Section(NamedTuple):
    """A server-rendered block: ``template`` rendered with ``context(request, obj)``."""

    template: str
    context: Callable[..., dict]


class NavLink(NamedTuple):
    """A portal navigation entry; ``url_name`` takes the organization slug."""

    label: str
    url_name: str


class TicketSource(NamedTuple):
    """How an app links the tickets it opens to what opened them.

    The app owns a link row, one-to-one with the ticket (``relation`` is its reverse name
    on Ticket, ``select`` the paths to select_related in lists), and ``describe(link)``
    gives its public ids. Owners sits below the apps that open tickets, so the foreign keys
    point from their rows to the ticket, and the database enforces them.
    """

    relation: str
    select: tuple[str, ...]
    describe: Callable[[Any], dict]


processing_steps: ExtensionPoint[Callable[[Any], None]] = ExtensionPoint(
    "processing_steps",
    """``step(batch)``, run for every batch of events inside its processing transaction,
    after the lifecycles advanced (``deliveries.services.processing.Batch``: ``items`` are
    (event, deliverable) pairs, deliverables locked). Read what the batch needs at once, not
    per event; ``for_each_event(step)`` adapts a per-event step. Must be idempotent: events
    may be processed again after a crash or by replay.""",
)
trail_sections: ExtensionPoint[Callable[[Any], list[dict]]] = ExtensionPoint(
    "trail_sections",
    """``section(deliverable) -> list[dict]``, added to the trail API response under the
    registered name's last part (``"owners.tickets"`` -> ``"tickets"``).""",
)
deliverable_sections: ExtensionPoint[Section] = ExtensionPoint(
    "deliverable_sections",
    """``Section(template, context(request, deliverable))`` blocks on the portal's
    deliverable page, below its events.""",
)
dashboard_panels: ExtensionPoint[Section] = ExtensionPoint(
    "dashboard_panels",
    """``Section(template, context(request, scope))`` panels on the dashboard, where
    ``scope`` is a DashboardScope (organization, client, since).""",
)
queue_sections: ExtensionPoint[Section] = ExtensionPoint(
    "queue_sections",
    """``Section(template, context(request, now))`` blocks on a person's own queue (My
    queue), e.g. the reviews and the weekly assurance check they owe.""",
)
nav_links: ExtensionPoint[NavLink] = ExtensionPoint(
    "nav_links", """``NavLink(label, url_name)`` in the portal's navigation bar."""
)
resolve_guards: ExtensionPoint[Callable[[Any, str], None]] = ExtensionPoint(
    "resolve_guards",
    """``guard(ticket, waiver_reason)`` before a ticket is resolved: raises TicketError to
    refuse (e.g. the gate that opened it still fails and there is no waiver).""",
)
ticket_sources: ExtensionPoint[TicketSource] = ExtensionPoint(
    "ticket_sources",
    """``TicketSource(relation, select, describe)``: what opened a ticket (a gate
    evaluation; later a billable item, flow run, attribution mismatch, incident), read by
    ``Ticket.opened_by()`` and the tickets API.""",
)
trail_listeners: ExtensionPoint[Callable[[Any, list], None]] = ExtensionPoint(
    "trail_listeners",
    """``listener(organization, events)`` with the entries ``deliveries.services.trail``
    just appended (record / record_many; never ones it skipped as already recorded),
    inside the appending transaction: what the listener stores commits with the entries or
    not at all (an outbox). Publish follow-up work with ``publish_on_commit``.""",
)
demo_configure: ExtensionPoint[Callable[[Any, dict], None]] = ExtensionPoint(
    "demo_configure",
    """``configure(organization, users_by_email)`` while the demo organization is seeded,
    before its events are ingested (roles, rotas, gates...).""",
)
demo_events: ExtensionPoint[Callable[[Any], list[dict]]] = ExtensionPoint(
    "demo_events",
    """``events(organization) -> list[dict]``: event bodies an app adds to the demo's batch
    (ingested and processed with it, so they count as the demo's own events). Times and
    idempotency keys must be fixed for the organization, so a second seed adds nothing.""",
)
demo_after_events: ExtensionPoint[Callable[[Any], None]] = ExtensionPoint(
    "demo_after_events",
    """``after(organization)`` once the demo's events are processed (e.g. expire timers).""",
)

POINTS: tuple[ExtensionPoint, ...] = (
    processing_steps,
    trail_sections,
    deliverable_sections,
    dashboard_panels,
    queue_sections,
    nav_links,
    resolve_guards,
    ticket_sources,
    trail_listeners,
    demo_configure,
    demo_events,
    demo_after_events,
)
