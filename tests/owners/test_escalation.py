"""Escalation: policies run step by step on time, exactly once per step, per organization."""

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from deliveries.models import Event
from owners import tasks
from owners.models import (
    EscalationPolicy,
    EscalationStep,
    Notification,
    StepAction,
    Ticket,
    TicketStatus,
    WaitKind,
    WebhookEndpoint,
)
from owners.services import escalation, tickets
from tests.owners.conftest import MONDAY_10_BERLIN
from tests.owners.factories import make_calendar, make_policy, make_role, make_rule

pytestmark = pytest.mark.django_db
T0 = MONDAY_10_BERLIN


def escalations(organization, ticket=None) -> list[dict]:
    events = Event.objects.filter(organization=organization, event_type="ticket.escalated")
    if ticket is not None:
        events = events.filter(payload__ticket_id=str(ticket.pk))
    return [e.payload for e in events.order_by("occurred_at", "pk")]


def escalated_to(ticket) -> set:
    """Who got an escalation message (not the 'new ticket' one) for the ticket."""
    return {
        n.recipient
        for n in Notification.objects.filter(ticket=ticket, dedupe_key__contains=":step:")
    }


@pytest.fixture
def seo(in_a, member, owner):
    """SEO role; week of 2026-11-23: member on duty, owner backup."""
    return make_role(in_a, people=[member, owner])


def test_steps_run_in_order_with_wall_and_business_waits(in_a, seo, member, owner, open_ticket):
    make_calendar(in_a)  # Berlin, Mon-Fri 09:00-17:30
    policy = make_policy(
        in_a,
        steps=[
            (30, WaitKind.WALL, StepAction.NOTIFY_PRIMARY),
            (60, WaitKind.BUSINESS, StepAction.NOTIFY_BACKUP),
            (15, WaitKind.WALL, StepAction.NOTIFY_PRIMARY),
        ],
    )
    make_rule(in_a, seo, policy, event_type="page.published")
    friday_1630 = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)  # 16:30 Berlin
    ticket = open_ticket(at=friday_1630)
    assert ticket.next_escalation_at == friday_1630 + timedelta(minutes=30)

    first = ticket.next_escalation_at
    assert escalation.escalate_due_tickets(in_a, now=first - timedelta(seconds=1)) == 0
    assert escalation.escalate_due_tickets(in_a, now=first) == 1
    ticket.refresh_from_db()
    # 60 business minutes from Friday 17:00: 30 on Friday, 30 on Monday from 09:00 Berlin.
    second = datetime(2026, 11, 30, 8, 30, tzinfo=UTC)
    assert (ticket.escalation_level, ticket.next_escalation_at) == (1, second)

    assert escalation.escalate_due_tickets(in_a, now=second) == 1
    ticket.refresh_from_db()
    third = second + timedelta(minutes=15)
    assert (ticket.escalation_level, ticket.next_escalation_at) == (2, third)

    assert escalation.escalate_due_tickets(in_a, now=third) == 1
    ticket.refresh_from_db()
    assert (ticket.escalation_level, ticket.next_escalation_at) == (3, None)
    assert escalation.escalate_due_tickets(in_a, now=third + timedelta(days=30)) == 0

    trail = escalations(in_a, ticket)
    assert [(p["level"], p["action"]) for p in trail] == [
        (1, "notify_primary"),
        (2, "notify_backup"),
        (3, "notify_primary"),
    ]
    assert [p["was_due_at"] for p in trail] == [t.isoformat() for t in (first, second, third)]
    # Friday: member's week. Monday 09:30 Berlin: owner's week, so member is the backup.
    assert [p["notified"] for p in trail] == [[member.email], [member.email], [owner.email]]


def test_policy_repeats_then_is_exhausted(in_a, seo, open_ticket):
    make_rule(
        in_a,
        seo,
        make_policy(in_a, steps=[(10, WaitKind.WALL, StepAction.NOTIFY_PRIMARY)], repeat=2),
        event_type="page.published",
    )
    ticket = open_ticket()

    now = T0
    for level in (1, 2, 3):
        now += timedelta(minutes=10)
        assert escalation.escalate_due_tickets(in_a, now=now) == 1
        ticket.refresh_from_db()
        assert ticket.escalation_level == level
    assert ticket.next_escalation_at is None
    assert [p["level"] for p in escalations(in_a, ticket)] == [1, 2, 3]


def test_exhausted_policy_clears_a_leftover_due_time(in_a, seo, open_ticket):
    make_rule(in_a, seo, make_policy(in_a), event_type="page.published")
    ticket = open_ticket()
    Ticket.objects.filter(pk=ticket.pk).update(escalation_level=1)  # already ran its one step

    assert escalation.escalate_due_tickets(in_a, now=T0 + timedelta(hours=1)) == 0

    ticket.refresh_from_db()
    assert ticket.next_escalation_at is None and ticket.escalation_level == 1
    assert escalations(in_a) == []


