"""/metrics: gate evaluation latency (event received -> verdict), per check, observed where
the verdict is recorded, through the real pipeline (ingest, processing, evaluation)."""

from prometheus_client.parser import text_string_to_metric_families

from gates.models import CheckName
from tests.gates.conftest import page, published

NAME = "meshline_gate_evaluation_latency_seconds"


def counts_by_check(client) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        sample.labels["check"]: sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
        if sample.name == f"{NAME}_count"
    }


def test_each_verdict_is_observed_under_its_check(
    client, org_a, client_acme, owner_map, make_gate, publish
):
    make_gate(CheckName.SCHEMA_CHECK)
    make_gate(CheckName.SEO_TAGS_PRESENT)
    before = counts_by_check(client)

    publish(org_a, published("LP-1", page("missing_jsonld.html")))  # one fails, one passes
    publish(org_a, published("LP-2", page("product_landing.html")))

    after = counts_by_check(client)
    for check in (CheckName.SCHEMA_CHECK, CheckName.SEO_TAGS_PRESENT):
        assert after[check] - before.get(check, 0) == 2, check
    assert set(after) - set(before) <= {CheckName.SCHEMA_CHECK, CheckName.SEO_TAGS_PRESENT}
