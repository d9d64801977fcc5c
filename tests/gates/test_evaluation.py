"""Gates through the real pipeline: ingest → processing → evaluation task → verdict → ticket.

Events go through ``ingest_events`` exactly as the API stores them; the after-commit hooks
(processing, then each gate's evaluation) run eagerly in this process when the ``publish``
fixture's block ends.
"""

from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_scopes import scope

from deliveries.models import Deliverable, Event, EventSource
from gates import services, tasks
from gates.models import (
    Artifact,
    CheckName,
    Gate,
    GateEvaluation,
    GateMode,
    GateVerdictCount,
    Outcome,
    SitemapTimer,
    TimerStatus,
)
from gates.services import verdicts
from meshline.ids import uuid7
from owners.models import OwnerRule, Ticket, TicketSource, TicketStatus
from owners.services import tickets
from tests.gates.conftest import PAGE_URL, PLAYBOOK, event, page, published

MISSING_JSONLD = 'No schema.org JSON-LD (<script type="application/ld+json">) in the page.'


def evaluations(organization, **filters):
    with scope(organization=organization):
        return list(
            GateEvaluation.objects.filter(organization=organization, **filters)
            .select_related("gate", "ticket", "event")
            .order_by("evaluated_at")
        )


def tickets_of(organization, **filters):
    with scope(organization=organization):
        return list(
            Ticket.objects.filter(organization=organization, **filters)
            .select_related("owner_role", "assignee")
            .order_by("opened_at")
        )


def trail_types(organization, ref):
    with scope(organization=organization):
        return list(
            Event.objects.filter(
                organization=organization,
                deliverable__deliverable_id=ref,
                source=EventSource.MESHLINE,
            )
            .order_by("received_at", "id")
            .values_list("event_type", flat=True)
        )


# --- the done-when scenario ---------------------------------------------------------


def test_page_missing_jsonld_opens_one_ticket_for_the_seo_owner_then_the_fix_resolves_it(
    org_a, client_acme, owner_map, member, make_gate, publish, earlier
):
    schema = make_gate(CheckName.SCHEMA_CHECK, name="Schema.org JSON-LD")
    make_gate(CheckName.SEO_TAGS_PRESENT, name="SEO tags")  # passes: no second ticket
    publish(
        org_a,
        event("intake.received", "LP-2041", {"requested_by": "cmo@acme.example"}, at=earlier(90)),
        event("scope.accepted", "LP-2041", {"limits": {"revisions": 2}}, at=earlier(60)),
        event(
            "asset.uploaded",
            "LP-2041",
            {"asset_id": "hero", "size_bytes": 1_200_000},
            at=earlier(30),
        ),
    )
    [page_event_id] = publish(
        org_a, published("LP-2041", page("missing_jsonld.html"), at=earlier(10))
    )

    [failed] = evaluations(org_a, gate=schema)
    assert (failed.outcome, failed.mode, failed.reasons) == (
        Outcome.FAIL,
        GateMode.ENFORCE,
        [MISSING_JSONLD],
    )
    assert str(failed.event_id) == page_event_id
    assert failed.duration_ms >= 0
    [ticket] = tickets_of(org_a)
    assert failed.ticket == ticket
    assert ticket.source == TicketSource.GATE_FAILURE
    assert ticket.status == TicketStatus.OPEN
    assert ticket.title == "Schema.org JSON-LD failed for LP-2041"
    assert ticket.owner_role == owner_map
    assert ticket.owner_role.name == "SEO Delivery Owner"
    assert ticket.assignee == member  # the role's on-duty person

    context = ticket.context
    assert context["reasons"] == [MISSING_JSONLD]
    assert context["details"] == {"artifact": "page html", "jsonld_blocks": 0}
    assert context["artifacts"] == ["page html"]
    assert context["page_url"] == PAGE_URL
    assert context["evaluation_id"] == str(failed.pk)
    assert context["event_id"] == page_event_id
    assert [e["event_type"] for e in context["last_events"]] == [
        "page.published",
        "asset.uploaded",
        "scope.accepted",
    ]
    assert context["last_events"][0]["id"] == page_event_id
    assert context["last_events"][0]["actor"] == "cms:wp-publisher"
    assert context["remediation"] == PLAYBOOK
    assert context["owner_role"] == "SEO Delivery Owner"
    assert context["sla_deadline"] == ticket.resolve_due_at.isoformat()
    assert ticket.resolve_due_at > ticket.opened_at
    assert context["billing_flag"] is False
    # billing signs the accepted scope as an agreement (scope.agreement_signed) first.
    assert trail_types(org_a, "LP-2041") == [
        "scope.agreement_signed",
        "gate.failed",
        "ticket.opened",
    ]

    # Fixing the page and publishing again resolves the ticket by itself.
    publish(org_a, published("LP-2041", page("product_landing.html"), at=earlier(5)))
    passed = evaluations(org_a, gate=schema)[-1]
    assert passed.outcome == Outcome.PASS
    [ticket] = tickets_of(org_a)
    assert ticket.status == TicketStatus.RESOLVED
    assert ticket.resolved_at is not None
    assert ticket.closed_note.startswith("Schema.org JSON-LD passed on event")
    assert trail_types(org_a, "LP-2041") == [
        "scope.agreement_signed",
        "gate.failed",
        "ticket.opened",
        "ticket.resolved",
        "gate.passed",
    ]


def test_the_same_failure_again_keeps_one_open_ticket(
    org_a, client_acme, owner_map, make_gate, publish, earlier
):
    schema = make_gate(CheckName.SCHEMA_CHECK)
    publish(org_a, published("LP-1", page("missing_jsonld.html"), at=earlier(20)))
    publish(org_a, published("LP-1", page("invalid_jsonld.html"), at=earlier(10)))
    first, second = evaluations(org_a, gate=schema)
    assert first.outcome == second.outcome == Outcome.FAIL
    [ticket] = tickets_of(org_a)
    assert first.ticket == second.ticket == ticket


def test_each_failing_deliverable_gets_its_own_ticket(
    org_a, client_acme, owner_map, make_gate, publish
):
    make_gate(CheckName.SCHEMA_CHECK)
    publish(
        org_a,
        published("LP-1", page("missing_jsonld.html"), url="https://acme.example/lp/one"),
        published("LP-2", page("missing_jsonld.html"), url="https://acme.example/lp/two"),
    )
    assert sorted(t.title for t in tickets_of(org_a)) == [
        "Schema check failed for LP-1",
        "Schema check failed for LP-2",
    ]


