from django.core.management.base import BaseCommand, CommandError

from devtools import smoke


class Command(BaseCommand):
    help = (
        "Emit synthetic events through the real pipeline and assert each gate's behaviour. "
        "Runs in a dedicated organization (created if missing)."
    )

    def add_arguments(self, parser):
        parser.add_argument("--org", default="gate-smoke", help="slug of a dedicated organization")
        parser.add_argument(
            "--timeout",
            type=float,
            default=30,
            help="seconds to wait for each step's verdicts when a worker processes events",
        )

    def handle(self, org, timeout, **options):
        cases = smoke.run(org, timeout=timeout)
        width = max(len(c.check) for c in cases)
        self.stdout.write(f"{'check':<{width}}  {'case':<24} {'expected':<16} {'got':<16} ok")
        for c in cases:
            mark = "ok" if c.ok else "FAIL"
            self.stdout.write(
                f"{c.check:<{width}}  {c.name:<24} {c.expected:<16} {c.got:<16} {mark}"
            )
            if not c.ok and c.detail:
                self.stdout.write(f"{'':<{width}}  -> {c.detail}")
        failed = [c for c in cases if not c.ok]
        self.stdout.write(f"{len(cases) - len(failed)} passed, {len(failed)} failed")
        if failed:
            raise CommandError(f"gate_smoke: {len(failed)} case(s) did not behave as expected")