def test_rule_without_policy_never_escalates(in_a, seo, open_ticket):
    make_rule(in_a, seo, None, event_type="page.published")
    ticket = open_ticket()

    assert ticket.next_escalation_at is None
    assert escalation.escalate_due_tickets(in_a, now=T0 + timedelta(days=7)) == 0


@pytest.fixture
def creative(in_a, viewer):
    return make_role(in_a, "creative-ops", "Creative Ops Lead", people=[viewer])


@pytest.fixture
def hook(in_a):
    return WebhookEndpoint.objects.create(
        organization=in_a, name="pager", url="http://127.0.0.1:9/hook", secret="s3cret"
    )


def one_step_policy(organization, action, **targets) -> EscalationPolicy:
    policy = EscalationPolicy.objects.create(organization=organization, name=action)
    step = EscalationStep.objects.create(
        organization=organization,
        policy=policy,
        wait_minutes=30,
        wait_kind=WaitKind.WALL,
        action=action,
        target_role=targets.get("target_role"),
        webhook=targets.get("webhook"),
    )
    step.people.set(targets.get("people", []))
    return policy


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (StepAction.NOTIFY_PRIMARY, {"member"}),
        (StepAction.NOTIFY_BACKUP, {"owner"}),
        (StepAction.NOTIFY_ROLE, {"viewer"}),
        (StepAction.NOTIFY_PEOPLE, {"viewer", "owner"}),
    ],
)
def test_each_action_notifies_the_right_people(
    in_a, seo, creative, member, owner, viewer, open_ticket, action, expected
):
    cast = {"member": member, "owner": owner, "viewer": viewer}
    policy = one_step_policy(in_a, action, target_role=creative, people=[viewer, owner])
    make_rule(in_a, seo, policy, event_type="page.published")
    ticket = open_ticket()

    assert escalation.escalate_due_tickets(in_a, now=T0 + timedelta(minutes=30)) == 1

    people = {cast[name] for name in expected}
    assert escalated_to(ticket) == people
    [payload] = escalations(in_a, ticket)
    assert sorted(payload["notified"]) == sorted(p.email for p in people)


def test_notify_backup_pages_the_rules_backup_role_on_duty(
    in_a, seo, creative, member, owner, viewer, open_ticket
):
    """The rule names a backup role: its person on duty is paged, not the rota's backup."""
    policy = one_step_policy(in_a, StepAction.NOTIFY_BACKUP)
    make_rule(in_a, seo, policy, event_type="page.published", backup_role=creative)
    ticket = open_ticket()

    assert escalation.escalate_due_tickets(in_a, now=T0 + timedelta(minutes=30)) == 1

    assert escalated_to(ticket) == {viewer}
    [payload] = escalations(in_a, ticket)
    assert payload["notified"] == [viewer.email]


def test_notify_backup_falls_back_to_the_rota_backup_when_the_backup_role_is_gone(
    in_a, seo, creative, member, owner, open_ticket
):
    policy = one_step_policy(in_a, StepAction.NOTIFY_BACKUP)
    make_rule(in_a, seo, policy, event_type="page.published", backup_role=creative)
    ticket = open_ticket()  # its rule snapshot names the creative role
    Ticket.objects.filter(pk=ticket.pk).update(
        rule_snapshot={**ticket.rule_snapshot, "backup_role": creative.pk + 1000}
    )

    assert escalation.escalate_due_tickets(in_a, now=T0 + timedelta(minutes=30)) == 1

    assert escalated_to(ticket) == {owner}


def test_webhook_action_queues_a_signed_webhook_once(in_a, seo, hook, open_ticket):
    make_rule(
        in_a,
        seo,
        one_step_policy(in_a, StepAction.WEBHOOK, webhook=hook),
        event_type="page.published",
    )
    ticket = open_ticket()

    assert escalation.escalate_due_tickets(in_a, now=T0 + timedelta(minutes=30)) == 1

    [payload] = escalations(in_a, ticket)
    assert payload["notified"] == ["webhook:pager"]
    [notification] = Notification.objects.filter(ticket=ticket, kind="webhook")
    # The secret is read from the endpoint at send time, never copied into the row.
    assert (notification.address, notification.endpoint) == (hook.url, hook)
    assert notification.signing_secret() == "s3cret"
    assert "s3cret" not in str(Notification.objects.filter(pk=notification.pk).values().get())
    assert notification.subject.startswith("Escalation level 1:")