def test_a_screenshot_regression_ticket_names_its_difference_image(org_a, screenshot_failure):
    [evaluation] = evaluations(org_a)
    assert evaluation.outcome == Outcome.FAIL
    with scope(organization=org_a):
        [artifact] = evaluation.artifacts.all()
    assert (artifact.name, artifact.content_type) == ("difference.png", "image/png")
    assert bytes(artifact.data).startswith(b"\x89PNG")
    [ticket] = tickets_of(org_a)
    assert ticket.context["artifacts"] == ["difference.png"]


def test_the_difference_image_is_shown_in_the_portal_and_only_to_its_organization(
    org_a, screenshot_failure, as_member, as_outsider
):
    [evaluation] = evaluations(org_a)
    with scope(organization=org_a):
        [artifact] = evaluation.artifacts.all()
    url = f"/o/org-a/evaluations/{evaluation.pk}/artifacts/difference.png"
    deliverable_page = as_member.get("/o/org-a/deliverables/LP-1/").content.decode()
    assert f'href="{url}"' in deliverable_page
    assert f'id="evaluation-{evaluation.pk}"' in deliverable_page

    response = as_member.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "sandbox"
    assert response.content == bytes(artifact.data)
    assert as_outsider.get(url).status_code == 404
    other_org_url = f"/o/org-b/evaluations/{evaluation.pk}/artifacts/difference.png"
    assert as_outsider.get(other_org_url).status_code == 404
    assert as_member.get(url.replace("difference.png", "other.png")).status_code == 404
    assert (
        as_member.get(f"/o/org-a/evaluations/{uuid7()}/artifacts/difference.png").status_code == 404
    )
    assert (
        as_member.get("/o/org-a/evaluations/not-a-uuid/artifacts/difference.png").status_code == 404
    )


def test_an_artifact_that_is_not_an_image_is_downloaded_not_rendered(
    org_a, client_acme, owner_map, make_gate, publish, as_member
):
    make_gate(CheckName.SCHEMA_CHECK)
    publish(org_a, published("LP-1", page("missing_jsonld.html")))
    [evaluation] = evaluations(org_a)
    with scope(organization=org_a):
        Artifact.objects.create(
            organization=org_a,
            evaluation=evaluation,
            name="page.html",
            content_type="text/html",
            data=b"<script>alert(1)</script>",
        )
    response = as_member.get(f"/o/org-a/evaluations/{evaluation.pk}/artifacts/page.html")
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == 'attachment; filename="page.html"'


def test_the_ticket_page_links_the_page_and_the_evaluation_not_the_api(
    org_a, client_acme, owner_map, make_gate, publish, as_member
):
    make_gate(CheckName.SCHEMA_CHECK)
    publish(org_a, published("LP-1", page("missing_jsonld.html")))
    [ticket] = tickets_of(org_a)
    html = as_member.get(f"/o/org-a/tickets/{ticket.pk}/").content.decode()
    assert f'href="{PAGE_URL}"' in html
    evaluation_id = ticket.context["evaluation_id"]
    assert f'href="/o/org-a/deliverables/LP-1/#evaluation-{evaluation_id}"' in html
    assert "/api/v1/evaluations/" not in html  # the API needs a key a portal user has not got


def test_only_an_http_page_url_is_kept_for_the_ticket_link(org_a, client_acme):
    with scope(organization=org_a):
        deliverable = Deliverable.objects.create(
            organization=org_a, client=client_acme, deliverable_id="LP-9", type="landing_page"
        )
        hostile = Event(
            organization=org_a,
            deliverable=deliverable,
            event_type="page.published",
            payload={"url": "javascript:alert(1)", "html": "<p>x</p>"},
        )
        assert verdicts._page_url(hostile, deliverable) == ""
        deliverable.url = "https://acme.example/lp-9"
        assert verdicts._page_url(hostile, deliverable) == "https://acme.example/lp-9"


def test_a_scope_overrun_opens_a_billable_ticket(
    org_a, client_acme, owner_map, make_gate, publish, earlier
):
    make_gate(CheckName.SCOPE_LIMITS, event_types=["asset.uploaded", "change.requested"])
    publish(
        org_a,
        event("scope.accepted", "AS-1", {"limits": {"asset_size_mb": 2}}, at=earlier(10)),
        event("asset.uploaded", "AS-1", {"asset_id": "hero", "size_bytes": 9_000_000}),
    )
    [evaluation] = evaluations(org_a)
    assert (evaluation.outcome, evaluation.billing_flag) == (Outcome.FAIL, True)
    [ticket] = tickets_of(org_a)
    assert ticket.context["billing_flag"] is True
    assert ticket.owner_role.name == "Account Manager"  # asset.uploaded: the catch-all rule


def test_scope_limits_still_see_the_scope_after_many_later_events(
    org_a, client_acme, owner_map, make_gate, publish, earlier
):
    # A live page gets a search export every day: two months later the accepted scope is
    # far behind the deliverable's latest events, and still the scope.
    make_gate(CheckName.SCOPE_LIMITS, event_types=["asset.uploaded"])
    exports = [
        event(
            "search_export.processed",
            "AS-1",
            {
                "date": f"2026-{9 + day // 30:02d}-{1 + day % 30:02d}",
                "impressions": 10,
                "clicks": 1,
            },
            at=earlier(1000 - day),
        )
        for day in range(60)
    ]
    publish(
        org_a,
        event("scope.accepted", "AS-1", {"limits": {"asset_size_mb": 2}}, at=earlier(2000)),
        *exports,
        event("asset.uploaded", "AS-1", {"asset_id": "hero", "size_bytes": 9_000_000}),
    )
    [evaluation] = evaluations(org_a)
    assert evaluation.reasons == ["Asset is 9.0 MB; the scope allows 2 MB."]
    assert (evaluation.outcome, evaluation.billing_flag) == (Outcome.FAIL, True)


# --- once per (gate, event) -----------------------------------------------------------------


