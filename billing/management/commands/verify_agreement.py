"""manage.py verify_agreement <uuid>: prove an agreement unaltered, or say what differs."""

from django.core.management.base import BaseCommand, CommandError
from django_scopes import scopes_disabled

from billing.models import ScopeAgreement
from billing.services import agreements
from meshline.ids import uuid_or_404


class Command(BaseCommand):
    help = "Verify a scope agreement's digest and Ed25519 signature against its columns."

    def add_arguments(self, parser):
        parser.add_argument("agreement_id")

    def handle(self, *args, agreement_id, **options):
        from django.http import Http404

        try:
            pk = uuid_or_404(agreement_id)
        except Http404:
            raise CommandError(f"'{agreement_id}' is not an agreement id.") from None
        with scopes_disabled():
            agreement = (
                ScopeAgreement.objects.select_related("signing_key", "client", "organization")
                .filter(pk=pk)
                .first()
            )
            if agreement is None:
                raise CommandError(f"No agreement {agreement_id}.")
            result = agreements.verify(agreement)
        if result.valid:
            self.stdout.write(f"OK: agreement {agreement.pk} v{agreement.version} verifies.")
            return
        lines = [f"FAILED: agreement {agreement.pk} does not verify."]
        if not result.digest_matches:
            lines.append("  the signed text does not match its digest")
        if not result.signature_valid:
            lines.append("  the signature does not match the signed text")
        for d in result.differences:
            lines.append(f"  {d['field']}: signed {d['signed']!r}, now {d['current']!r}")
        raise CommandError("\n".join(lines))
