from django.core.management.base import BaseCommand, CommandError

from devtools.demo import DEMO_PASSWORD, DEMO_USERS, seed_demo


class Command(BaseCommand):
    help = "Create or refresh the demo organization (clients, deliverables, events, users)."

    def handle(self, **options):
        outcome = seed_demo()
        if outcome["rejected"]:
            raise CommandError(f"demo events rejected: {outcome['rejected'][:3]}")
        organization = outcome["organization"]
        self.stdout.write(
            f"Demo organization '{organization.name}' (/o/{organization.slug}/): "
            f"{outcome['accepted']} events added, {outcome['duplicates']} already present."
        )
        self.stdout.write("Sign in at http://127.0.0.1:8000/ with any of:")
        for email, role in DEMO_USERS:
            self.stdout.write(f"  {email:<28} password: {DEMO_PASSWORD}   ({role.label})")
        if outcome["api_key"]:
            self.stdout.write(f"Demo API key (shown once): {outcome['api_key']}")
