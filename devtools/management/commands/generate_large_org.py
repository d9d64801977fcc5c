from django.core.management.base import BaseCommand, CommandError

from devtools.largeorg import generate


class Command(BaseCommand):
    help = (
        "Generate a large organization for performance work (default: 1,000,000 events, "
        "20,000 deliverables, 50,000 tickets). Use PostgreSQL for the full size."
    )

    def add_arguments(self, parser):
        parser.add_argument("--slug", default="large")
        parser.add_argument("--events", type=int, default=1_000_000)
        parser.add_argument("--deliverables", type=int, default=20_000)
        parser.add_argument("--tickets", type=int, default=50_000)
        parser.add_argument("--evaluations", type=int, default=100_000)

    def handle(self, slug, events, deliverables, tickets, evaluations, **options):
        try:
            outcome = generate(
                slug,
                events=events,
                deliverables=deliverables,
                tickets=tickets,
                evaluations=evaluations,
                log=self.stdout.write,
            )
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Generated /o/{outcome['organization'].slug}/ in {outcome['seconds']:.0f} s. "
            "Sign in as am@northwind.example / meshline-demo."
        )