def test_evaluating_the_same_gate_and_event_twice_returns_the_stored_verdict(
    org_a, client_acme, owner_map, make_gate, publish
):
    schema = make_gate(CheckName.SCHEMA_CHECK)
    [event_id] = publish(org_a, published("LP-1", page("missing_jsonld.html")))
    [stored] = evaluations(org_a)
    with scope(organization=org_a):
        again = services.evaluate(schema, Event.objects.get(pk=event_id))
        outcome = tasks.evaluate_gate(
            organization_id=org_a.pk, gate_id=schema.pk, event_id=event_id
        )
    assert again.pk == stored.pk
    assert outcome == Outcome.FAIL
    assert len(evaluations(org_a)) == 1
    assert len(tickets_of(org_a)) == 1


def test_a_duplicate_event_is_not_evaluated_again(
    org_a, client_acme, owner_map, make_gate, publish
):
    make_gate(CheckName.SCHEMA_CHECK)
    body = published("LP-1", page("missing_jsonld.html"), key="cms-evt-1")
    publish(org_a, body)
    with scope(organization=org_a):
        from deliveries.services import ingest_events

        [repeat] = ingest_events(org_a, [body])
    assert repeat.status == "duplicate"
    assert len(evaluations(org_a)) == 1


def test_every_applicable_gate_is_evaluated_once_per_event(
    org_a, client_acme, owner_map, make_gate, publish
):
    for check in (
        CheckName.SCHEMA_CHECK,
        CheckName.SEO_TAGS_PRESENT,
        CheckName.CONTENT_QUALITY_SCORE,
        CheckName.SCHEMA_VERSION,
    ):
        make_gate(check, parameters={"min_version": 2} if check == "schema_version" else {})
    publish(org_a, published("LP-1", page("product_landing.html"), schema_version=2))
    assert sorted((e.gate.check_name, e.outcome) for e in evaluations(org_a)) == [
        ("content_quality_score", "pass"),
        ("schema_check", "pass"),
        ("schema_version", "pass"),
        ("seo_tags_present", "pass"),
    ]
    assert tickets_of(org_a) == []


# --- modes and applicability ----------------------------------------------------------------


def test_monitor_mode_records_the_failure_and_opens_no_ticket(
    org_a, client_acme, owner_map, make_gate, publish
):
    make_gate(CheckName.SCHEMA_CHECK, mode=GateMode.MONITOR)
    publish(org_a, published("LP-1", page("missing_jsonld.html")))
    [evaluation] = evaluations(org_a)
    assert (evaluation.outcome, evaluation.mode) == (Outcome.MONITOR, GateMode.MONITOR)
    assert evaluation.reasons == [MISSING_JSONLD]
    assert evaluation.ticket is None
    assert tickets_of(org_a) == []


def test_monitor_mode_records_passes_as_passes(org_a, client_acme, owner_map, make_gate, publish):
    make_gate(CheckName.SCHEMA_CHECK, mode=GateMode.MONITOR)
    publish(org_a, published("LP-1", page("product_landing.html")))
    [evaluation] = evaluations(org_a)
    assert (evaluation.outcome, evaluation.mode) == (Outcome.PASS, GateMode.MONITOR)


def test_off_mode_does_not_evaluate(org_a, client_acme, owner_map, make_gate, publish):
    make_gate(CheckName.SCHEMA_CHECK, mode=GateMode.OFF)
    publish(org_a, published("LP-1", page("missing_jsonld.html")))
    assert evaluations(org_a) == []
    assert tickets_of(org_a) == []


def test_an_error_verdict_opens_no_ticket_and_resolves_nothing(
    org_a, client_acme, owner_map, make_gate, publish
):
    make_gate(CheckName.CONTENT_QUALITY_SCORE)
    publish(org_a, published("LP-1", page("thin_duplicated.html")))
    publish(org_a, event("page.published", "LP-1", {"url": PAGE_URL}))  # no html, no score
    failed, errored = evaluations(org_a)
    assert (failed.outcome, errored.outcome) == (Outcome.FAIL, Outcome.ERROR)
    assert errored.reasons == ["No quality_score and no html in the payload."]
    [ticket] = tickets_of(org_a)
    assert ticket.status == TicketStatus.OPEN


@pytest.mark.parametrize(
    "fields, evaluated",
    [
        ({}, True),
        ({"client_tiers": ["enterprise"]}, True),
        ({"client_tiers": ["standard", "premium"]}, False),
        ({"deliverable_types": ["landing_page"]}, True),
        ({"deliverable_types": ["seo_page"]}, False),
        ({"client_tiers": ["enterprise"], "deliverable_types": ["seo_page"]}, False),
        ({"event_types": ["sitemap.submitted"]}, False),
    ],
)
def test_tiers_deliverable_types_and_event_types_filter_the_gates(
    org_a, client_acme, owner_map, make_gate, publish, fields, evaluated
):
    make_gate(CheckName.SCHEMA_CHECK, **fields)
    publish(org_a, published("LP-1", page("missing_jsonld.html")))  # enterprise landing page
    assert bool(evaluations(org_a)) is evaluated


def test_the_deliverable_type_is_the_one_the_first_event_declared(
    org_a, client_acme, owner_map, make_gate, publish
):
    make_gate(CheckName.SCHEMA_CHECK, deliverable_types=["seo_page"])
    publish(
        org_a,
        published("SEO-1", page("missing_jsonld.html"), deliverable_type="seo_page"),
    )
    [evaluation] = evaluations(org_a)
    assert evaluation.deliverable.type == "seo_page"


def test_another_organizations_gates_never_run_on_our_events(
    org_a, org_b, client_acme, client_b_acme, owner_map, make_gate, publish
):
    make_gate(CheckName.SCHEMA_CHECK, organization=org_b)
    publish(org_a, published("LP-1", page("missing_jsonld.html")))
    assert evaluations(org_a) == []
    assert evaluations(org_b) == []


def test_meshline_trail_entries_do_not_trigger_gates(
    org_a, client_acme, owner_map, make_gate, publish
):
    make_gate(CheckName.SCHEMA_CHECK, event_types=["page.published", "gate.failed"])
    publish(org_a, published("LP-1", page("missing_jsonld.html")))
    assert [e.event.event_type for e in evaluations(org_a)] == ["page.published"]


