"""Scope agreements: record a version, sign its canonical form, verify it later.

The canonical form is the agreement as JSON with sorted keys, no whitespace, UTF-8, times in
UTC ISO 8601 and money as strings. Its SHA-256 is the digest; the Ed25519 signature of the
organization's key is over the same bytes, so anyone holding the published public key can
check an agreement offline: ``verify(canonical, signature, public_key)``.
"""

import base64
import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.db import transaction
from django.db.models import Max, Q

from billing.models import BillingSettings, ScopeAgreement, SigningKey
from billing.services import wording
from billing.services.errors import BillingError
from billing.services.money import parse_decimal
from deliveries.services import trail
from meshline.models import Organization

MAX_RATE = Decimal("1000000")
# A rate card entry with "recurring" is a fixed fee billed per period while the agreement
# is in force (billing.services.invoices.add_recurring_fees), e.g. a monthly retainer.
RECURRING = ("month",)


def signing_key_for(organization) -> SigningKey:
    """The organization's signing key, generated on first use (under the organization's
    row lock, so two first agreements at once still make one key)."""
    key = SigningKey.objects.filter(organization=organization).first()
    if key is not None:
        return key
    with transaction.atomic():
        Organization.objects.select_for_update().filter(pk=organization.pk).first()
        key = SigningKey.objects.filter(organization=organization).first()
        if key is None:
            private = Ed25519PrivateKey.generate()
            public = private.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            key = SigningKey.objects.create(
                organization=organization,
                key_id=hashlib.sha256(public).hexdigest()[:16],
                public_key=public,
                private_key=private.private_bytes(
                    serialization.Encoding.Raw,
                    serialization.PrivateFormat.Raw,
                    serialization.NoEncryption(),
                ),
            )
    return key


