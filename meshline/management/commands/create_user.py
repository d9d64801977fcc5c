from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from meshline.models import Organization, Role
from meshline.services import create_user


class Command(BaseCommand):
    help = "Create a user (or reset their password) and give them a role in an organization."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--role", required=True, choices=Role.values)
        parser.add_argument("--password", required=True)

    def handle(self, email, org, role, password, **options):
        organization = Organization.objects.filter(slug=org).first()
        if organization is None:
            raise CommandError(f"No organization {org!r}; create it with create_organization.")
        try:
            user = create_user(email, organization, role, password)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self.stdout.write(f"{user.email} is {role} in {organization.slug}")