# --- a ticket cannot be closed by hand while its gate still fails ---------------------------


@pytest.fixture
def failing_ticket(org_a, client_acme, owner_map, make_gate, publish):
    make_gate(CheckName.SCHEMA_CHECK)
    publish(org_a, published("LP-1", page("missing_jsonld.html")))
    [ticket] = tickets_of(org_a)
    return ticket


def test_manual_resolve_while_the_gate_still_fails_is_refused(org_a, failing_ticket, member):
    with scope(organization=org_a), pytest.raises(tickets.TicketError) as raised:
        tickets.resolve(failing_ticket, tickets.Actor.for_user(member), note="looks fine to me")
    assert raised.value.code == "gate_still_failing"
    [ticket] = tickets_of(org_a)
    assert ticket.status == TicketStatus.OPEN


def test_manual_resolve_with_a_waiver_is_allowed_and_recorded(org_a, failing_ticket, member):
    waiver = "Client hosts the JSON-LD in a tag manager; agreed with their SEO lead."
    with scope(organization=org_a):
        resolved = tickets.resolve(
            failing_ticket, tickets.Actor.for_user(member), waiver_reason=waiver
        )
    assert resolved.status == TicketStatus.RESOLVED
    assert resolved.closed_note == waiver
    with scope(organization=org_a):
        entry = Event.objects.get(
            organization=org_a, event_type="ticket.resolved", deliverable=resolved.deliverable
        )
    assert entry.payload["waiver"] == waiver
    assert (entry.actor_role, entry.actor_id) == ("user", "member@a.example")


def test_a_blank_waiver_is_no_waiver(org_a, failing_ticket, member):
    with scope(organization=org_a), pytest.raises(tickets.TicketError) as raised:
        tickets.resolve(failing_ticket, tickets.Actor.for_user(member), waiver_reason="   ")
    assert raised.value.code == "gate_still_failing"


def test_the_api_refuses_resolving_a_failing_gate_ticket_without_a_waiver(api_a, failing_ticket):
    url = f"/api/v1/tickets/{failing_ticket.pk}/resolve"
    refused = api_a.post(url, {"note": "done"}, format="json")
    assert refused.status_code == 409
    [error] = refused.json()["errors"]
    assert (error["code"], error["field"]) == ("gate_still_failing", "waiver_reason")
    waived = api_a.post(url, {"waiver_reason": "Accepted by the client"}, format="json")
    assert waived.status_code == 200, waived.json()
    assert waived.json()["status"] == "resolved"


def test_once_the_gate_passes_the_ticket_closes_without_a_waiver(org_a, failing_ticket, publish):
    publish(org_a, published("LP-1", page("product_landing.html")))
    [ticket] = tickets_of(org_a)
    assert ticket.status == TicketStatus.RESOLVED
    assert ticket.closed_note.startswith("Schema check passed on event")


def test_other_tickets_are_not_guarded(org_a, owner_map, member):
    with scope(organization=org_a):
        ticket, _ = tickets.open_ticket(
            org_a,
            source=TicketSource.MANUAL,
            source_key="manual:1",
            title="Check the hero image",
            event_type="page.published",
        )
        resolved = tickets.resolve(ticket, tickets.Actor.for_user(member))
    assert resolved.status == TicketStatus.RESOLVED


# --- failing without an owner map -----------------------------------------------------------


def test_a_failure_without_a_matching_owner_rule_is_still_recorded(
    org_a, client_acme, make_gate, publish, monkeypatch
):
    # No owner rule at all: nobody can be assigned, but the verdict must not be lost (nor
    # retried by the sweep forever).
    make_gate(CheckName.SCHEMA_CHECK)
    publish(org_a, published("LP-1", page("missing_jsonld.html")))
    [evaluation] = evaluations(org_a)
    assert evaluation.outcome == Outcome.FAIL
    assert evaluation.ticket is None
    assert evaluation.details["ticket_error"].startswith("No active rule matches")
    assert trail_types(org_a, "LP-1") == ["gate.failed"]
    # Ten minutes later the safety-net sweep looks at the event: it has its verdict.
    later = timezone.now() + timedelta(minutes=10)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert tasks.sweep_unevaluated_for(organization_id=org_a.pk) == 0


# --- the safety-net sweep -----------------------------------------------------------------------


def test_the_sweep_evaluates_what_the_broker_lost_and_only_what_applies(
    org_a, org_b, client_acme, owner_map, make_gate, publish, monkeypatch
):
    from gates import tasks as gate_tasks
    from gates.services import processing as gate_processing
    from gates.tasks import evaluate_heavy

    # Light checks are judged inside processing's transaction: nothing to lose. Heavy ones
    # are tasks on their own queue; route schema_check there to lose its task on publish.
    heavy = {*gate_processing.HEAVY_CHECKS, CheckName.SCHEMA_CHECK}
    monkeypatch.setattr(gate_processing, "HEAVY_CHECKS", heavy)
    monkeypatch.setattr(gate_tasks, "HEAVY_CHECKS", heavy)
    schema = make_gate(CheckName.SCHEMA_CHECK)
    standard_only = make_gate(CheckName.SEO_TAGS_PRESENT, client_tiers=["standard"])
    on_trail = make_gate(CheckName.SCHEMA_VERSION, slug="on-trail", event_types=["gate.failed"])
    make_gate(CheckName.SCHEMA_CHECK, organization=org_b)  # B's gate: never A's events

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    with monkeypatch.context() as broken:  # the evaluations are lost at publish time
        broken.setattr(evaluate_heavy, "apply_async", broker_down)
        publish(org_a, published("LP-1", page("missing_jsonld.html")))
    assert evaluations(org_a) == []

    later = timezone.now() + timedelta(minutes=10)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert tasks.sweep_unevaluated() == 2  # A and B each get their sweep (eager here)
    [evaluation] = evaluations(org_a)
    assert (evaluation.gate, evaluation.outcome) == (schema, Outcome.FAIL)
    # The acme page is an enterprise client's: the standard-only gate never judged it, and
    # the gate.failed trail entry is Meshline's own: neither is queued, now or later.
    assert not evaluations(org_a, gate__in=[standard_only, on_trail])
    assert tasks.sweep_unevaluated_for(organization_id=org_a.pk) == 0
    with scope(organization=org_b):
        assert not GateEvaluation.objects.filter(organization=org_b).exists()


