"""The escalation sweep's cost in queries does not grow with the number of due tickets.

bench/escalation.py measures the sweep over 100,000 open tickets; this guards the property
that keeps it fast: a chunk of tickets takes a fixed number of queries, however many
tickets, notifications and channels it holds.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from owners.models import NotificationChannel, StepAction, WaitKind
from owners.services import escalation
from tests.owners.conftest import MONDAY_10_BERLIN
from tests.owners.factories import make_calendar, make_policy, make_role, make_rule

pytestmark = pytest.mark.django_db
T0 = MONDAY_10_BERLIN


def test_queries_per_sweep_do_not_grow_with_due_tickets(in_a, member, owner, open_ticket):
    make_calendar(in_a)
    NotificationChannel.objects.create(organization=in_a, user=member, address="pager@a.test")
    role = make_role(in_a, people=[member, owner])
    steps = [
        (30, WaitKind.WALL, StepAction.NOTIFY_PRIMARY),
        (120, WaitKind.BUSINESS, StepAction.NOTIFY_BACKUP),
    ]
    make_rule(in_a, role, make_policy(in_a, steps=steps), event_type="page.published")

    def sweep(now, expected):
        with CaptureQueriesContext(connection) as captured:
            assert escalation.escalate_due_tickets(in_a, now=now) == expected
        return len(captured.captured_queries)

    for n in range(2):
        open_ticket(f"few:{n}", at=T0)
    few = sweep(T0 + timedelta(minutes=30), 2)
    later = T0 + timedelta(minutes=45)  # the first two are next due at T0 + 150 min
    for n in range(25):
        open_ticket(f"many:{n}", at=later)
    many = sweep(later + timedelta(minutes=30), 25)

    assert many == few
