"""Who is on duty (from rota rows), and handoffs recorded in the trail once, at local time."""

from datetime import UTC, date, datetime, time, timedelta

import pytest
from django.utils import timezone
from django_scopes import scope, scopes_disabled

from deliveries.models import Event, EventSource
from owners import tasks
from owners.models import Notification, Rota, RotaLayer, RotaOverride
from owners.services import rotas
from owners.services.schedules import who_is_on_duty
from tests.owners.factories import make_role

pytestmark = pytest.mark.django_db


@pytest.fixture
def role(in_a, member, owner):
    """Weekly rota, Mondays 09:00 Berlin from 2026-01-05: member, owner, member, ..."""
    return make_role(in_a, people=[member, owner])


def handoff_events(organization) -> list[Event]:
    return list(
        Event.objects.filter(organization=organization, event_type="rota.handoff").order_by(
            "occurred_at"
        )
    )


def test_on_duty_follows_the_weekly_rotation(in_a, role, member, owner):
    monday = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 10:00 Berlin, week 46

    duty = who_is_on_duty(role, monday)
    assert (duty.primary, duty.backup, duty.layer) == (member, owner, "weekly")
    assert duty.until == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # next Monday 09:00 Berlin

    assert who_is_on_duty(role, datetime(2026, 11, 30, 7, 59, tzinfo=UTC)).primary == member
    next_week = who_is_on_duty(role, datetime(2026, 11, 30, 8, 0, tzinfo=UTC))
    assert (next_week.primary, next_week.backup) == (owner, member)
    assert who_is_on_duty(role, datetime(2026, 12, 7, 8, 0, tzinfo=UTC)).primary == member


def test_on_duty_rotates_through_three_people(in_a, member, owner, viewer):
    role = make_role(in_a, people=[member, owner, viewer])
    first = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)

    people = [who_is_on_duty(role, first + timedelta(weeks=k)).primary for k in range(4)]

    assert people == [member, owner, viewer, member]


def test_override_wins_over_the_rotation(in_a, role, member, viewer):
    RotaOverride.objects.create(
        organization=in_a,
        rota=role.rota,
        person=viewer,
        start=datetime(2026, 11, 24, 12, 0, tzinfo=UTC),
        end=datetime(2026, 11, 24, 18, 0, tzinfo=UTC),
        reason="Covering the afternoon",
    )

    during = who_is_on_duty(role, datetime(2026, 11, 24, 13, 0, tzinfo=UTC))
    assert (during.primary, during.backup) == (viewer, member)
    assert during.until == datetime(2026, 11, 24, 18, 0, tzinfo=UTC)
    assert who_is_on_duty(role, datetime(2026, 11, 24, 18, 0, tzinfo=UTC)).primary == member
    assert who_is_on_duty(role, datetime(2026, 11, 24, 11, 59, tzinfo=UTC)).primary == member


def test_higher_priority_layer_wins(in_a, role, viewer):
    RotaLayer.objects.create(
        organization=in_a,
        rota=role.rota,
        name="weekend",
        priority=5,
        frequency="daily",
        handoff_time=time(0),
        start_date=date(2026, 1, 3),
        people=[viewer.pk],
        windows=[{"weekdays": [5, 6], "start": "00:00", "end": "00:00"}],
    )

    saturday = who_is_on_duty(role, datetime(2026, 11, 28, 12, 0, tzinfo=UTC))
    assert (saturday.primary, saturday.layer) == (viewer, "weekend")
    assert who_is_on_duty(role, datetime(2026, 11, 27, 12, 0, tzinfo=UTC)).layer == "weekly"


def test_role_without_a_rota_has_nobody_on_duty(in_a):
    duty = who_is_on_duty(make_role(in_a, "nobody", "Nobody"), timezone.now())

    assert (duty.primary, duty.backup, duty.until) == (None, None, None)


