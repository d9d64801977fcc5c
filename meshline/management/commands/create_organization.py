from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from meshline.models import validate_timezone
from meshline.services import create_organization


class Command(BaseCommand):
    help = "Create an organization (tenant), or rename the one with this slug."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument(
            "--timezone", help="IANA time zone of the portal and the dashboard's days (UTC)"
        )

    def handle(self, slug, name, timezone=None, **options):
        if timezone is not None:
            try:
                validate_timezone(timezone)
            except ValidationError as exc:
                raise CommandError(f"Invalid --timezone: {'; '.join(exc.messages)}") from None
        try:
            organization, created = create_organization(slug, name)
        except ValidationError as exc:
            raise CommandError(f"Invalid slug {slug!r}: {'; '.join(exc.messages)}") from None
        if timezone is not None and organization.timezone != timezone:
            organization.timezone = timezone
            organization.save(update_fields=["timezone"])
        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} organization {organization.slug} ({organization.name})")