def test_an_evaluation_queued_before_its_gate_stopped_applying_gives_no_verdict(
    org_a, client_acme, owner_map, make_gate, publish
):
    gate = make_gate(CheckName.SCHEMA_CHECK)
    with scope(organization=org_a):
        gate.mode = GateMode.OFF  # switched off while its task waited in the queue
        gate.save()
    publish(org_a, event("intake.received", "LP-1", {"requested_by": "cmo@acme.example"}))
    with scope(organization=org_a):
        page_event = Event.objects.get(organization=org_a, deliverable__deliverable_id="LP-1")
    assert (
        tasks.evaluate_gate(organization_id=org_a.pk, gate_id=gate.pk, event_id=str(page_event.pk))
        == "not applicable"
    )
    assert evaluations(org_a) == []


# --- over-strictness ------------------------------------------------------------------------


@pytest.fixture
def strict_gate(make_gate):
    return make_gate(CheckName.SCHEMA_CHECK, min_evaluations=5, max_fail_rate=0.2)


def _publish_pages(org, publish, fixtures, start=0):
    for n, fixture in enumerate(fixtures, start=start):
        publish(
            org,
            published(f"LP-{n}", page(fixture), url=f"https://acme.example/lp/page-{n}"),
        )


def test_a_gate_failing_too_often_switches_to_monitor_and_asks_for_triage(
    org_a, client_acme, owner_map, strict_gate, publish
):
    _publish_pages(
        org_a,
        publish,
        [
            "product_landing.html",
            "missing_jsonld.html",
            "product_landing.html",
            "invalid_jsonld.html",
        ],
    )
    with scope(organization=org_a):
        strict_gate.refresh_from_db()
    assert strict_gate.mode == GateMode.ENFORCE  # 4 evaluations: below the minimum of 5

    _publish_pages(org_a, publish, ["missing_required.html"], start=4)  # 3 of 5 fail
    with scope(organization=org_a):
        strict_gate.refresh_from_db()
        latest_history = strict_gate.history.first()
    assert strict_gate.mode == GateMode.MONITOR
    assert strict_gate.auto_monitored_at is not None
    assert strict_gate.auto_monitor_reason.startswith(
        "Failed 3 of 5 evaluations (60%) in the last 24 h, above 20%: switched to monitor on "
    )
    assert latest_history.history_change_reason == "auto monitor: failed 3 of 5 in 24 h"
    [triage] = tickets_of(org_a, source=TicketSource.TRIAGE)
    assert triage.title == "Triage gate 'Schema check': too many failures"
    assert triage.context["reason"] == strict_gate.auto_monitor_reason
    with scope(organization=org_a):
        assert triage.opened_by() == {
            "kind": "gate_triage",
            "gate": strict_gate.slug,
            "deliverable_id": None,
            "evaluation_id": None,
        }
    assert triage.owner_role.name == "Account Manager"  # the catch-all: no tier, no type
    assert triage.priority == "p2"

    # In monitor, failures are recorded without tickets.
    before = len(tickets_of(org_a, source=TicketSource.GATE_FAILURE))
    _publish_pages(org_a, publish, ["missing_jsonld.html"], start=5)
    assert evaluations(org_a, deliverable__deliverable_id="LP-5")[0].outcome == Outcome.MONITOR
    assert len(tickets_of(org_a, source=TicketSource.GATE_FAILURE)) == before

    # An admin restores it; the failures that tripped it do not trip it again at once.
    with scope(organization=org_a):
        services.restore_gate(strict_gate)
        strict_gate.refresh_from_db()
    assert (strict_gate.mode, strict_gate.auto_monitored_at, strict_gate.auto_monitor_reason) == (
        GateMode.ENFORCE,
        None,
        "",
    )
    _publish_pages(org_a, publish, ["product_landing.html"], start=6)
    with scope(organization=org_a):
        strict_gate.refresh_from_db()
    assert strict_gate.mode == GateMode.ENFORCE
    assert len(tickets_of(org_a, source=TicketSource.TRIAGE)) == 1


def test_a_restored_gate_that_keeps_failing_switches_again(
    org_a, client_acme, owner_map, strict_gate, publish
):
    _publish_pages(org_a, publish, ["missing_jsonld.html"] * 5)
    with scope(organization=org_a):
        strict_gate.refresh_from_db()
        assert strict_gate.mode == GateMode.MONITOR
        services.restore_gate(strict_gate)
    _publish_pages(org_a, publish, ["missing_jsonld.html"] * 5, start=5)
    with scope(organization=org_a):
        strict_gate.refresh_from_db()
    assert strict_gate.mode == GateMode.MONITOR
    assert strict_gate.auto_monitor_reason.startswith("Failed 5 of 5 evaluations")
    assert len(tickets_of(org_a, source=TicketSource.TRIAGE)) == 2  # one per switch


def test_a_fail_rate_at_the_limit_keeps_the_gate_enforced(
    org_a, client_acme, owner_map, strict_gate, publish
):
    _publish_pages(org_a, publish, ["missing_jsonld.html"] + ["product_landing.html"] * 4)
    with scope(organization=org_a):
        strict_gate.refresh_from_db()
    assert strict_gate.mode == GateMode.ENFORCE  # 1 of 5 = 20 %: not more than 20 %
    assert tickets_of(org_a, source=TicketSource.TRIAGE) == []


def test_failures_older_than_24_hours_do_not_count(
    org_a, client_acme, owner_map, strict_gate, publish
):
    with time_machine.travel(timezone.now() - timedelta(hours=25), tick=True):
        _publish_pages(org_a, publish, ["missing_jsonld.html"] * 4)
    _publish_pages(org_a, publish, ["missing_jsonld.html"], start=4)
    with scope(organization=org_a):
        strict_gate.refresh_from_db()
        assert GateEvaluation.objects.filter(gate=strict_gate).count() == 5
    assert strict_gate.mode == GateMode.ENFORCE