def test_inactive_webhook_is_skipped_but_the_step_still_counts(in_a, seo, hook, open_ticket):
    hook.is_active = False
    hook.save()
    make_rule(
        in_a,
        seo,
        one_step_policy(in_a, StepAction.WEBHOOK, webhook=hook),
        event_type="page.published",
    )
    ticket = open_ticket()

    assert escalation.escalate_due_tickets(in_a, now=T0 + timedelta(minutes=30)) == 1

    assert escalations(in_a, ticket)[0]["notified"] == []
    assert not Notification.objects.filter(kind="webhook").exists()


def test_acknowledged_ticket_pauses_until_the_resolve_deadline(in_a, seo, member, open_ticket):
    make_rule(in_a, seo, make_policy(in_a), event_type="page.published", resolve_minutes=240)
    ticket = open_ticket()
    tickets.acknowledge(ticket, tickets.Actor.for_user(member))
    ticket.refresh_from_db()
    assert ticket.next_escalation_at == ticket.resolve_due_at == T0 + timedelta(minutes=240)

    assert escalation.escalate_due_tickets(in_a, now=T0 + timedelta(minutes=30)) == 0
    assert escalation.escalate_due_tickets(in_a, now=T0 + timedelta(minutes=239)) == 0
    assert escalation.escalate_due_tickets(in_a, now=T0 + timedelta(minutes=240)) == 1

    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.ACKNOWLEDGED and ticket.escalation_level == 1


def test_closed_tickets_never_escalate(in_a, seo, member, open_ticket):
    make_rule(in_a, seo, make_policy(in_a), event_type="page.published")
    resolved = open_ticket("incident:1")
    cancelled = open_ticket("incident:2")
    tickets.resolve(resolved, tickets.MESHLINE, note="done")
    tickets.cancel(cancelled, tickets.MESHLINE, "duplicate")

    assert escalation.escalate_due_tickets(in_a, now=T0 + timedelta(days=1)) == 0


def test_a_second_sweep_at_the_same_instant_does_nothing(in_a, seo, open_ticket):
    make_rule(in_a, seo, make_policy(in_a), event_type="page.published")
    ticket = open_ticket()
    due = ticket.next_escalation_at

    assert escalation.escalate_due_tickets(in_a, now=due) == 1
    assert escalation.escalate_due_tickets(in_a, now=due) == 0

    assert len(escalations(in_a, ticket)) == 1
    assert len(escalated_to(ticket)) == 1
    assert Notification.objects.filter(ticket=ticket, dedupe_key__contains=":step:").count() == 1


def test_a_sweep_holding_stale_due_ids_does_not_repeat_a_step(in_a, seo, open_ticket):
    """Two overlapping sweeps both read the due ids; the later claim must see the step done."""
    steps = [(30, WaitKind.WALL, "notify_primary"), (30, WaitKind.WALL, "notify_backup")]
    make_rule(in_a, seo, make_policy(in_a, steps=steps), event_type="page.published")
    ticket = open_ticket()
    due = ticket.next_escalation_at
    stale_ids = escalation.due_ticket_ids(in_a, due, limit=100)

    assert escalation.escalate_due_tickets(in_a, now=due) == 1
    assert escalation._escalate_chunk(in_a, stale_ids, due) == 0

    assert len(escalations(in_a, ticket)) == 1
    ticket.refresh_from_db()
    assert ticket.escalation_level == 1


def test_escalation_bumps_updated_at(in_a, seo, open_ticket):
    make_rule(in_a, seo, make_policy(in_a), event_type="page.published")
    ticket = open_ticket()
    before = Ticket.objects.get(pk=ticket.pk).updated_at

    escalation.escalate_due_tickets(in_a, now=ticket.next_escalation_at)

    assert Ticket.objects.get(pk=ticket.pk).updated_at > before


def test_a_ticket_that_fell_due_during_an_outage_escalates_on_the_next_sweep(
    in_a, seo, open_ticket
):
    make_rule(
        in_a,
        seo,
        make_policy(
            in_a,
            steps=[(30, WaitKind.WALL, "notify_primary"), (20, WaitKind.WALL, "notify_primary")],
        ),
        event_type="page.published",
    )
    ticket = open_ticket()
    was_due = ticket.next_escalation_at
    back_up = was_due + timedelta(hours=5)

    assert escalation.escalate_due_tickets(in_a, now=back_up) == 1

    ticket.refresh_from_db()
    assert ticket.escalation_level == 1
    # The next step waits from now, not from the missed due time: no burst of stale steps.
    assert ticket.next_escalation_at == back_up + timedelta(minutes=20)
    assert escalation.escalate_due_tickets(in_a, now=back_up) == 0
    [payload] = escalations(in_a, ticket)
    assert payload["was_due_at"] == was_due.isoformat()