def test_handoff_is_recorded_once_and_the_incoming_person_notified(in_a, role, member, owner):
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)

    assert rotas.record_handoffs(role.rota, now=now) == 1

    [event] = handoff_events(in_a)
    assert event.source == EventSource.MESHLINE
    assert event.occurred_at == datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    assert event.payload == {
        "role": role.name,
        "layer": "weekly",
        "from": member.email,
        "to": owner.email,
    }
    [notification] = Notification.objects.all()
    assert notification.recipient == owner
    assert notification.subject == f"You are now on duty as {role.name}"
    role.rota.refresh_from_db()
    assert role.rota.handoffs_recorded_until == now

    assert rotas.record_handoffs(role.rota, now=now) == 0
    assert rotas.record_handoffs(role.rota, now=now + timedelta(hours=1)) == 0
    assert len(handoff_events(in_a)) == 1
    assert Notification.objects.count() == 1


def test_a_rerun_over_the_same_window_appends_nothing(in_a, role):
    """Even if the bookmark is reset, the trail and notification keys dedupe."""
    now = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    rotas.record_handoffs(role.rota, now=now)
    Rota.objects.filter(pk=role.rota.pk).update(handoffs_recorded_until=None)
    role.rota.refresh_from_db()

    rotas.record_handoffs(role.rota, now=now)

    assert len(handoff_events(in_a)) == 1
    assert Notification.objects.count() == 1


@pytest.mark.parametrize(
    ("handoff", "season"),
    [
        (datetime(2026, 1, 12, 8, 0, tzinfo=UTC), "winter, UTC+1"),
        (datetime(2026, 6, 1, 7, 0, tzinfo=UTC), "summer, UTC+2"),
    ],
)
def test_berlin_0900_handoff_is_at_local_nine_in_both_seasons(in_a, role, handoff, season):
    assert rotas.record_handoffs(role.rota, now=handoff + timedelta(hours=3)) == 1

    [event] = handoff_events(in_a)
    assert event.occurred_at == handoff, season


def test_handoffs_across_the_spring_transition_stay_at_local_nine(in_a, role):
    Rota.objects.filter(pk=role.rota.pk).update(
        handoffs_recorded_until=datetime(2026, 3, 20, tzinfo=UTC)
    )
    role.rota.refresh_from_db()

    assert rotas.record_handoffs(role.rota, now=datetime(2026, 4, 10, tzinfo=UTC)) == 3

    assert [e.occurred_at for e in handoff_events(in_a)] == [
        datetime(2026, 3, 23, 8, 0, tzinfo=UTC),  # before 2026-03-29: CET
        datetime(2026, 3, 30, 7, 0, tzinfo=UTC),  # after: CEST
        datetime(2026, 4, 6, 7, 0, tzinfo=UTC),
    ]


def test_handoffs_across_the_autumn_transition_stay_at_local_nine(in_a, role):
    Rota.objects.filter(pk=role.rota.pk).update(
        handoffs_recorded_until=datetime(2026, 10, 15, tzinfo=UTC)
    )
    role.rota.refresh_from_db()

    assert rotas.record_handoffs(role.rota, now=datetime(2026, 11, 3, tzinfo=UTC)) == 3

    assert [e.occurred_at for e in handoff_events(in_a)] == [
        datetime(2026, 10, 19, 7, 0, tzinfo=UTC),  # before 2026-10-25: CEST
        datetime(2026, 10, 26, 8, 0, tzinfo=UTC),  # after: CET
        datetime(2026, 11, 2, 8, 0, tzinfo=UTC),
    ]


def test_handoff_sweep_records_each_organizations_rotas(
    org_a, org_b, member, owner, outsider, viewer
):
    for organization, people in ((org_a, [member, owner]), (org_b, [outsider, viewer])):
        with scope(organization=organization):
            role = make_role(organization, people=people)
            role.rota.layers.update(frequency="daily")

    assert tasks.handoff_sweep() == 2

    with scopes_disabled():
        by_org = {
            organization.pk: Event.objects.filter(
                organization=organization, event_type="rota.handoff"
            ).count()
            for organization in (org_a, org_b)
        }
        assert all(count >= 1 for count in by_org.values()), by_org
        assert all(r.handoffs_recorded_until is not None for r in Rota.objects.all())
    tasks.handoff_sweep()
    with scopes_disabled():
        assert Event.objects.filter(event_type="rota.handoff").count() == sum(by_org.values())
