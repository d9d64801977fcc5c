"""Query counts of the portal's list-like pages: a page's query count must not grow with rows.

tests/test_portal.py covers the deliverables list, the clients list and a deliverable's trail
(events only). Here: the dashboard, the remediation board, the ticket list and a ticket, my
queue, the rotas, the events list, a client, the gates list, a deliverable's tickets and gate
evaluations, and the organization picker, each as organization A's account manager.

Each test fills organization A with a few rows of every kind (``fill(..., "few", ...)``:
clients, members, roles with rotas and overrides, deliverables with their events, gates with
evaluations, tickets with roles, assignees, deliverables, priorities and deadlines), counts a
page's queries, adds many more rows of every kind, counts again and asserts the same number,
under a fixed ceiling. It also asserts that the added rows are on the page: a count that does
not grow because the new rows are not shown would prove nothing.
"""

import random
import re
from dataclasses import dataclass
from datetime import time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_scopes import scope

from deliveries.models import Client, Deliverable, Event, Tier
from deliveries.services import ingest_events, process_event
from gates import services as gate_services
from gates.models import Artifact, CheckName, Gate, GateEvaluation, GateMode
from meshline.models import Membership, Role
from meshline.services import create_organization, create_user
from owners.models import (
    NotificationChannel,
    OwnerRole,
    Priority,
    RotaLayer,
    RotaOverride,
    Ticket,
    TicketSource,
    TicketStatus,
)
from owners.services import tickets as ticket_services
from tests.conftest import PASSWORD
from tests.gates.conftest import PLAYBOOK, page
from tests.owners.factories import make_calendar, make_role, make_rule

# An unordered list page paginates inconsistently: treat Django's warning as a failure.
pytestmark = pytest.mark.filterwarnings("error::django.core.paginator.UnorderedObjectListWarning")

MEMBER = "member@a.example"
FAILING_PAGE = page("missing_jsonld.html")  # fails schema_check
PASSING_PAGE = page("product_landing.html")
STEPS = ["intake.received", "scope.accepted", "asset.uploaded", "page.published"]
STATUSES = [TicketStatus.OPEN, TicketStatus.ACKNOWLEDGED, TicketStatus.RESOLVED]
PRIORITIES = list(Priority.values)


# --- building an organization's rows ---------------------------------------------------------


def _payload(event_type: str, ref: str, i: int, title: str) -> dict:
    if event_type == "intake.received":
        return {"deliverable_type": "landing_page", "title": title}
    if event_type == "scope.accepted":
        return {"limits": {"revisions": 2}, "signed_by": "cmo@acme.example"}
    if event_type == "asset.uploaded":
        return {"asset_id": f"{ref}-hero", "size_bytes": 1200}
    return {
        "url": f"https://acme.example/lp/{ref.lower()}",
        "html": FAILING_PAGE if i // 4 % 2 == 0 else PASSING_PAGE,
    }


def submit(organization, events: list[dict]) -> list[Event]:
    """Store events through the real ingest path and process them in-process."""
    with scope(organization=organization):
        results = ingest_events(organization, events)
        assert [r.status for r in results] == ["accepted"] * len(events), [
            r.as_dict() for r in results
        ]
        for result in results:
            process_event(result.event_id)
        return list(Event.objects.filter(pk__in=[r.event_id for r in results]))


def publish_events(organization, ref: str, client: str, count: int, prefix: str) -> list[Event]:
    """``count`` more page.published events for deliverable ``ref`` (four failing, then two
    passing schema_check)."""
    now = timezone.now()
    return submit(
        organization,
        [
            {
                "event_type": "page.published",
                "deliverable_id": ref,
                "client_id": client,
                "idempotency_key": f"{prefix}-{ref}-republished-{i}",
                "actor": {"role": "cms", "id": "wp-publisher"},
                "occurred_at": (now - timedelta(seconds=count - i)).isoformat(),
                "payload": _payload("page.published", ref, i, ""),
            }
            for i in range(count)
        ],
    )


def evaluate_all(organization, gates: list[Gate], events: list[Event]) -> None:
    """Each gate's real verdict on each event (enforced failures open gate tickets)."""
    with scope(organization=organization):
        for event in events:
            for gate in gates:
                gate_services.evaluate(gate, event)


@dataclass
class Filled:
    people: list  # the new members
    gates: list[Gate]


