import pytest
from django.core.management import CommandError, call_command
from django_scopes import scope

from billing.models import ImmutableError, ScopeAgreement
from billing.services import agreements
from deliveries.models import Event
from tests.billing.conftest import at, scope_event

pytestmark = pytest.mark.django_db


def test_scope_accepted_yields_a_signed_agreement_that_verifies(org_a, client_acme, publish):
    publish(org_a, scope_event())
    with scope(organization=org_a):
        agreement = ScopeAgreement.objects.get(organization=org_a)
        assert agreement.version == 1
        assert agreement.currency == "EUR"
        assert agreement.valid_from == at(0)
        assert agreement.accepted_by == "cmo@acme.example"
        assert agreements.verify(agreement).valid
        signed = Event.objects.get(organization=org_a, event_type="scope.agreement_signed")
        assert signed.payload["digest"] == agreement.digest
        assert signed.occurred_at == at(0)
        assert signed.deliverable.deliverable_id == "LP-1"


def test_tampered_agreement_names_the_field_that_differs(org_a, client_acme, publish):
    publish(org_a, scope_event())
    with scope(organization=org_a):
        agreement = ScopeAgreement.objects.get(organization=org_a)
        ScopeAgreement.objects.filter(pk=agreement.pk).update(
            limits={"revisions": 9, "hours": 10, "asset_size_mb": 5}
        )
        result = agreements.verify(ScopeAgreement.objects.get(pk=agreement.pk))
    assert not result.valid
    assert result.signature_valid and result.digest_matches  # the signed text is intact
    assert result.differences == [{"field": "limits.revisions", "signed": 1, "current": 9}]
    with pytest.raises(CommandError, match=r"limits.revisions: signed 1, now 9"):
        call_command("verify_agreement", str(agreement.pk))


def test_forged_signed_text_fails_signature_and_digest(org_a, client_acme, publish):
    publish(org_a, scope_event())
    with scope(organization=org_a):
        agreement = ScopeAgreement.objects.get(organization=org_a)
        forged = agreement.canonical.replace('"revisions":1', '"revisions":5')
        ScopeAgreement.objects.filter(pk=agreement.pk).update(canonical=forged)
        result = agreements.verify(ScopeAgreement.objects.get(pk=agreement.pk))
    assert not result.signature_valid and not result.digest_matches
    assert {"field": "limits.revisions", "signed": 5, "current": 1} in result.differences


def test_verify_command_accepts_an_intact_agreement(org_a, client_acme, publish, capsys):
    publish(org_a, scope_event())
    with scope(organization=org_a):
        agreement = ScopeAgreement.objects.get(organization=org_a)
    call_command("verify_agreement", str(agreement.pk))
    assert "verifies" in capsys.readouterr().out
    with pytest.raises(CommandError, match="not an agreement id"):
        call_command("verify_agreement", "nope")


def test_amendment_is_a_new_version_and_agreements_are_never_edited(org_a, client_acme, publish):
    publish(org_a, scope_event(hours=0), scope_event(hours=5, limits={"revisions": 3}))
    with scope(organization=org_a):
        v1, v2 = ScopeAgreement.objects.filter(organization=org_a).order_by("version")
        assert (v1.version, v2.version) == (1, 2)
        v1.accepted_by = "someone else"
        with pytest.raises(ImmutableError):
            v1.save()


def test_amendment_cannot_start_before_the_version_in_force(org_a, client_acme, publish):
    publish(org_a, scope_event(hours=5))
    with scope(organization=org_a):
        deliverable = ScopeAgreement.objects.get(organization=org_a).deliverable
        terms = agreements.AgreementTerms(
            limits={"revisions": 1},
            rates={},
            currency="EUR",
            valid_from=at(1),
            accepted_by="x",
            accepted_at=at(1),
        )
        with pytest.raises(agreements.BillingError) as err:
            agreements.record_agreement(org_a, client_acme, deliverable, terms)
        assert err.value.code == "overlapping_agreement"
        assert ScopeAgreement.objects.filter(organization=org_a).count() == 1


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"currency": "euro"}, "invalid_currency"),
        ({"limits": {"revisions": -1}}, "negative"),
        ({"rates": {"hours": {"rate": "-5"}}}, "negative"),
        ({"rates": {"hours": {"rate": "1e9"}}}, "too_large"),
    ],
)
def test_bad_terms_are_refused_and_nothing_is_stored(org_a, client_acme, change, code):
    terms = {
        "limits": {"revisions": 1},
        "rates": {},
        "currency": "EUR",
        "valid_from": at(0),
        "accepted_by": "x",
        "accepted_at": at(0),
        **change,
    }
    with scope(organization=org_a):
        with pytest.raises(agreements.BillingError) as err:
            agreements.record_agreement(
                org_a, client_acme, None, agreements.AgreementTerms(**terms)
            )
        assert err.value.code == code
        assert not ScopeAgreement.objects.filter(organization=org_a).exists()


def test_scope_accepted_with_a_bad_rate_is_a_400_at_intake(org_a, client_acme, publish):
    results = publish(org_a, scope_event(rates={"hours": {"rate": "ninety"}}))
    assert results[0].status == "rejected"


def test_public_key_is_published_and_verifies_offline(org_a, client_acme, publish, client):
    import base64

    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    publish(org_a, scope_event())
    with scope(organization=org_a):
        agreement = ScopeAgreement.objects.select_related("signing_key").get(organization=org_a)
    response = client.get(f"/keys/{agreement.signing_key.key_id}.pem")
    assert response.status_code == 200
    public = load_pem_public_key(response.content)
    public.verify(base64.b64decode(agreement.signature), agreement.canonical.encode())
    assert client.get("/keys/0000000000000000.pem").status_code == 404
