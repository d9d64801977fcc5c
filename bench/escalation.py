#!/usr/bin/env python
"""Escalation sweep benchmark: one sweep pass over 100,000 open tickets in an organization.

Run from the repository root (see bench/README.md)::

    .venv/bin/python bench/escalation.py                          # 100,000 tickets, 1,000 due
    .venv/bin/python bench/escalation.py --tickets 100000 --due 1000 --due-large 10000

It resets a dedicated PostgreSQL database (meshline_bench_esc), migrates it and builds one
organization the way an admin would: three people, a role whose rota rotates them weekly
(handoff 09:00 Europe/Berlin), a default business calendar (Europe/Berlin office hours, a
holiday), an escalation policy (notify the on-duty primary after 30 business minutes, then
the backup after 60, repeated twice: six levels), an owner rule, two clients and a few
deliverables. One ticket is opened through ``owners.services.tickets.open_ticket``; its
rule and policy snapshots are the template for 100,000 more open tickets, COPYed in with
``next_escalation_at`` spread over the next three weeks and a mix of escalation levels
(so both the primary and the backup steps run), plus what their past left behind (a
ticket.opened entry and notification each, one ticket.escalated entry and notification per
level already run: about 250,000 of each for 100,000 tickets, so that the tables and the
planner's statistics look like a live organization's). Then VACUUM ANALYZE, and it times
``owners.services.escalation.escalate_due_tickets`` inside ``scope(organization=...)``:

(a) a pass with nothing due (100,000 open tickets, none due);
(b) a pass with ``--due`` tickets due (default 1,000);
(c) a pass with ``--due-large`` tickets due (default 10,000; 0 skips it);

plus the beat task's fan-out query (which organizations have a due ticket).

Fresh data for every repetition, without deleting anything: the due tickets of each
repetition are their own disjoint set, inserted due at their own moment T_k (T_k = start +
k x 10 s), and repetition k sweeps at ``now=T_k``. A swept ticket moves on to its next
step (30 or more business minutes later), so it is never due again during the bench; the
trail (append-only, guarded by a trigger) and the notifications only grow, as in production.
Each case is run once untimed with its queries captured (that run also warms the caches),
then ``--runs`` times (default 5); the median is reported.

Notifications are only queued: Celery publishes to its in-process ``memory://`` broker
(CELERY_BROKER_URL is cleared, CELERY_TASK_ALWAYS_EAGER=0), so sending is not part of the
sweep, as with a real broker and workers. ``--eager`` sends them in-process right after each
chunk commits instead, through Django's locmem email backend: nothing leaves the machine
either way. Only 127.0.0.1 is contacted; the bench database is kept for inspection (the
next run empties it by recreating its public schema).

Exit status: 0 when the floor is met (a pass under 2 s for cases (a) and (b); (c) is
informational), 1 when it is not, 2 when a sweep escalated a different number of tickets
or wrote a different number of trail entries than it should (the numbers then mean nothing).
"""

import argparse
import json
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from support import reset_database  # noqa: E402

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/meshline_bench_esc"
FLOOR_SECONDS = 2.0
COPY_BATCH = 10_000
# Due set k is due at T_k = start + k * SET_SPACING; a swept ticket's next step is at least
# 30 business minutes later, so every set must fit in that window.
SET_SPACING = timedelta(seconds=10)
SHORTEST_WAIT = timedelta(minutes=30)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=100_000, help="open tickets (100000)")
    parser.add_argument("--due", type=int, default=1_000, help="due tickets in case (b) (1000)")
    parser.add_argument(
        "--due-large", type=int, default=10_000, help="due tickets in case (c); 0 skips (10000)"
    )
    parser.add_argument("--runs", type=int, default=5, help="timed repetitions per case (5)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--eager",
        action="store_true",
        help="send the notifications in-process (locmem email) instead of queueing them",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("MESHLINE_BENCH_ESC_DATABASE_URL", DEFAULT_DATABASE_URL),
        help=f"database to reset and use ({DEFAULT_DATABASE_URL})",
    )
    parser.add_argument(
        "--force", action="store_true", help="reset the database even if its name lacks 'bench'"
    )
    parser.add_argument(
        "--profile",
        metavar="PATH",
        help="write a cProfile of the first timed pass of the largest case to PATH "
        "(that pass is slower; its time is still counted)",
    )
    args = parser.parse_args()
    if args.runs < 1 or args.tickets < 1 or args.due < 1 or args.due_large < 0:
        parser.error("--tickets, --due and --runs must be positive, --due-large >= 0")
    return args