def test_strictness_reads_whole_minutes_from_the_counts_and_the_edge_from_evaluations(
    org_a, client_acme, owner_map, strict_gate, publish
):
    """The window's first, partial minute is counted exactly, from the evaluations; the
    rest from the per-minute counts, whether folded yet or not."""
    from gates.services import strictness

    start = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=2)
    with time_machine.travel(start + timedelta(seconds=10), tick=False):
        _publish_pages(org_a, publish, ["missing_jsonld.html"])  # in the edge minute
    with time_machine.travel(start + timedelta(seconds=50), tick=False):
        _publish_pages(org_a, publish, ["missing_jsonld.html"], start=1)  # edge, after since
    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        _publish_pages(org_a, publish, ["product_landing.html"] * 2, start=2)
    with scope(organization=org_a):
        since = start + timedelta(seconds=30)
        assert strictness.verdict_counts(strict_gate, since) == (3, 1)
        assert strictness.verdict_counts(strict_gate, start) == (4, 2)
        assert strictness.compact(org_a) > 0  # folded: the same answers
        assert strictness.verdict_counts(strict_gate, since) == (3, 1)
        assert strictness.verdict_counts(strict_gate, start) == (4, 2)
        assert strictness.compact(org_a) == 0
        # Days later the folded minutes are dropped: nothing reads them any more.
        strictness.compact(org_a, now=start + timedelta(days=3))
        assert not GateVerdictCount.objects.filter(organization=org_a).exists()


def test_strictness_of_a_batchs_gates_is_read_at_once_each_from_its_own_moment(
    org_a, client_acme, owner_map, make_gate, publish
):
    """Two gates judging the same pages, counted from different moments in one call: each
    gets its own numbers, and the rates of any number of gates cost three statements."""
    from gates.services import strictness

    lenient = {"min_evaluations": 5, "max_fail_rate": 0.9}  # counted, never switched here
    first = make_gate(CheckName.SCHEMA_CHECK, slug="schema-a", **lenient)
    second = make_gate(CheckName.SCHEMA_CHECK, slug="schema-b", **lenient)
    third = make_gate(CheckName.SEO_TAGS_PRESENT, slug="seo", **lenient)
    start = timezone.now().replace(second=0, microsecond=0) - timedelta(hours=2)
    with time_machine.travel(start + timedelta(seconds=10), tick=False):
        _publish_pages(org_a, publish, ["missing_jsonld.html"])
    with time_machine.travel(start + timedelta(seconds=50), tick=False):
        _publish_pages(org_a, publish, ["missing_jsonld.html"], start=1)
    with time_machine.travel(start + timedelta(minutes=5), tick=False):
        _publish_pages(org_a, publish, ["product_landing.html"] * 2, start=2)

    with scope(organization=org_a):
        since = start + timedelta(seconds=30)
        with CaptureQueriesContext(connection) as counting:
            counts = strictness.verdict_counts_many({first: since, second: start})
        assert counts == {first.pk: (3, 1), second.pk: (4, 2)}
        assert len(counting.captured_queries) == 2
        with CaptureQueriesContext(connection) as one:
            assert strictness.check_strictness_many([first]) == []
        with CaptureQueriesContext(connection) as three:
            assert strictness.check_strictness_many([first, second, third]) == []
    assert len(one.captured_queries) == len(three.captured_queries) == 3


def test_a_gate_switches_to_monitor_even_when_no_owner_rule_can_take_the_triage(
    org_a, client_acme, owner_map, strict_gate, publish
):
    # Only the enterprise page.published rule is left: the triage ticket (no client, no
    # deliverable) matches nothing. The gate must stop flooding people all the same.
    with scope(organization=org_a):
        OwnerRule.objects.filter(organization=org_a, client_tier="").delete()
    _publish_pages(org_a, publish, ["missing_jsonld.html"] * 5)
    with scope(organization=org_a):
        strict_gate.refresh_from_db()
    assert strict_gate.mode == GateMode.MONITOR
    assert "No triage ticket" in strict_gate.auto_monitor_reason
    assert tickets_of(org_a, source=TicketSource.TRIAGE) == []


# --- sitemap_sync ---------------------------------------------------------------------------


@pytest.fixture
def sitemap_gate(make_gate):
    return make_gate(
        CheckName.SITEMAP_SYNC, name="Sitemap within 24 h", parameters={"deadline_hours": 24}
    )


def sitemap(urls, *, at=None, ref="SITEMAP-acme"):
    return event(
        "sitemap.submitted",
        ref,
        {"sitemap_url": "https://acme.example/sitemap.xml", "urls": urls},
        at=at,
    )


def timers(organization):
    with scope(organization=organization):
        return list(SitemapTimer.objects.filter(organization=organization).order_by("pk"))


def test_page_published_starts_a_timer_and_a_sitemap_in_time_passes(
    org_a, client_acme, owner_map, sitemap_gate, publish, earlier
):
    [page_id] = publish(org_a, published("LP-1", page("product_landing.html"), at=earlier(120)))
    [timer] = timers(org_a)
    assert (timer.status, timer.url) == (TimerStatus.WAITING, PAGE_URL)
    assert str(timer.started_by_id) == page_id
    with scope(organization=org_a):
        assert timer.due_at == Event.objects.get(pk=page_id).occurred_at + timedelta(hours=24)
    assert evaluations(org_a) == []  # nothing to say until the sitemap or the deadline

    [sitemap_id] = publish(org_a, sitemap([PAGE_URL, "https://acme.example/"], at=earlier(60)))
    [timer] = timers(org_a)
    assert timer.status == TimerStatus.SATISFIED
    assert str(timer.settled_by_id) == sitemap_id
    [evaluation] = evaluations(org_a)
    assert evaluation.outcome == Outcome.PASS
    assert str(evaluation.event_id) == sitemap_id
    assert evaluation.deliverable.deliverable_id == "LP-1"  # the page, not the sitemap

    with scope(organization=org_a):
        expired = services.expire_sitemap_timers(org_a, now=timezone.now() + timedelta(days=2))
    assert expired == 0
    assert len(evaluations(org_a)) == 1


def test_a_sitemap_without_the_url_does_not_satisfy_the_timer(
    org_a, client_acme, owner_map, sitemap_gate, publish, earlier
):
    publish(org_a, published("LP-1", page("product_landing.html"), at=earlier(120)))
    publish(org_a, sitemap(["https://acme.example/lp/other"], at=earlier(60)))
    [timer] = timers(org_a)
    assert timer.status == TimerStatus.WAITING
    assert evaluations(org_a) == []


