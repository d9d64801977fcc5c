"""A deliverable's old flow runs cost nothing to later events.

A page republished daily gathers a run a day; processing used to read every run the
deliverable ever had, on every batch. It now reads the open run, the runs in the batch's
time span and the latest run started before it. Rows read are PostgreSQL's own counters
for this transaction (see tests/deliveries/test_history_independence.py).
"""

import pytest
from django.db import connection
from django_scopes import scope

from flows.models import FlowRun, RunState
from tests.deliveries.test_history_independence import _counters, _difference
from tests.flows.conftest import approved, intake, sitemap

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]

EARLIER_RUNS = 60


def _runs_read(org, publish, event) -> tuple[int, int]:
    """Rows and index entries of flows_flowrun read while ``event`` is processed.

    A table of a few dozen rows is cheapest to read whole, which PostgreSQL does once its
    statistics say so (in CI it did): that would read every run for either deliverable and
    say nothing. With sequential scans off, each read takes the index path the query
    offers, and what that path reads is what a big table costs.
    """
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE flows_flowrun")
        cursor.execute("SET LOCAL enable_seqscan = off")
    before = _counters()
    publish(org, event)
    read = _difference(_counters(), before).get("flows_flowrun", (0, 0))
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = on")
    return read


def _completed_runs(ref: str, count: int) -> list[dict]:
    events = []
    for n in range(count):
        events += [intake(ref, minutes=10 * n), sitemap(ref, minutes=10 * n + 5)]
    return events


def test_a_late_milestone_reads_as_few_runs_after_sixty_earlier_runs(
    org_a, client_acme, make_flow, publish
):
    make_flow()
    publish(org_a, *_completed_runs("LP-NEW", 1), *_completed_runs("LP-OLD", EARLIER_RUNS))
    with scope(organization=org_a):
        runs = FlowRun.objects.filter(organization=org_a, state=RunState.COMPLETED)
        assert runs.filter(deliverable__deliverable_id="LP-OLD").count() == EARLIER_RUNS
    publish(org_a, approved("LP-WARM", minutes=5))  # caches (event types) warmed

    new = _runs_read(org_a, publish, approved("LP-NEW", minutes=10_000))
    old = _runs_read(org_a, publish, approved("LP-OLD", minutes=10_000))

    assert old[0] <= new[0] and old[1] <= new[1], (old, new)
    # The late milestone still lands on the latest run started before it, not an older one.
    with scope(organization=org_a):
        latest, *older = FlowRun.objects.filter(
            organization=org_a, deliverable__deliverable_id="LP-OLD"
        ).order_by("-started_at")
        assert "asset.approved" in latest.reached
        assert not any("asset.approved" in run.reached for run in older)