# --- database ---------------------------------------------------------------------------------


def setup_django(url: str, eager: bool) -> None:
    """Point Meshline at the bench database; make sure no message can leave the machine."""
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "meshline.settings"
    os.environ["MESHLINE_DEBUG"] = "0"
    os.environ["MESHLINE_LOG_LEVEL"] = "WARNING"
    os.environ["MESHLINE_EMAIL_BACKEND"] = "django.core.mail.backends.locmem.EmailBackend"
    os.environ["CELERY_BROKER_URL"] = ""  # settings fall back to the in-process memory:// broker
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1" if eager else "0"
    import django

    django.setup()
    from django.conf import settings

    assert settings.EMAIL_BACKEND.endswith("locmem.EmailBackend"), settings.EMAIL_BACKEND
    assert settings.CELERY_BROKER_URL == "memory://", settings.CELERY_BROKER_URL


# --- the organization ---------------------------------------------------------------------------


def build_organization() -> dict:
    """Organization, people, role + rota, calendar, policy, rule, clients and deliverables."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone
    from django_scopes import scope

    from deliveries.models import Client, Deliverable, Tier
    from meshline.models import Membership, Role
    from meshline.services import create_organization
    from owners.models import (
        BusinessCalendar,
        EscalationPolicy,
        EscalationStep,
        Holiday,
        NotificationChannel,
        OwnerRole,
        OwnerRule,
        Rota,
        RotaLayer,
        StepAction,
        TicketSource,
        WaitKind,
    )
    from owners.services import tickets

    organization, _ = create_organization("bench-escalation", "Bench Escalation Agency")
    User = get_user_model()
    with scope(organization=organization):
        people = []
        for name in ("ada", "brian", "chen"):
            user = User(username=f"{name}@bench.test", email=f"{name}@bench.test")
            user.set_unusable_password()
            user.save()
            Membership.objects.create(user=user, organization=organization, role=Role.ADMIN)
            people.append(user)
        # Ada has two channels (two notifications per step), Chen one, Brian none (account
        # email fallback): the three shapes notify() handles.
        for user, address in (
            (people[0], "ada@pager.bench.test"),
            (people[0], None),
            (people[2], None),
        ):
            NotificationChannel.objects.create(
                organization=organization, user=user, address=address or user.email
            )
        role = OwnerRole.objects.create(
            organization=organization, slug="seo-delivery-owner", name="SEO Delivery Owner"
        )
        today = timezone.localdate()
        rota = Rota.objects.create(organization=organization, role=role, timezone="Europe/Berlin")
        RotaLayer.objects.create(
            organization=organization,
            rota=rota,
            name="weekly",
            frequency="weekly",
            start_date=today - timedelta(days=today.weekday() + 7 * 8),  # a Monday, 8 weeks ago
            people=[person.pk for person in people],
        )
        calendar = BusinessCalendar.objects.create(
            organization=organization,
            name="Berlin office",
            timezone="Europe/Berlin",
            working_hours={str(day): [["09:00", "12:30"], ["13:30", "17:30"]] for day in range(5)},
            is_default=True,
        )
        Holiday.objects.create(
            organization=organization,
            calendar=calendar,
            date=date(today.year, 12, 25),
            name="Christmas",
        )
        policy = EscalationPolicy.objects.create(
            organization=organization, name="Primary, then backup", repeat=2
        )
        for position, (wait, action) in enumerate(
            ((30, StepAction.NOTIFY_PRIMARY), (60, StepAction.NOTIFY_BACKUP))
        ):
            EscalationStep.objects.create(
                organization=organization,
                policy=policy,
                position=position,
                wait_minutes=wait,
                wait_kind=WaitKind.BUSINESS,
                action=action,
            )
        OwnerRule.objects.create(
            organization=organization,
            event_type="",
            owner_role=role,
            respond_minutes=60,
            resolve_minutes=8 * 60,
            escalation_policy=policy,
        )
        clients = [
            Client.objects.create(
                organization=organization, client_id=ref, name=ref.title(), tier=tier
            )
            for ref, tier in (("acme", Tier.ENTERPRISE), ("globex", Tier.STANDARD))
        ]
        deliverables = [
            Deliverable.objects.create(
                organization=organization,
                client=clients[i % 2],
                deliverable_id=f"LP-{i + 1}",
                type="landing_page",
                title=f"Landing page {i + 1}",
            )
            for i in range(8)
        ]
        template, _ = tickets.open_ticket(
            organization,
            source=TicketSource.GATE_FAILURE,
            source_key="bench:template",
            title="JSON-LD missing on the landing page",
            event_type="page.published",
            deliverable=deliverables[0],
        )
        # Its rule and policy snapshots are what 100,000 tickets copy; it stays out of the way.
        tickets.cancel(template, tickets.MESHLINE, "bench template")
    return {
        "organization": organization,
        "people": people,
        "role": role,
        "calendar": calendar,
        "deliverables": deliverables,
        "template": template,
        "levels": 2 * (1 + policy.repeat),
    }


def insert_tickets(world: dict, rng: random.Random, count: int, due_sets: list, base) -> None:
    """COPY ``count`` open tickets: the due sets at their minute, the rest over three weeks."""
    from django.db import connection, transaction

    from meshline.ids import uuid7
    from owners.models import Priority, Ticket, TicketSource

    organization, template = world["organization"], world["template"]
    fields = Ticket._meta.concrete_fields
    columns = ", ".join(connection.ops.quote_name(field.column) for field in fields)
    statement = f"COPY {Ticket._meta.db_table} ({columns}) FROM STDIN"
    due_at = {}
    for k, ids in enumerate(due_sets):
        moment = base + k * SET_SPACING
        for index in ids:
            due_at[index] = moment - timedelta(seconds=rng.uniform(0, 8))
    later = base + (len(due_sets) + 60) * SET_SPACING
    deliverables, people = world["deliverables"], world["people"]
    now = base - timedelta(minutes=2)
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, count, COPY_BATCH):
            with cursor.cursor.copy(statement) as copy:
                for index in range(start, min(count, start + COPY_BATCH)):
                    opened = now - timedelta(minutes=rng.randint(5, 60 * 24 * 14))
                    deliverable = deliverables[index % len(deliverables)]
                    ticket = Ticket(
                        id=uuid7(),
                        organization=organization,
                        source=TicketSource.GATE_FAILURE,
                        source_key=f"bench:{index}",
                        title=f"Gate failed on {deliverable.deliverable_id} (#{index})",
                        deliverable=deliverable,
                        priority=rng.choice(
                            (Priority.P1, Priority.P2, Priority.P3, Priority.P3, Priority.P4)
                        ),
                        owner_role_id=template.owner_role_id,
                        assignee=people[index % len(people)],
                        calendar_id=template.calendar_id,
                        rule_snapshot=template.rule_snapshot,
                        policy_snapshot=template.policy_snapshot,
                        context={"gate": "jsonld", "check": "schema.org WebPage", "n": index},
                        opened_at=opened,
                        respond_due_at=opened + timedelta(hours=1),
                        resolve_due_at=opened + timedelta(hours=8),
                        escalation_level=rng.randrange(world["levels"] - 2),
                        next_escalation_at=due_at.get(index)
                        or later + timedelta(seconds=rng.uniform(0, 21 * 86400)),
                        updated_at=opened,
                    )
                    copy.write_row(
                        [
                            field.get_db_prep_save(getattr(ticket, field.attname), connection)
                            for field in fields
                        ]
                    )


HISTORY_SQL = (
    # What the tickets' past left behind: a ticket.opened entry and an "opened" notification
    # per ticket, and one ticket.escalated entry and notification per level already run.
    """
    INSERT INTO deliveries_event (id, organization_id, event_type, schema_version, client_id,
        deliverable_id, correlation_id, idempotency_key, content_digest, actor_role, actor_id,
        occurred_at, received_at, payload, source)
    SELECT gen_random_uuid(), t.organization_id, 'ticket.opened', 1, d.client_id, t.deliverable_id,
        '', 'meshline:ticket:' || t.id || ':opened', md5(t.id::text), 'meshline', 'meshline',
        t.opened_at, t.opened_at,
        jsonb_build_object('ticket_id', t.id::text, 'title', t.title, 'source', t.source),
        'meshline'
    FROM owners_ticket t JOIN deliveries_deliverable d ON d.id = t.deliverable_id
    WHERE t.organization_id = %(org)s AND t.source_key <> 'bench:template'
    """,
    """
    INSERT INTO deliveries_event (id, organization_id, event_type, schema_version, client_id,
        deliverable_id, correlation_id, idempotency_key, content_digest, actor_role, actor_id,
        occurred_at, received_at, payload, source)
    SELECT gen_random_uuid(), t.organization_id, 'ticket.escalated', 1, d.client_id,
        t.deliverable_id, '', 'meshline:ticket:' || t.id || ':escalated:' || l, '', 'meshline',
        'escalation-sweep', t.opened_at + (l + 1) * interval '1 hour',
        t.opened_at + (l + 1) * interval '1 hour',
        jsonb_build_object('ticket_id', t.id::text, 'title', t.title, 'level', l + 1,
            'action', CASE WHEN l %% 2 = 0 THEN 'notify_primary' ELSE 'notify_backup' END,
            'notified', jsonb_build_array(u.email)),
        'meshline'
    FROM owners_ticket t JOIN deliveries_deliverable d ON d.id = t.deliverable_id
    JOIN auth_user u ON u.id = t.assignee_id
    CROSS JOIN LATERAL generate_series(0, t.escalation_level - 1) AS l
    WHERE t.organization_id = %(org)s AND t.source_key <> 'bench:template'
    """,
    """
    INSERT INTO deliveries_eventprocessing (event_id, organization_id, status, attempts,
        enqueued_at, processed_at, last_error)
    SELECT e.id, e.organization_id, 'processed', 0, e.received_at, e.received_at, ''
    FROM deliveries_event e
    WHERE e.organization_id = %(org)s
      AND NOT EXISTS (SELECT 1 FROM deliveries_eventprocessing p WHERE p.event_id = e.id)
    """,
    """
    INSERT INTO owners_notification (organization_id, ticket_id, recipient_id, kind, address,
        subject, body, dedupe_key, status, attempts, last_error, created_at, sent_at)
    SELECT t.organization_id, t.id, t.assignee_id, 'email', u.email,
        CASE WHEN l < 0 THEN 'New ticket: ' ELSE 'Escalated (level ' || (l + 1) || '): ' END
            || t.title,
        jsonb_build_object('ticket_id', t.id::text, 'title', t.title, 'priority', t.priority),
        'ticket:' || t.id || CASE WHEN l < 0 THEN ':opened:' ELSE ':step:' || l || ':' END
            || t.assignee_id || ':email:' || u.email,
        'sent', 1, '', t.opened_at + (l + 1) * interval '1 hour',
        t.opened_at + (l + 1) * interval '1 hour'
    FROM owners_ticket t JOIN auth_user u ON u.id = t.assignee_id
    CROSS JOIN LATERAL generate_series(-1, t.escalation_level - 1) AS l
    WHERE t.organization_id = %(org)s AND t.source_key <> 'bench:template'
    """,
)


def insert_history(organization) -> None:
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        for statement in HISTORY_SQL:
            cursor.execute(statement, {"org": organization.pk})


def vacuum_analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


# --- measuring --------------------------------------------------------------------------------


def wrong(message: str) -> None:
    """The sweep did not do what it should: the numbers would not mean anything."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def counts(organization) -> tuple[int, int]:
    from deliveries.models import Event
    from owners.models import Notification

    return (
        Event.objects.filter(organization=organization, event_type="ticket.escalated").count(),
        Notification.objects.filter(organization=organization).count(),
    )


