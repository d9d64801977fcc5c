"""meshline.bulk (rows written by COPY) and meshline.db.reading_to_the_end."""

from datetime import UTC, datetime

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django_scopes import scope

from deliveries.models import Event, EventSource
from meshline import bulk
from meshline.db import reading_to_the_end
from owners.models import ChannelKind, Notification

pytestmark = pytest.mark.django_db
AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def notification(org, key, **fields):
    return Notification(
        organization=org,
        kind=ChannelKind.EMAIL,
        address=f"{key}@a.example",
        subject=f"About {key}",
        body={"key": key, "nested": {"n": [1, 2]}, "text": "ünïcode\ttab\nline"},
        dedupe_key=key,
        **fields,
    )


def test_insert_gives_keys_and_stores_every_field_as_the_orm_reads_it(org_a):
    with scope(organization=org_a):
        rows = bulk.insert([notification(org_a, "n-1"), notification(org_a, "n-2")])
        assert all(row.pk for row in rows) and rows[0].pk != rows[1].pk
        assert not rows[0]._state.adding
        stored = {n.dedupe_key: n for n in Notification.objects.filter(organization=org_a)}
    assert set(stored) == {"n-1", "n-2"}
    assert stored["n-1"].pk == rows[0].pk
    assert stored["n-1"].body == {
        "key": "n-1",
        "nested": {"n": [1, 2]},
        "text": "ünïcode\ttab\nline",
    }
    assert stored["n-2"].kind == ChannelKind.EMAIL and stored["n-2"].attempts == 0
    assert stored["n-2"].created_at is not None  # auto_now_add is stamped


def test_insert_of_a_taken_unique_key_raises_and_stores_nothing(org_a):
    with scope(organization=org_a):
        bulk.insert([notification(org_a, "taken")])
        with pytest.raises(IntegrityError), transaction.atomic():
            bulk.insert([notification(org_a, "fresh"), notification(org_a, "taken")])
        keys = set(
            Notification.objects.filter(organization=org_a).values_list("dedupe_key", flat=True)
        )
    assert keys == {"taken"}


def meshline_event(org, key, payload):
    return Event(
        organization=org,
        event_type="ticket.escalated",
        idempotency_key=key,
        content_digest="d" * 64,
        actor_role="meshline",
        actor_id="test",
        occurred_at=AT,
        received_at=AT,
        payload=payload,
        source=EventSource.MESHLINE,
    )


def test_insert_keeps_a_uuid_key_and_json_payload(org_a):
    event = meshline_event(org_a, "meshline:bulk:1", {"level": 2, "why": None})
    given = event.pk
    with scope(organization=org_a):
        bulk.insert([event])
        stored = Event.objects.get(organization=org_a, idempotency_key="meshline:bulk:1")
    assert stored.pk == given
    assert stored.payload == {"level": 2, "why": None}
    assert stored.occurred_at == AT


def cursor_fraction():
    with connection.cursor() as cursor:
        cursor.execute("SHOW cursor_tuple_fraction")
        return cursor.fetchone()[0]


@pytest.mark.skipif("connection.vendor != 'postgresql'")
def test_reading_to_the_end_plans_for_every_row_and_puts_the_setting_back():
    before = cursor_fraction()
    with transaction.atomic():
        with reading_to_the_end():
            assert float(cursor_fraction()) == 1.0
        assert cursor_fraction() == before
        with pytest.raises(ZeroDivisionError), reading_to_the_end():
            assert float(cursor_fraction()) == 1.0
            1 / 0  # noqa: B018
        assert cursor_fraction() == before  # undone with the block's savepoint


def test_a_value_left_to_the_database_default_goes_through_bulk_create(org_a):
    """COPY cannot write ``db_default``'s expression: such rows take the ORM's INSERT."""
    from django.db.models import Value
    from django.db.models.expressions import DatabaseDefault

    from deliveries.models import EventProcessing

    event = meshline_event(org_a, "meshline:bulk:2", {})
    field = EventProcessing._meta.get_field("replay_count")
    with scope(organization=org_a), CaptureQueriesContext(connection) as captured:
        bulk.insert([event])
        bulk.insert(
            [
                EventProcessing(
                    event=event,
                    organization=org_a,
                    enqueued_at=AT,
                    replay_count=DatabaseDefault(Value(0), output_field=field),
                )
            ]
        )
        stored = EventProcessing.objects.get(event=event)
    assert stored.replay_count == 0
    writes = [
        q["sql"].split()[0]
        for q in captured.captured_queries
        if "INSERT" in q["sql"] or q["sql"].startswith("COPY")
    ]
    assert writes == ["COPY", "INSERT"]
