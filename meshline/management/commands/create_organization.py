from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from meshline.services import create_organization


class Command(BaseCommand):
    help = "Create an organization (tenant), or rename the one with this slug."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)

    def handle(self, slug, name, **options):
        try:
            organization, created = create_organization(slug, name)
        except ValidationError as exc:
            raise CommandError(f"Invalid slug {slug!r}: {'; '.join(exc.messages)}") from None
        verb = "Created" if created else "Updated"
        self.stdout.write(f"{verb} organization {organization.slug} ({organization.name})")
