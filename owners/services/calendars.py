"""Business-calendar maintenance: public holidays seeded from the ``holidays`` package."""

from collections.abc import Iterable

import holidays
from django.db import transaction

from owners.models import BusinessCalendar, Holiday

MAX_SEED_YEARS = 10


class HolidaySeedError(ValueError):
    """The country, region or years cannot be seeded; the message is for the admin user."""


def public_holidays(country: str, subdivision: str, years: Iterable[int]) -> dict:
    """Date → name of the public holidays of a country (and region) in ``years``."""
    years = sorted(set(years))
    if not years or len(years) > MAX_SEED_YEARS:
        raise HolidaySeedError(f"Give between 1 and {MAX_SEED_YEARS} years.")
    country = country.strip().upper()
    subdivision = subdivision.strip().upper() or None
    supported = holidays.list_supported_countries()
    if country not in supported:
        raise HolidaySeedError(f"No holiday calendar for country {country!r} (ISO 3166 code).")
    if subdivision is not None and subdivision not in supported[country]:
        raise HolidaySeedError(
            f"{country} has no region {subdivision!r}; known: {', '.join(supported[country])}."
        )
    found = holidays.country_holidays(country, subdiv=subdivision, years=years)
    return dict(sorted(found.items()))


def seed_holidays(
    calendar: BusinessCalendar, country: str, subdivision: str, years: Iterable[int]
) -> int:
    """Add the public holidays the calendar lacks; returns how many were added.

    Idempotent: a date the calendar already has (seeded or entered by hand) is left as it is,
    and concurrent seeding is settled by the unique (organization, calendar, date) constraint.
    """
    wanted = public_holidays(country, subdivision, years)
    with transaction.atomic():
        existing = set(calendar.holidays.filter(date__in=wanted).values_list("date", flat=True))
        missing = [
            Holiday(
                organization_id=calendar.organization_id,
                calendar=calendar,
                date=day,
                name=name[: Holiday._meta.get_field("name").max_length],
            )
            for day, name in wanted.items()
            if day not in existing
        ]
        Holiday.objects.bulk_create(missing, ignore_conflicts=True)
    return len(missing)
