from django.core.management.base import BaseCommand, CommandError
from django_scopes import scope

from meshline.models import ALL_API_SCOPES, ApiKey, Organization


class Command(BaseCommand):
    help = "Create an API key for an organization. The key is printed once, alone on the last line."

    def add_arguments(self, parser):
        parser.add_argument("org_slug")
        parser.add_argument("--name", required=True, help="a label, e.g. the tool that uses it")
        parser.add_argument(
            "--scopes",
            default=",".join(ALL_API_SCOPES),
            help=f"comma-separated; default all: {','.join(ALL_API_SCOPES)}",
        )

    def handle(self, org_slug, name, scopes, **options):
        organization = Organization.objects.filter(slug=org_slug).first()
        if organization is None:
            raise CommandError(f"No organization {org_slug!r}.")
        wanted = [s.strip() for s in scopes.split(",") if s.strip()]
        unknown = sorted(set(wanted) - set(ALL_API_SCOPES))
        if unknown:
            raise CommandError(
                f"Unknown scope(s) {', '.join(unknown)}; choose from {', '.join(ALL_API_SCOPES)}."
            )
        with scope(organization=organization):
            api_key, plaintext = ApiKey.generate(organization, name, scopes=wanted)
        self.stdout.write(
            f"Created API key {api_key.name!r} ({api_key.prefix}) for {organization.slug} "
            f"with scopes {', '.join(wanted)}. Store it now; it is not shown again:"
        )
        self.stdout.write(plaintext)