def query_shape(sql: str) -> str:
    """``SELECT owners_ticket``, ``INSERT owners_notification``, ``SAVEPOINT``: for the mix."""
    words = sql.replace('"', "").split()
    verb = words[0].upper() if words else "?"
    table = ""
    if verb == "SELECT" and "FROM" in words:
        table = words[words.index("FROM") + 1]
    elif verb == "INSERT" and len(words) > 2:
        table = words[2]
    elif verb == "UPDATE" and len(words) > 1:
        table = words[1]
    return f"{verb} {table}".strip()


def sweep(organization, now, expected: int, capture: bool = False) -> tuple[float, list]:
    """One timed pass; returns (seconds, captured [(SQL, seconds)]). Checks it escalated
    ``expected``."""
    from collections import deque

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from owners.services.escalation import escalate_due_tickets

    captured_sql: list = []
    started = time.perf_counter()
    if capture:
        connection.queries_log = deque(maxlen=10_000_000)  # the default keeps only 9,000
        with CaptureQueriesContext(connection) as captured:
            done = escalate_due_tickets(organization, now=now)
        captured_sql = [(query["sql"], float(query["time"])) for query in captured.captured_queries]
    else:
        done = escalate_due_tickets(organization, now=now)
    elapsed = time.perf_counter() - started
    if done != expected:
        wrong(f"sweep at {now.isoformat()} escalated {done} tickets, expected {expected}")
    return elapsed, captured_sql


