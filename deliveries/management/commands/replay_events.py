"""manage.py replay_events: re-run processing for a range of an organization's events."""

from django.core.management.base import BaseCommand, CommandError
from django_scopes import scope

from deliveries.services import replay
from meshline.models import Organization


class Command(BaseCommand):
    help = (
        "Re-run processing for an organization's events (replay and backfill). Effects are "
        "idempotent: what is already right stays as it is. Dates count in the "
        "organization's time zone; --until is exclusive for a date-time, and for a date "
        "includes that whole day."
    )

    def add_arguments(self, parser):
        parser.add_argument("org_slug")
        parser.add_argument("--since", help="ISO date or date-time with offset (occurred_at)")
        parser.add_argument("--until", help="ISO date or date-time with offset (occurred_at)")
        parser.add_argument(
            "--type",
            action="append",
            dest="event_types",
            default=[],
            metavar="EVENT_TYPE",
            help="only this event type (repeatable)",
        )
        parser.add_argument("--deliverable", default="", help="only this deliverable_id")
        parser.add_argument(
            "--failed-only",
            action="store_true",
            help="only events whose processing failed (gave up, or pending with an error); "
            "their attempts start afresh",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="count by type and status; change nothing"
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=replay.DEFAULT_CHUNK_SIZE,
            help=f"events per processing batch (default {replay.DEFAULT_CHUNK_SIZE})",
        )

    def handle(self, org_slug, **options):
        organization = Organization.objects.filter(slug=org_slug).first()
        if organization is None:
            raise CommandError(f"No organization {org_slug!r}.")
        try:
            selection = replay.Selection(
                since=self._moment(options["since"], organization, end=False),
                until=self._moment(options["until"], organization, end=True),
                event_types=tuple(dict.fromkeys(options["event_types"])),
                deliverable_id=options["deliverable"].strip(),
                failed_only=options["failed_only"],
            )
        except replay.ReplayError as exc:
            raise CommandError(str(exc)) from None
        chunk_size = options["chunk_size"]
        if not 1 <= chunk_size <= replay.MAX_CHUNK_SIZE:
            raise CommandError(f"--chunk-size must be between 1 and {replay.MAX_CHUNK_SIZE}.")
        with scope(organization=organization):
            try:
                replay.check(organization, selection)
            except replay.ReplayError as exc:
                raise CommandError(str(exc)) from None
            if options["dry_run"]:
                self._print_plan(organization, replay.plan(organization, selection))
                return
            progress = Progress(self.stdout, tty=_isatty(self.stdout))
            outcome = replay.replay(
                organization, selection, chunk_size=chunk_size, progress=progress
            )
            progress.finish()
        self._print_outcome(organization, outcome)
        if outcome.failed:
            raise CommandError(
                f"{outcome.failed} event(s) failed again; their errors are on the events "
                "(admin, or the portal's events page filtered by processing: failed)."
            )

    @staticmethod
    def _moment(value, organization, *, end: bool):
        if value is None:
            return None
        return replay.parse_moment(value, organization.zone, end=end)

    def _print_plan(self, organization, plan: replay.Plan) -> None:
        self.stdout.write(f"Dry run for {organization.slug}: {plan.total} event(s) selected.")
        for event_type, count in plan.by_type.items():
            self.stdout.write(f"  {event_type:<32} {count:>8}")
        statuses = ", ".join(f"{status} {count}" for status, count in plan.by_status.items())
        self.stdout.write(f"By processing status: {statuses or 'none'}. Nothing was changed.")

    def _print_outcome(self, organization, outcome: replay.Outcome) -> None:
        self.stdout.write(
            f"Replayed {organization.slug}: selected {outcome.selected}, replayed "
            f"{outcome.replayed}, skipped {outcome.skipped}, failed {outcome.failed}."
        )
        for event_type, counts in sorted(outcome.by_type.items()):
            detail = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
            self.stdout.write(f"  {event_type:<32} {sum(counts.values()):>8}  ({detail})")


def _isatty(stream) -> bool:
    target = getattr(stream, "_out", stream)  # Django's OutputWrapper around the real stream
    try:
        return target.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """A bar redrawn in place on a terminal; a plain line every PLAIN_EVERY events (and at
    the end) otherwise, so logs stay readable."""

    WIDTH = 30
    PLAIN_EVERY = 1000

    def __init__(self, stdout, *, tty: bool):
        self.stdout, self.tty, self.next_line, self.drawn = stdout, tty, self.PLAIN_EVERY, False

    def __call__(self, outcome, total: int) -> None:
        done = outcome.selected
        if self.tty:
            filled = self.WIDTH * done // total if total else self.WIDTH
            bar = "#" * filled + "." * (self.WIDTH - filled)
            self.stdout.write(
                f"\r[{bar}] {done}/{total} replayed {outcome.replayed} failed {outcome.failed}",
                ending="",
            )
            self.stdout.flush()
            self.drawn = True
        elif done >= self.next_line or done >= total:
            self.stdout.write(
                f"progress: {done}/{total} (replayed {outcome.replayed}, skipped "
                f"{outcome.skipped}, failed {outcome.failed})"
            )
            while self.next_line <= done:
                self.next_line += self.PLAIN_EVERY

    def finish(self) -> None:
        if self.drawn:
            self.stdout.write("")  # end the bar's line
