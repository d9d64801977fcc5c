"""meshline.db.reading_to_the_end."""

import pytest
from django.db import connection, transaction

from meshline.db import reading_to_the_end

pytestmark = pytest.mark.django_db


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