def fan_out_query(now) -> tuple[float, int]:
    """The beat task's query: which organizations have a due ticket (all tenants)."""
    from django_scopes import scopes_disabled

    from owners.models import ACTIVE_STATUSES, Ticket

    started = time.perf_counter()
    with scopes_disabled():
        found = list(
            Ticket.objects.filter(status__in=ACTIVE_STATUSES, next_escalation_at__lte=now)
            .values_list("organization_id", flat=True)
            .distinct()
        )
    return time.perf_counter() - started, len(found)


class Case:
    def __init__(self, label: str, due: int):
        self.label, self.due = label, due
        self.times: list[float] = []
        self.queries = -1
        self.mix: Counter = Counter()
        self.mix_seconds: Counter = Counter()  # the database's time per query shape
        self.floor = not label.startswith("(c)")
        self.escalated_events = 0
        self.notifications = 0

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def run_cases(world: dict, args, base, set_plan: list) -> tuple[list, dict]:
    """Run every case; ``set_plan`` is [(case, k, timed)] in the order the sets were laid."""
    from django_scopes import scope

    organization = world["organization"]
    cases: list[Case] = []
    with scope(organization=organization):
        idle = Case("(a) nothing due", 0)
        idle.queries = len(sweep(organization, base - timedelta(minutes=1), 0, capture=True)[1])
        for _ in range(args.runs):
            idle.times.append(sweep(organization, base - timedelta(minutes=1), 0)[0])
        cases.append(idle)
        by_label: dict[str, Case] = {}
        largest, profiled = max(due for _, due, _, _ in set_plan), False
        for label, due, k, timed in set_plan:
            case = by_label.get(label)
            if case is None:
                case = by_label[label] = Case(label, due)
                cases.append(case)
            events_before, notes_before = counts(organization)
            profiler = None
            if args.profile and timed and due == largest and not profiled:
                import cProfile

                profiler, profiled = cProfile.Profile(), True
                profiler.enable()
            seconds, captured = sweep(organization, base + k * SET_SPACING, due, capture=not timed)
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(args.profile)
            events_after, notes_after = counts(organization)
            if events_after - events_before != due:
                wrong(f"{label}: {events_after - events_before} trail entries for {due} tickets")
            if timed:
                case.times.append(seconds)
            else:
                case.queries = len(captured)
                case.mix = Counter(query_shape(sql) for sql, _ in captured)
                for sql, seconds in captured:
                    case.mix_seconds[query_shape(sql)] += seconds
                case.escalated_events = events_after - events_before
                case.notifications = notes_after - notes_before
        fan_out = {"times": [], "found": 0}
        for _ in range(args.runs):
            seconds, found = fan_out_query(base - timedelta(minutes=1))
            fan_out["times"].append(seconds)
            fan_out["found"] = found
    return cases, fan_out


