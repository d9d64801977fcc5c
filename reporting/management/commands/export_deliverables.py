"""manage.py export_deliverables <org-slug> --date YYYY-MM-DD [--format csv|parquet] [--output PATH]"""

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django_scopes import scope

from meshline.models import Organization
from reporting.models import ExportFormat
from reporting.services import exports


class Command(BaseCommand):
    help = "Write one day's per-deliverable export (to storage, or to --output)."

    def add_arguments(self, parser):
        parser.add_argument("organization", help="The organization's slug.")
        parser.add_argument("--date", required=True, help="The day, YYYY-MM-DD.")
        parser.add_argument("--format", choices=ExportFormat.values, default=ExportFormat.CSV)
        parser.add_argument("--output", help="Write to this file instead of the storage.")

    def handle(self, *args, **options):
        organization = Organization.objects.filter(slug=options["organization"]).first()
        if organization is None:
            raise CommandError(f"No organization '{options['organization']}'.")
        try:
            day = date.fromisoformat(options["date"])
        except ValueError:
            raise CommandError("--date must be YYYY-MM-DD.") from None
        fmt = options["format"]

        def progress(rows: int) -> None:
            self.stderr.write(f"\r{rows} rows", ending="")

        with scope(organization=organization):
            if options["output"]:
                with open(options["output"], "wb") as out:
                    rows = exports.write_export(organization, day, fmt, out, progress)
                where = options["output"]
            else:
                export = exports.run_export(organization, day, fmt, progress=progress)
                rows, where = export.rows, export.file.name
        self.stderr.write("")
        self.stdout.write(f"Wrote {rows} rows to {where}")