def test_a_late_sitemap_does_not_satisfy_and_the_expiry_fails_the_gate_once(
    org_a, client_acme, owner_map, sitemap_gate, publish, earlier
):
    publish(org_a, published("LP-1", page("product_landing.html"), at=earlier(30 * 60)))
    publish(org_a, sitemap([PAGE_URL], at=earlier(5)))  # 30 h later: 6 h too late
    [timer] = timers(org_a)
    assert timer.status == TimerStatus.WAITING
    assert evaluations(org_a) == []

    with scope(organization=org_a):
        assert services.expire_sitemap_timers(org_a) == 1
        assert services.expire_sitemap_timers(org_a) == 0  # running twice does not double
    [timer] = timers(org_a)
    assert timer.status == TimerStatus.EXPIRED
    [evaluation] = evaluations(org_a)
    assert evaluation.outcome == Outcome.FAIL
    assert evaluation.event_id == timer.started_by_id
    assert evaluation.reasons == [
        f"No sitemap listing {PAGE_URL} arrived by {timer.due_at:%Y-%m-%d %H:%M} UTC."
    ]
    [ticket] = tickets_of(org_a)
    assert ticket.title == "Sitemap within 24 h failed for LP-1"
    assert ticket.context["remediation"] == PLAYBOOK
    assert ticket.context["artifacts"] == ["sitemap listing"]
    assert ticket.context["page_url"] == PAGE_URL


def test_a_sitemap_processed_in_the_same_batch_as_its_page_settles_its_timer(
    org_a, client_acme, owner_map, sitemap_gate, publish, earlier
):
    """One batch: the page's timer is started before the batch's sitemaps settle timers."""
    page_id, sitemap_id = publish(
        org_a,
        published("LP-1", page("product_landing.html"), at=earlier(120)),
        sitemap([PAGE_URL], at=earlier(60)),
    )
    [timer] = timers(org_a)
    assert (timer.status, str(timer.started_by_id)) == (TimerStatus.SATISFIED, page_id)
    assert str(timer.settled_by_id) == sitemap_id
    [evaluation] = evaluations(org_a)
    assert (evaluation.outcome, str(evaluation.event_id)) == (Outcome.PASS, sitemap_id)


def test_one_sitemap_settles_every_listed_page_and_a_pass_resolves_the_expiry_ticket(
    org_a, client_acme, owner_map, sitemap_gate, publish, earlier
):
    """LP-1's first timer expired (a ticket); its republish and LP-2 are then listed by one
    sitemap: both timers pass, and LP-1's pass resolves its ticket."""
    other = "https://acme.example/lp/two"
    publish(org_a, published("LP-1", page("product_landing.html"), at=earlier(30 * 60)))
    with scope(organization=org_a):
        assert services.expire_sitemap_timers(org_a) == 1
    [ticket] = tickets_of(org_a)
    assert ticket.status == TicketStatus.OPEN
    publish(
        org_a,
        published("LP-1", page("product_landing.html"), at=earlier(120), key="lp1-again"),
        published("LP-2", page("product_landing.html"), url=other, at=earlier(110)),
    )
    [sitemap_id] = publish(org_a, sitemap([PAGE_URL, other], at=earlier(60)))
    statuses = [t.status for t in timers(org_a)]
    assert statuses == [TimerStatus.EXPIRED, TimerStatus.SATISFIED, TimerStatus.SATISFIED]
    passes = [e for e in evaluations(org_a) if str(e.event_id) == sitemap_id]
    assert sorted(e.deliverable.deliverable_id for e in passes) == ["LP-1", "LP-2"]
    assert {e.outcome for e in passes} == {Outcome.PASS}
    with scope(organization=org_a):
        ticket.refresh_from_db()
    assert ticket.status == TicketStatus.RESOLVED


def test_timers_expire_only_after_their_deadline(
    org_a, client_acme, owner_map, sitemap_gate, publish, earlier
):
    publish(org_a, published("LP-1", page("product_landing.html"), at=earlier(60)))
    [timer] = timers(org_a)
    with scope(organization=org_a):
        assert services.expire_sitemap_timers(org_a) == 0
        assert services.expire_sitemap_timers(org_a, now=timer.due_at - timedelta(seconds=1)) == 0
        assert services.expire_sitemap_timers(org_a, now=timer.due_at) == 1


def test_the_timer_sweep_task_expires_overdue_timers_per_organization(
    org_a, client_acme, owner_map, sitemap_gate, publish, earlier
):
    publish(org_a, published("LP-1", page("product_landing.html"), at=earlier(25 * 60)))
    assert tasks.timer_sweep() == 1
    assert tasks.timer_sweep() == 0
    [evaluation] = evaluations(org_a)
    assert evaluation.outcome == Outcome.FAIL


def test_sitemap_expiries_count_towards_over_strictness(
    org_a, client_acme, owner_map, make_gate, publish, earlier
):
    gate = make_gate(
        CheckName.SITEMAP_SYNC,
        parameters={"deadline_hours": 24},
        min_evaluations=3,
        max_fail_rate=0.2,
    )
    for n in range(3):
        publish(
            org_a,
            published(
                f"LP-{n}",
                page("product_landing.html"),
                url=f"https://acme.example/lp/{n}",
                at=earlier(25 * 60),
            ),
        )
    with scope(organization=org_a):
        assert services.expire_sitemap_timers(org_a) == 3
        gate.refresh_from_db()
    assert gate.mode == GateMode.MONITOR
    assert "Failed 3 of 3 evaluations" in gate.auto_monitor_reason
    assert len(tickets_of(org_a, source=TicketSource.TRIAGE)) == 1


def test_republishing_the_same_page_event_starts_one_timer(
    org_a, client_acme, owner_map, sitemap_gate, publish
):
    body = published("LP-1", page("product_landing.html"), key="cms-1")
    publish(org_a, body)
    with scope(organization=org_a):
        from deliveries.services import process_event

        event_id = Event.objects.get(idempotency_key="cms-1").pk
        process_event(event_id)  # a redelivered task
        services.start_sitemap_timer(
            sitemap_gate,
            Event.objects.get(pk=event_id),
            Deliverable.objects.get(deliverable_id="LP-1"),
        )
    assert len(timers(org_a)) == 1