def print_table(args, cases: list, fan_out: dict, setup_seconds: float) -> bool:
    import django
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg_version = cursor.fetchone()[0]
    print()
    print(
        f"Escalation sweep: {args.tickets:,} open tickets in one organization; "
        f"median of {args.runs} runs"
    )
    print(
        f"  PostgreSQL {pg_version}, Django {django.get_version()}, Python "
        f"{platform.python_version()}, {os.cpu_count()} CPUs; notifications "
        f"{'sent in-process (eager, locmem email)' if args.eager else 'queued (memory:// broker)'}"
    )
    print(f"  setup (migrate, organization, COPY, VACUUM ANALYZE): {setup_seconds:.1f} s")
    print()
    header = (
        f"{'case':<22} {'due':>6} {'median s':>9} {'min s':>8} {'max s':>8} "
        f"{'ms/ticket':>10} {'queries':>8} {'q/ticket':>9} {'notif.':>7} {'floor 2 s':>10}"
    )
    print(header)
    print("-" * len(header))
    ok = True
    for case in cases:
        per_ticket = f"{case.median / case.due * 1000:.3f}" if case.due else "-"
        q_ticket = f"{case.queries / case.due:.2f}" if case.due else "-"
        passed = case.median < FLOOR_SECONDS
        if case.floor:
            ok = ok and passed
            verdict = "PASS" if passed else "FAIL"
        else:
            verdict = f"({'under' if passed else 'over'})"
        print(
            f"{case.label:<22} {case.due:>6,} {case.median:>9.4f} {min(case.times):>8.4f} "
            f"{max(case.times):>8.4f} {per_ticket:>10} {case.queries:>8,} {q_ticket:>9} "
            f"{case.notifications if case.due else 0:>7,} {verdict:>10}"
        )
    times = fan_out["times"]
    print(
        f"{'beat fan-out query':<22} {fan_out['found']:>6} {statistics.median(times):>9.4f} "
        f"{min(times):>8.4f} {max(times):>8.4f} {'-':>10} {1:>8} {'-':>9} {'-':>7} {'':>10}"
    )
    print()
    print(
        "  queries: captured on the untimed first run of each case (CaptureQueriesContext); "
        "notif.: Notification rows that run created."
    )
    print(
        "  beat fan-out: owners.escalation_sweep's query over all organizations, nothing due "
        "(the per-organization task is the sweep pass above)."
    )
    for case in cases:
        if case.due:
            mix = ", ".join(f"{shape} {n:,}" for shape, n in case.mix.most_common(12))
            print(f"  query mix {case.label}: {mix}")
            spent = ", ".join(
                f"{shape} {seconds:.2f} s" for shape, seconds in case.mix_seconds.most_common(6)
            )
            print(f"  time in the database {case.label} (untimed pass): {spent}")
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        autovacuum = cursor.fetchone()[0]
    print(
        "  statistics: VACUUM ANALYZE after the insert and the tickets' history "
        f"(autovacuum={autovacuum} on this server)."
    )
    print(
        f"  floor: one sweep pass over {args.tickets:,} open tickets < {FLOOR_SECONDS:.0f} s, "
        f"checked for (a) and (b), (c) is informational: {'met' if ok else 'NOT met'}"
    )
    return ok