def public_key_pem(key: SigningKey) -> str:
    public = Ed25519PublicKey.from_public_bytes(bytes(key.public_key))
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def _instant(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def document(agreement: ScopeAgreement) -> dict:
    """What is signed, built from the agreement's columns."""
    doc = {
        "agreement_id": str(agreement.pk),
        "organization": agreement.organization.slug,
        "client": agreement.client.client_id,
        "deliverable": agreement.deliverable.deliverable_id if agreement.deliverable_id else None,
        "version": agreement.version,
        "limits": agreement.limits,
        "rates": agreement.rates,
        "currency": agreement.currency,
        "valid_from": _instant(agreement.valid_from),
        "valid_until": _instant(agreement.valid_until),
        "accepted_by": agreement.accepted_by,
        "accepted_at": _instant(agreement.accepted_at),
        "source_event": str(agreement.source_event_id) if agreement.source_event_id else None,
        "key_id": agreement.signing_key.key_id,
    }
    if agreement.terms:
        # Only when there are terms: agreements signed before terms existed still verify.
        doc["terms"] = agreement.terms
    return doc


def canonical_json(doc: dict) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def clean_limits(limits) -> dict:
    if not isinstance(limits, dict) or not limits:
        raise BillingError("invalid_limits", "Give at least one limit.", "limits")
    cleaned = {}
    for name, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise BillingError("invalid_limits", f"Limit '{name}' must be a number.", "limits")
        if value < 0:
            raise BillingError("negative", f"Limit '{name}' cannot be negative.", "limits")
        cleaned[str(name)] = value
    return cleaned


def clean_rates(rates) -> dict:
    if not isinstance(rates, dict):
        raise BillingError("invalid_rates", "The rate card must be an object.", "rates")
    cleaned = {}
    for clause, entry in rates.items():
        if not isinstance(entry, dict) or "rate" not in entry:
            raise BillingError("invalid_rates", f"Rate '{clause}' needs a 'rate'.", "rates")
        rate = parse_decimal(entry["rate"], f"rates.{clause}", maximum=MAX_RATE)
        cleaned[str(clause)] = {"rate": str(rate), "unit": str(entry.get("unit") or clause)[:40]}
        recurring = entry.get("recurring")
        if recurring is not None:
            if recurring not in RECURRING:
                raise BillingError(
                    "invalid_rates",
                    f"Rate '{clause}': recurring is one of {', '.join(RECURRING)}.",
                    "rates",
                )
            # Only present when given: the canonical form of older agreements is unchanged.
            cleaned[str(clause)]["recurring"] = recurring
    return cleaned


@dataclass
class AgreementTerms:
    """What a new agreement version says; checked by ``record_agreement``."""

    limits: dict
    rates: dict
    currency: str
    valid_from: datetime
    accepted_by: str
    accepted_at: datetime
    valid_until: datetime | None = None
    source_event: object | None = None
    extra: dict = field(default_factory=dict)


def record_agreement(organization, client, deliverable, terms: AgreementTerms) -> ScopeAgreement:
    """Store the next version of the client's (or deliverable's) agreement, signed, with its
    ``scope.agreement_signed`` trail entry. Refuses bad limits, rates, currency or periods."""
    limits = clean_limits(terms.limits)
    rates = clean_rates(terms.rates)
    currency = (terms.currency or "").upper()
    if len(currency) != 3 or not currency.isalpha() or not currency.isascii():
        raise BillingError("invalid_currency", "Use an ISO 4217 code, e.g. EUR.", "currency")
    if terms.valid_until is not None and terms.valid_until <= terms.valid_from:
        raise BillingError("invalid_period", "valid_until must be after valid_from.", "valid_until")
    if not terms.accepted_by.strip():
        raise BillingError("required", "Say who accepted the agreement.", "accepted_by")
    with transaction.atomic():
        series = ScopeAgreement.objects.select_for_update().filter(
            organization=organization, client=client
        )
        series = (
            series.filter(deliverable=deliverable)
            if deliverable
            else series.filter(deliverable__isnull=True)
        )
        latest = series.order_by("-version").first()
        if latest is not None and terms.valid_from < latest.valid_from:
            # An amendment replaces the version in force from its start; starting before the
            # latest version would make two versions claim the same work.
            raise BillingError(
                "overlapping_agreement",
                f"Version {latest.version} is in force from {_instant(latest.valid_from)}; "
                "an amendment cannot start before it.",
                "valid_from",
            )
        version = (series.aggregate(v=Max("version"))["v"] or 0) + 1
        agreement = ScopeAgreement(
            organization=organization,
            client=client,
            deliverable=deliverable,
            version=version,
            limits=limits,
            rates=rates,
            currency=currency,
            valid_from=terms.valid_from,
            valid_until=terms.valid_until,
            accepted_by=terms.accepted_by.strip()[:200],
            accepted_at=terms.accepted_at,
            source_event=terms.source_event,
            signing_key=signing_key_for(organization),
        )
        agreement.terms = _terms_text(organization, agreement)
        canonical = canonical_json(document(agreement))
        private = Ed25519PrivateKey.from_private_bytes(bytes(agreement.signing_key.private_key))
        agreement.canonical = canonical
        agreement.digest = hashlib.sha256(canonical.encode()).hexdigest()
        agreement.signature = base64.b64encode(private.sign(canonical.encode())).decode()
        agreement.save(force_insert=True)
        trail.record(
            organization,
            "scope.agreement_signed",
            key=f"billing:agreement:{agreement.pk}:signed",
            deliverable=deliverable,
            client=client,
            occurred_at=terms.accepted_at,
            payload={
                "agreement_id": str(agreement.pk),
                "version": version,
                "digest": agreement.digest,
                "signature": agreement.signature,
                "key_id": agreement.signing_key.key_id,
                "document": json.loads(canonical),
            },
        )
    return agreement


def _terms_text(organization, agreement: ScopeAgreement) -> str:
    template = BillingSettings.for_organization(organization).agreement_terms
    if not template.strip():
        return ""
    return wording.fill(
        template,
        {
            "organization": organization.name,
            "client": agreement.client.name,
            "version": agreement.version,
            "currency": agreement.currency,
            "valid_from": agreement.valid_from.date().isoformat(),
            "valid_until": agreement.valid_until.date().isoformat()
            if agreement.valid_until
            else "until amended",
            "accepted_by": agreement.accepted_by,
        },
    ).strip()


def _parse_instant(value, fallback):
    if not value:
        return fallback
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BillingError("invalid_instant", f"'{value}' is not a date and time.") from None


def agreement_from_event(event, deliverable) -> ScopeAgreement | None:
    """Processing step for ``scope.accepted``: the event becomes a signed agreement for its
    deliverable, once (a replay finds the agreement by its source event)."""
    existing = ScopeAgreement.objects.filter(
        organization=event.organization_id, source_event=event
    ).first()
    if existing is not None:
        return existing
    settings = BillingSettings.for_organization(event.organization)
    payload = event.payload
    terms = AgreementTerms(
        limits=payload.get("limits") or {},
        rates=payload.get("rates") or settings.default_rates or {},
        currency=payload.get("currency") or settings.currency,
        valid_from=_parse_instant(payload.get("valid_from"), event.occurred_at),
        valid_until=_parse_instant(payload.get("valid_until"), None),
        accepted_by=payload.get("signed_by") or event.actor_id or "unknown",
        accepted_at=event.occurred_at,
        source_event=event,
    )
    return record_agreement(event.organization, deliverable.client, deliverable, terms)


def in_force(organization, deliverable, at: datetime) -> ScopeAgreement | None:
    """The agreement that governed work on ``deliverable`` at ``at``: the deliverable's own
    newest version started by then (and not expired), else the client's."""
    return pick_in_force(candidates_for(organization, [deliverable]), deliverable, at)


def candidates_for(organization, deliverables) -> list[ScopeAgreement]:
    """Every agreement that may govern work on ``deliverables`` (theirs and their clients'),
    newest first: one query for a whole processing batch."""
    return list(
        ScopeAgreement.objects.filter(
            organization=organization, client__in={d.client_id for d in deliverables}
        )
        .filter(Q(deliverable__in=[d.pk for d in deliverables]) | Q(deliverable__isnull=True))
        .select_related("signing_key")
        .order_by("-valid_from", "-version")
    )


def pick_in_force(candidates, deliverable, at: datetime) -> ScopeAgreement | None:
    """``in_force`` over agreements already read (``candidates_for``)."""
    started = [a for a in candidates if a.client_id == deliverable.client_id and a.valid_from <= at]
    own = [a for a in started if a.deliverable_id == deliverable.pk]
    general = [a for a in started if a.deliverable_id is None]
    for series in (own, general):
        # The newest version started by ``at`` replaces the older ones; if it has expired,
        # nothing in this series is in force (an older version does not come back).
        if series:
            newest = series[0]
            if newest.valid_until is None or at < newest.valid_until:
                return newest
    return None


def window_end(agreement: ScopeAgreement) -> datetime | None:
    """When the agreement stopped governing work: its expiry or its amendment's start."""
    series = ScopeAgreement.objects.filter(
        organization=agreement.organization_id,
        client=agreement.client_id,
        version__gt=agreement.version,
    )
    series = (
        series.filter(deliverable=agreement.deliverable_id)
        if agreement.deliverable_id
        else series.filter(deliverable__isnull=True)
    )
    nxt = series.order_by("version").values_list("valid_from", flat=True).first()
    ends = [t for t in (agreement.valid_until, nxt) if t is not None]
    return min(ends) if ends else None


@dataclass
class Verification:
    """The answer of ``verify``: valid, or what is wrong, field by field."""

    valid: bool
    digest_matches: bool
    signature_valid: bool
    differences: list[dict]

    def as_dict(self) -> dict:
        return {
            "valid": self.valid,
            "digest_matches": self.digest_matches,
            "signature_valid": self.signature_valid,
            "differences": self.differences,
        }


def _flatten(value, prefix="") -> dict:
    if isinstance(value, dict) and value:
        flat = {}
        for key, inner in value.items():
            flat.update(_flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def verify(agreement: ScopeAgreement) -> Verification:
    """Prove the agreement unaltered: the signed text's digest and signature check out,
    and the columns still say what was signed. Each differing field is named."""
    canonical = agreement.canonical or ""
    digest_matches = hashlib.sha256(canonical.encode()).hexdigest() == agreement.digest
    public = Ed25519PublicKey.from_public_bytes(bytes(agreement.signing_key.public_key))
    try:
        public.verify(base64.b64decode(agreement.signature), canonical.encode())
        signature_valid = True
    except (InvalidSignature, ValueError):
        signature_valid = False
    try:
        signed = _flatten(json.loads(canonical))
    except ValueError:
        signed = {}
    current = _flatten(document(agreement))
    differences = [
        {"field": name, "signed": signed.get(name), "current": current.get(name)}
        for name in sorted(set(signed) | set(current))
        if signed.get(name) != current.get(name)
    ]
    return Verification(
        valid=digest_matches and signature_valid and not differences,
        digest_matches=digest_matches,
        signature_valid=signature_valid,
        differences=differences,
    )