def fill(organization, prefix: str, n: int, member, *, tickets: int | None = None) -> Filled:
    """Add ``n`` of each kind of row (``6 n`` tickets unless told), all named after ``prefix``.

    Clients, members (some with a notification channel), owner roles with a rota (the signed-in
    member, two new people, an override), deliverables of the new clients and of Acme with
    events up to different lifecycle states, gates (enforced and monitored) with their real
    evaluations, and tickets spread over every role, member, deliverable, status, priority and
    deadline (overdue or not).
    """
    title = prefix.title()
    now = timezone.now()
    rng = random.Random(prefix)
    people = [
        create_user(f"{prefix}-p{i}@a.example", organization, Role.ACCOUNT_MANAGER, PASSWORD)
        for i in range(n)
    ]
    with scope(organization=organization):
        clients = [
            Client.objects.create(
                organization=organization,
                client_id=f"{prefix}-c{i}",
                name=f"{title} client {i}",
                tier=[Tier.STANDARD, Tier.PREMIUM, Tier.ENTERPRISE][i % 3],
            )
            for i in range(n)
        ]
        for i, person in enumerate(people[::2]):
            NotificationChannel.objects.create(
                organization=organization, user=person, address=f"{prefix}-{i}@inbox.example"
            )
        for i in range(n):
            role = make_role(
                organization,
                slug=f"{prefix}-role-{i}",
                name=f"{title} role {i}",
                people=[member, people[i], people[(i + 1) % n]],
            )
            RotaLayer.objects.create(
                organization=organization,
                rota=role.rota,
                name="weekend",
                frequency="daily",
                priority=2,
                handoff_time=time(8),
                start_date=now.date() - timedelta(days=3),
                people=[people[(i + 1) % n].pk, member.pk],
                windows=[{"weekdays": [5, 6], "start": "08:00", "end": "20:00"}],
            )
            RotaOverride.objects.create(
                organization=organization,
                rota=role.rota,
                person=people[i],
                start=now + timedelta(days=2),
                end=now + timedelta(days=2, hours=4),
                reason="swap",
            )

    # Deliverables of the new clients and of Acme, each taken to a different state.
    events = []
    for i in range(n):
        ref = f"{prefix}-LP-{i}"
        client = "acme" if i % 2 == 0 else clients[i].client_id
        steps = STEPS[: len(STEPS) - i % len(STEPS)]
        for k, event_type in enumerate(steps):
            events.append(
                {
                    "event_type": event_type,
                    "deliverable_id": ref,
                    "client_id": client,
                    "idempotency_key": f"{ref}-{event_type}",
                    "actor": {"role": "cms", "id": "wp-publisher"},
                    "occurred_at": (
                        now - timedelta(minutes=5 * (n - i), seconds=10 - k)
                    ).isoformat(),
                    "payload": _payload(event_type, ref, i, f"{title} page {i}"),
                }
            )
    stored = submit(organization, events)

    with scope(organization=organization):
        gates = [
            Gate.objects.create(
                organization=organization,
                slug=f"{prefix}-gate-{i}",
                name=f"{title} gate {i}",
                check_name=[CheckName.SCHEMA_CHECK, CheckName.SEO_TAGS_PRESENT][i % 2],
                event_types=["page.published"],
                mode=[GateMode.ENFORCE, GateMode.ENFORCE, GateMode.MONITOR][i % 3],
                playbook=PLAYBOOK,
                min_evaluations=1000,
            )
            for i in range(max(2, n // 3))
        ]
    evaluate_all(organization, gates, [e for e in stored if e.event_type == "page.published"])

    # Tickets: status, priority and lateness cover every combination; role, assignee and
    # deliverable are drawn from everything the organization has by now.
    with scope(organization=organization):
        all_roles = list(OwnerRole.objects.filter(organization=organization).order_by("pk"))
        all_deliverables = list(
            Deliverable.objects.filter(organization=organization).order_by("pk")
        )
        members = [member, *people, None]
        rows = []
        for i in range(6 * n if tickets is None else tickets):
            status = STATUSES[i % 3]
            overdue = i // 3 % 2 == 1
            due = now - timedelta(hours=1) if overdue else now + timedelta(hours=4)
            rows.append(
                Ticket(
                    organization=organization,
                    source=rng.choice([TicketSource.INCIDENT, TicketSource.CHANGE_REQUEST]),
                    source_key=f"{prefix}:{i}",
                    title=f"{title} ticket {i}",
                    deliverable=rng.choice([*all_deliverables, None]),
                    priority=PRIORITIES[i // 6 % 4],
                    status=status,
                    owner_role=rng.choice(all_roles),
                    assignee=rng.choice(members),
                    context={
                        "reasons": [f"{title} reason {i}"],
                        "remediation": PLAYBOOK,
                        "last_events": [{"event_type": "page.published"}],
                    },
                    opened_at=now - timedelta(hours=8, minutes=i),
                    respond_due_at=due - timedelta(hours=1),
                    resolve_due_at=due,
                    acknowledged_at=now - timedelta(hours=2) if status != "open" else None,
                    resolved_at=now - timedelta(hours=1) if status == "resolved" else None,
                )
            )
        Ticket.objects.bulk_create(rows)
    return Filled(people, gates)


@pytest.fixture
def world(org_a, member, owner, client_acme):
    """build(tickets=None): organization A's owner map (a default calendar and a catch-all
    rule for the admin's role), then a few rows of every kind."""

    def build(tickets: int | None = None) -> Filled:
        with scope(organization=org_a):
            make_calendar(org_a)
            account = make_role(
                org_a, slug="account-manager", name="Account Manager", people=[owner]
            )
            make_rule(org_a, account, position=1000)
        return fill(org_a, "few", 2, member, tickets=tickets)

    return build


# --- counting --------------------------------------------------------------------------------


def get(client, path) -> tuple[str, CaptureQueriesContext]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(path)
    assert response.status_code == 200, path
    return response.content.decode(), queries


def repeated(few: CaptureQueriesContext, many: CaptureQueriesContext) -> str:
    """The statements (parameters masked) that ran more often with many rows: the N+1."""

    def shapes(queries):
        counts: dict[str, int] = {}
        for query in queries.captured_queries:
            sql = re.sub(r"'[^']*'|\b\d+\b", "?", query["sql"])
            sql = re.sub(r"IN \(\?(, \?)*\)", "IN (...)", sql)
            counts[sql] = counts.get(sql, 0) + 1
        return counts

    before, after = shapes(few), shapes(many)
    grown = {sql: (before.get(sql, 0), n) for sql, n in after.items() if n > before.get(sql, 0)}
    return "\n".join(f"{b} -> {a} times: {sql}" for sql, (b, a) in grown.items())


def assert_flat(few: CaptureQueriesContext, many: CaptureQueriesContext) -> None:
    assert len(many) == len(few), f"{len(few)} -> {len(many)} queries\n{repeated(few, many)}"


# The most queries each page may run: session, user and membership (3), then the page's own.
# Measured on PostgreSQL; each page's count is the same with a few rows and with many.
CEILINGS = {
    # client options, scope, throughput (counts, chart, processing), tickets panel
    # (totals, by role, by person, MTTR), backlog incident panel (the latest incident and
    # its ticket), gates panel, flows panel (one aggregate), attribution panel (reporting
    # settings, latest search day, open mismatches, deliverables with impressions)
    "dashboard": 22,
    "dashboard-client": 23,  # + looking up the client
    "board": 6,  # one query per column (open, acknowledged, resolved)
    "tickets": 5,  # COUNT, then the page
    "ticket": 6,  # the ticket, its history, the members to reassign to
    # COUNT, the page, rotas with their layers and overrides; the reviews the person's
    # roles owe (their rota layers, the reviews) and their assurance check
    "me": 11,
    # Rotas with layers and overrides (3), the people on duty (1), the coverage report's
    # rotas with layers and overrides (3), the people on duty and their channels (2). (It
    # once read each person and their channels one by one: 18 queries for four people.)
    "rotas": 12,
    "events": 5,  # keyset page (no COUNT), the clients to suggest
    "client": 7,  # the client, deliverables by state, recent deliverables, account trail
    "gates": 6,  # pass rates over 24 h and 7 days, the gates
    # deliverable, events (COUNT, page), tickets, evaluations, artifacts, billing
    # (agreements, items), flow runs, and the Revenue section (reporting settings,
    # attributed revenue, search totals)
    "deliverable": 15,
    "picker": 3,  # session, user, organizations
}


@dataclass
class Case:
    path: str
    ceiling: str  # key of CEILINGS
    row: str  # one per row shown: its count must grow
    added: str  # only the added rows show this
    tickets: int | None = None  # tickets of the "few" fill, when the page needs more


CASES = {
    "dashboard": Case("/o/org-a/", "dashboard", "?role=", 'value="many-c0"'),
    "dashboard-30d": Case("/o/org-a/?period=30d", "dashboard", "?role=", "Many role"),
    "dashboard-24h": Case("/o/org-a/?period=24h", "dashboard", "?assignee=", "many-p"),
    "dashboard-client": Case("/o/org-a/?client=acme", "dashboard-client", "?role=", "Many role"),
    "dashboard-client-30d": Case(
        "/o/org-a/?client=acme&period=30d", "dashboard-client", "?assignee=", "many-p"
    ),
    "board": Case("/o/org-a/board/", "board", 'class="ticket-card', "Many ticket"),
    "board-overdue": Case(
        "/o/org-a/board/?overdue=true", "board", 'class="ticket-card', "Many ticket"
    ),
    "board-on-time": Case(
        "/o/org-a/board/?overdue=false", "board", 'class="ticket-card', "Many ticket"
    ),
    "board-role": Case(
        "/o/org-a/board/?role=few-role-0", "board", 'class="ticket-card', "Many ticket"
    ),
    "board-assignee": Case(
        f"/o/org-a/board/?assignee={MEMBER}", "board", 'class="ticket-card', "Many ticket"
    ),
    "board-client": Case("/o/org-a/board/?client=acme", "board", 'class="ticket-card', "many-LP"),
    "board-priority": Case(
        "/o/org-a/board/?priority=p1", "board", 'class="ticket-card', "Many ticket"
    ),
    "board-combined": Case(
        "/o/org-a/board/?client=acme&overdue=true&status=open&status=acknowledged",
        "board",
        'class="ticket-card',
        "Many ticket",
    ),
    "board-gate-failures": Case(
        "/o/org-a/board/?source=gate_failure", "board", 'class="ticket-card', "Many gate"
    ),
    "tickets": Case("/o/org-a/tickets/", "tickets", "<tr>", "Many ticket"),
    "tickets-page-2": Case("/o/org-a/tickets/?page=2", "tickets", "<tr>", "Many ticket", 60),
    "tickets-filtered": Case(
        "/o/org-a/tickets/?status=open&client=acme&priority=p3", "tickets", "<tr>", "many-LP"
    ),
    "tickets-gate-failures": Case(
        "/o/org-a/tickets/?source=gate_failure", "tickets", "<tr>", "Many gate"
    ),
    "my-queue": Case("/o/org-a/me/", "me", 'class="ticket-card', "Many role"),
    "rotas": Case("/o/org-a/rotas/", "rotas", '<th scope="row">', "Many role"),
    "events": Case("/o/org-a/events/", "events", "<td><time", "many-LP"),
    "events-type": Case(
        "/o/org-a/events/?event_type=page.published", "events", "<td><time", "many-LP"
    ),
    "events-client": Case("/o/org-a/events/?client=acme", "events", "<td><time", "many-LP"),
    "events-submitted": Case(  # the dashboard's throughput links
        "/o/org-a/events/?client=acme&source=api&source=webhook", "events", "<td><time", "many-LP"
    ),
    "events-processed": Case(
        "/o/org-a/events/?processing=processed", "events", "<td><time", "many-LP"
    ),
    "client": Case(
        "/o/org-a/clients/acme/", "client", '<li><a href="/o/org-a/deliverables/', "many-LP"
    ),
    "gates": Case("/o/org-a/gates/", "gates", '<th scope="row">', "Many gate"),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_list_page_queries_do_not_grow_with_rows(
    as_member, org_a, member, world, case, django_assert_max_num_queries
):
    world(tickets=case.tickets)
    few_page, few = get(as_member, case.path)

    fill(org_a, "many", 12, member, tickets=case.tickets and 3 * case.tickets)
    many_page, many = get(as_member, case.path)

    print(f"{case.path}: {len(few)} queries with a few rows, {len(many)} with many")
    assert case.added not in few_page
    assert case.added in many_page
    assert many_page.count(case.row) > few_page.count(case.row) > 0
    assert_flat(few, many)
    with django_assert_max_num_queries(CEILINGS[case.ceiling]):
        as_member.get(case.path)


@pytest.mark.parametrize("source", [TicketSource.INCIDENT, TicketSource.GATE_FAILURE])
def test_ticket_page_queries_do_not_grow_with_history_or_members(
    as_member, org_a, member, world, source, django_assert_max_num_queries
):
    """The ticket's history (trail events) and the reassign form's members grow."""
    few_rows = world()
    actor = ticket_services.Actor.for_user(member)
    with scope(organization=org_a):
        if source == TicketSource.GATE_FAILURE:  # few-gate-0 failed on few-LP-0
            ticket = Ticket.objects.get(organization=org_a, source=source)
        else:
            ticket, _ = ticket_services.open_ticket(
                org_a,
                source=source,
                source_key="incident:hero",
                title="Hero image is broken",
                event_type="page.published",
                deliverable=Deliverable.objects.get(organization=org_a, deliverable_id="few-LP-0"),
            )
        ticket_services.reassign(ticket, actor, few_rows.people[0])
    path = f"/o/org-a/tickets/{ticket.pk}/"
    few_page, few = get(as_member, path)

    many_rows = fill(org_a, "many", 12, member)
    with scope(organization=org_a):
        ticket_services.acknowledge(ticket, actor)
        for person in many_rows.people:
            ticket_services.reassign(ticket, actor, person)
    many_page, many = get(as_member, path)

    history = "<strong>ticket.reassigned</strong>"
    assert (few_page.count(history), many_page.count(history)) == (1, 13)
    assert "many-p11@a.example</option>" in many_page
    assert "many-p11@a.example</option>" not in few_page
    print(f"{path} ({source}): {len(few)} queries with a few rows, {len(many)} with many")
    assert_flat(few, many)
    with django_assert_max_num_queries(CEILINGS["ticket"]):
        as_member.get(path)


def test_deliverable_page_queries_do_not_grow_with_tickets_and_evaluations(
    as_member, org_a, member, world, django_assert_max_num_queries
):
    """The sections other apps add to a deliverable's page: its tickets, its gate
    evaluations with their artifacts (tests/test_portal.py grows only the events)."""
    few_rows = world()
    path = "/o/org-a/deliverables/few-LP-0/"

    def add_artifacts():
        with scope(organization=org_a):
            for evaluation in GateEvaluation.objects.filter(
                organization=org_a, deliverable__deliverable_id="few-LP-0", artifacts=None
            ):
                for name in ("screenshot-diff.png", "baseline.png"):
                    Artifact.objects.create(
                        organization=org_a,
                        evaluation=evaluation,
                        name=name,
                        content_type="image/png",
                        data=b"\x89PNG",
                    )

    add_artifacts()
    few_page, few = get(as_member, path)

    many_rows = fill(org_a, "many", 12, member)
    events = publish_events(org_a, "few-LP-0", "acme", 6, "many")
    evaluate_all(org_a, few_rows.gates + many_rows.gates, events)
    add_artifacts()
    with scope(organization=org_a):
        deliverable = Deliverable.objects.get(organization=org_a, deliverable_id="few-LP-0")
        for i, person in enumerate(many_rows.people):
            ticket_services.open_ticket(
                org_a,
                source=TicketSource.CHANGE_REQUEST,
                source_key=f"change:{i}",
                title=f"Many change {i}",
                event_type="asset.uploaded",
                deliverable=deliverable,
            )
            Ticket.objects.filter(organization=org_a, source_key=f"change:{i}").update(
                assignee=person
            )
    many_page, many = get(as_member, path)

    for row in ('id="evaluation-', "<td>level ", "artifact: <a", '<li class="trail-event'):
        assert many_page.count(row) > few_page.count(row), row
    assert "Many change 11" in many_page
    assert "Many gate 3" in many_page
    print(f"{path}: {len(few)} queries with a few rows, {len(many)} with many")
    assert_flat(few, many)
    with django_assert_max_num_queries(CEILINGS["deliverable"]):
        as_member.get(path)


def test_organization_picker_queries_do_not_grow_with_organizations(
    client, member, org_a, django_assert_max_num_queries
):
    def join(prefix, count):
        # Memberships rather than create_user, which would set the password again and so
        # end the session.
        for i in range(count):
            organization, _ = create_organization(f"{prefix}-org-{i}", f"{prefix.title()} org {i}")
            Membership.objects.create(
                user=member, organization=organization, role=[Role.VIEWER, Role.FINANCE][i % 2]
            )

    join("few", 2)
    client.force_login(member)
    few_page, few = get(client, "/")
    join("many", 12)
    many_page, many = get(client, "/")

    assert (few_page.count('href="/o/'), many_page.count('href="/o/')) == (3, 15)
    assert "Many org 11" in many_page
    print(f"/: {len(few)} queries with a few organizations, {len(many)} with many")
    assert_flat(few, many)
    with django_assert_max_num_queries(CEILINGS["picker"]):
        client.get("/")