# --- visibility: the trail API and the portal page ------------------------------------------


@pytest.fixture
def failed_then_fixed(org_a, client_acme, owner_map, make_gate, publish, earlier):
    make_gate(CheckName.SCHEMA_CHECK, name="Schema.org JSON-LD")
    publish(org_a, published("LP-2041", page("missing_jsonld.html"), at=earlier(20)))
    publish(org_a, published("LP-2041", page("product_landing.html"), at=earlier(10)))
    return evaluations(org_a)


def test_the_trail_api_lists_gate_evaluations_and_tickets(api_a, failed_then_fixed):
    response = api_a.get("/api/v1/deliverables/LP-2041/trail")
    assert response.status_code == 200, response.json()
    data = response.json()
    failed, passed = failed_then_fixed
    assert [(e["id"], e["gate"], e["outcome"]) for e in data["gate_evaluations"]] == [
        (str(failed.pk), "schema-check", "fail"),
        (str(passed.pk), "schema-check", "pass"),
    ]
    assert data["gate_evaluations"][0]["reasons"] == [MISSING_JSONLD]
    assert data["gate_evaluations"][0]["ticket_id"] == str(failed.ticket_id)
    assert data["gate_evaluations"][0]["check"] == "schema_check"
    [ticket] = data["tickets"]
    assert (ticket["id"], ticket["status"], ticket["owner_role"]) == (
        str(failed.ticket_id),
        "resolved",
        "seo-delivery-owner",
    )
    assert ticket["assignee"] == "member@a.example"
    assert {"gate.failed", "ticket.opened", "ticket.resolved", "gate.passed"} <= {
        e["event_type"] for e in data["results"]
    }


def test_the_trail_api_hides_another_organizations_deliverable(api_b, failed_then_fixed):
    assert api_b.get("/api/v1/deliverables/LP-2041/trail").status_code == 404


def test_the_portal_deliverable_page_shows_evaluations_and_tickets(
    client, owner, failed_then_fixed
):
    client.force_login(owner)
    response = client.get("/o/org-a/deliverables/LP-2041/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Gate evaluations" in html
    assert "Schema.org JSON-LD" in html
    assert "No schema.org JSON-LD (&lt;script type=&quot;application/ld+json&quot;&gt;)" in html
    assert "outcome-fail" in html and "outcome-pass" in html
    assert "Schema.org JSON-LD failed for LP-2041" in html  # the ticket
    assert "SEO Delivery Owner" in html
    assert '<script type="application/ld+json">' not in html  # reasons are escaped


def test_the_portal_deliverable_page_is_404_for_an_outsider(client, outsider, failed_then_fixed):
    client.force_login(outsider)
    assert client.get("/o/org-a/deliverables/LP-2041/").status_code == 404


def test_gate_rows_are_tenant_scoped(org_a, make_gate):
    from django_scopes.exceptions import ScopeError

    make_gate(CheckName.SCHEMA_CHECK)
    with pytest.raises(ScopeError):
        list(Gate.objects.all())


def test_checks_that_read_no_history_cost_no_history_query(
    org_a, client_acme, owner_map, make_gate, publish, django_assert_num_queries
):
    """The history's payloads are whole pages and screenshots: load them only for the
    checks that read them (screenshot baselines, accepted scopes)."""
    schema = make_gate(CheckName.SCHEMA_CHECK)
    screenshots = make_gate(CheckName.SCREENSHOT_REGRESSION, slug="shots", mode=GateMode.OFF)
    [event_id] = publish(org_a, published("LP-1", page("product_landing.html")))
    with scope(organization=org_a):
        stored = Event.objects.get(pk=event_id)
        assert services.history_types(schema) == set()
        with django_assert_num_queries(0):
            assert services.history_for(stored, services.history_types(schema)) == ()
        assert services.history_types(screenshots) == {"page.published"}
        with django_assert_num_queries(1):
            services.history_for(stored, services.history_types(screenshots))


def test_a_replayed_event_gets_no_second_verdict_nor_a_queued_heavy_check(
    org_a, screenshot_failure, make_gate, replay_events, monkeypatch
):
    make_gate(CheckName.SCHEMA_CHECK, slug="jsonld")
    with scope(organization=org_a):
        event_ids = [str(screenshot_failure.event_id)]
    queued = []
    monkeypatch.setattr(tasks.evaluate_heavy, "publish", lambda **kw: queued.append(kw) or True)
    monkeypatch.setattr(tasks.evaluate_gate, "publish", lambda **kw: queued.append(kw) or True)
    before = [(e.gate.slug, e.outcome) for e in evaluations(org_a)]
    outcome = replay_events(org_a, event_ids)
    assert (outcome.replayed, queued) == (1, [])
    # The JSON-LD gate, added since, judges the replayed page once; the screenshot's
    # verdict and ticket stay as they were.
    after = [(e.gate.slug, e.outcome) for e in evaluations(org_a)]
    assert sorted(after) == sorted([*before, ("jsonld", Outcome.PASS)])
    replay_events(org_a, event_ids)
    assert sorted((e.gate.slug, e.outcome) for e in evaluations(org_a)) == sorted(after)
    assert [t.status for t in tickets_of(org_a)] == [TicketStatus.OPEN]


def test_a_pass_on_an_older_event_leaves_the_ticket_of_a_later_failure_open(
    org_a, client_acme, owner_map, make_gate, publish, earlier
):
    """Events arrive out of order (or are replayed): the older page passing says nothing
    about the newer one that failed. It used to resolve that ticket (or, evaluated in the
    same instant, trip the still-failing guard and record no verdict at all)."""
    make_gate(CheckName.SCHEMA_CHECK)
    publish(org_a, published("LP-1", page("missing_jsonld.html"), at=earlier(10)))
    publish(org_a, published("LP-1", page("product_landing.html"), at=earlier(20)))
    assert sorted(e.outcome for e in evaluations(org_a)) == [Outcome.FAIL, Outcome.PASS]
    assert [t.status for t in tickets_of(org_a)] == [TicketStatus.OPEN]
    publish(org_a, published("LP-1", page("product_landing.html"), at=earlier(5)))
    assert [t.status for t in tickets_of(org_a)] == [TicketStatus.RESOLVED]