def test_escalating_one_organization_leaves_the_other_alone(in_a, seo, org_b, open_ticket):
    make_rule(in_a, seo, make_policy(in_a), event_type="page.published")
    a_ticket = open_ticket()
    with scope(organization=org_b):
        make_rule(org_b, make_role(org_b), make_policy(org_b), event_type="page.published")
        b_ticket = open_ticket(organization=org_b)

    assert escalation.escalate_due_tickets(in_a, now=T0 + timedelta(days=1)) == 1

    with scopes_disabled():
        a_ticket.refresh_from_db()
        b_ticket.refresh_from_db()
        assert (a_ticket.escalation_level, b_ticket.escalation_level) == (1, 0)
        assert b_ticket.next_escalation_at == T0 + timedelta(minutes=30)
        assert not Event.objects.filter(organization=org_b, event_type="ticket.escalated")


def test_sweep_task_fans_out_one_task_per_organization_with_due_tickets(
    org_a, org_b, member, outsider, open_ticket, monkeypatch
):
    two_hours_ago = timezone.now() - timedelta(hours=2)
    with scope(organization=org_a):
        make_rule(org_a, make_role(org_a, people=[member]), make_policy(org_a), event_type="")
        a_ticket = open_ticket(at=two_hours_ago)
        a_second = open_ticket("incident:2", at=two_hours_ago - timedelta(minutes=5))
        not_due = open_ticket("incident:later", at=timezone.now())
    with scope(organization=org_b):
        make_rule(org_b, make_role(org_b, people=[outsider]), make_policy(org_b), event_type="")
        b_ticket = open_ticket(organization=org_b, at=two_hours_ago)
    enqueued = []
    apply_async = tasks.escalate_tickets.apply_async
    monkeypatch.setattr(
        tasks.escalate_tickets,
        "apply_async",
        lambda *args, **kwargs: enqueued.append(kwargs["kwargs"]) or apply_async(*args, **kwargs),
    )

    assert tasks.escalation_sweep() == 2  # eager: each organization's task runs here

    # One task per organization, however many of its tickets are due.
    assert sorted(k["organization_id"] for k in enqueued) == sorted([org_a.pk, org_b.pk])
    with scopes_disabled():
        levels = {
            t.pk: Ticket.objects.get(pk=t.pk).escalation_level
            for t in (a_ticket, a_second, not_due, b_ticket)
        }
    assert levels == {a_ticket.pk: 1, a_second.pk: 1, not_due.pk: 0, b_ticket.pk: 1}
    assert tasks.escalation_sweep() == 0


def test_tenant_task_refuses_to_run_without_an_organization():
    with pytest.raises(TypeError, match="organization_id"):
        tasks.escalate_tickets()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_sweeps_never_double_escalate(
    org_a, member, owner, open_ticket, monkeypatch
):
    count = 40
    with scope(organization=org_a):
        make_rule(
            org_a, make_role(org_a, people=[member, owner]), make_policy(org_a), event_type=""
        )
        for n in range(count):
            open_ticket(f"incident:{n}")
    due = T0 + timedelta(minutes=30)

    # Widen the window in which both sweeps hold their claims.
    act = escalation._act
    monkeypatch.setattr(escalation, "_act", lambda *args: (time.sleep(0.005), act(*args))[1])
    # Both sweeps read the same due ids before either claims them.
    barrier = threading.Barrier(2)
    read_ids = escalation.due_ticket_ids
    monkeypatch.setattr(
        escalation,
        "due_ticket_ids",
        lambda *args: (read_ids(*args), barrier.wait(timeout=10))[0],
    )
    results, errors = [], []

    def sweep():
        try:
            with scope(organization=org_a):
                results.append(escalation.escalate_due_tickets(org_a, now=due))
        except Exception as exc:  # surfaced below; a thread cannot fail the test itself
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(results)[-1] > 0 and sum(results) == count
    with scope(organization=org_a):
        assert Event.objects.filter(event_type="ticket.escalated").count() == count
        assert set(Ticket.objects.values_list("escalation_level", flat=True)) == {1}
        assert Notification.objects.filter(dedupe_key__contains=":step:").count() == count


def test_people_who_left_the_organization_are_neither_on_duty_nor_notified(
    in_a, seo, member, owner, viewer, open_ticket
):
    from meshline.models import Membership

    policy = one_step_policy(in_a, StepAction.NOTIFY_PEOPLE, people=[viewer, owner])
    make_rule(in_a, seo, policy, event_type="page.published")
    Membership.objects.filter(user__in=[member, viewer], organization=in_a).delete()

    ticket = open_ticket()
    assert ticket.assignee is None  # member holds the rota, but no longer works here
    assert escalation.escalate_due_tickets(in_a, now=T0 + timedelta(minutes=30)) == 1
    assert escalated_to(ticket) == {owner}