def main() -> int:
    args = parse_args()
    rng = random.Random(args.seed)
    started = time.perf_counter()
    print(f"resetting {args.database_url} ...", flush=True)
    reset_database(args.database_url, args.force)
    setup_django(args.database_url, args.eager)
    from django.core.management import call_command
    from django.utils import timezone

    phase = time.perf_counter()
    call_command("migrate", interactive=False, verbosity=0)
    print(f"  migrate: {time.perf_counter() - phase:.1f} s", flush=True)
    world = build_organization()

    # Lay out the disjoint due sets: case (b) then (c), each one untimed run + --runs.
    plan = [("(b) due", args.due)]
    per_case = args.runs + 1
    if args.due_large:
        if per_case * (args.due + args.due_large) <= args.tickets:
            plan.append(("(c) due", args.due_large))
        else:
            print(
                f"  (skipping --due-large {args.due_large}: needs "
                f"{per_case * (args.due + args.due_large):,} tickets, have {args.tickets:,})"
            )
    if len(plan) * per_case * SET_SPACING >= SHORTEST_WAIT:
        sys.exit(f"--runs {args.runs}: too many due sets to fit in {SHORTEST_WAIT}")
    needed = per_case * sum(due for _, due in plan)
    if needed > args.tickets:
        sys.exit(
            f"--due {args.due} x {per_case} runs needs {needed:,} tickets; have {args.tickets:,}"
        )
    indexes = rng.sample(range(args.tickets), needed)
    due_sets, set_plan, cursor = [], [], 0
    for label, due in plan:
        for run in range(per_case):
            set_plan.append((f"{label}={due}", due, len(due_sets), run > 0))
            due_sets.append(indexes[cursor : cursor + due])
            cursor += due
    base = (timezone.now() + timedelta(minutes=5)).replace(second=0, microsecond=0)

    print(f"inserting {args.tickets:,} open tickets ...", flush=True)
    phase = time.perf_counter()
    insert_tickets(world, rng, args.tickets, due_sets, base)
    print(f"  COPY: {time.perf_counter() - phase:.1f} s; adding their history ...", flush=True)
    phase = time.perf_counter()
    insert_history(world["organization"])
    print(f"  history: {time.perf_counter() - phase:.1f} s; VACUUM ANALYZE ...", flush=True)
    phase = time.perf_counter()
    vacuum_analyze()
    print(f"  VACUUM ANALYZE: {time.perf_counter() - phase:.1f} s", flush=True)
    setup_seconds = time.perf_counter() - started
    print("sweeping ...", flush=True)
    cases, fan_out = run_cases(world, args, base, set_plan)
    ok = print_table(args, cases, fan_out, setup_seconds)
    summary = {
        case.label: {
            "due": case.due,
            "median_s": round(case.median, 4),
            "queries": case.queries,
        }
        for case in cases
    }
    print("\n" + json.dumps({"tickets": args.tickets, "cases": summary, "floor_met": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
