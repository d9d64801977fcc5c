"""The synthetic harness: emit test events through the real pipeline, assert each gate.

Runs in a dedicated organization (``gate-smoke`` by default): it creates a client, an
owner role with a catch-all rule and one enforced gate per built-in check there, then
submits passing and failing events through ``ingest_events`` exactly as the API does, and
checks the verdicts, tickets and billing flags that come out of processing.

With eager tasks (no broker configured) processing happens inside ``ingest_events``. With
a broker, a worker does it: the harness then waits (up to ``timeout`` seconds per step)
for each verdict it is about to check, so it proves the deployed pipeline end to end.
"""

import base64
import io
import time
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone
from django_scopes import scope
from PIL import Image, ImageDraw

from deliveries.models import Client, Tier
from deliveries.services import ingest_events
from deliveries.services.ingest import Status
from gates.models import CheckName, Gate, GateEvaluation, GateMode, Outcome, SitemapTimer
from gates.services import expire_sitemap_timers
from meshline.services import create_organization
from owners.models import OwnerRole, OwnerRule, Ticket

CLIENT = "smoke-client"
# One enforced gate per built-in check: (event types, parameters). bench/gates.py uses them too.
GATE_SPECS = {
    CheckName.SCHEMA_CHECK: (["page.published"], {}),
    CheckName.SEO_TAGS_PRESENT: (["page.published"], {}),
    CheckName.SCHEMA_VERSION: (["page.published"], {"min_version": 2}),
    CheckName.CONTENT_QUALITY_SCORE: (["page.published"], {"threshold": 50}),
    CheckName.SCREENSHOT_REGRESSION: (["page.published"], {"threshold_percent": 5}),
    CheckName.SITEMAP_SYNC: (["page.published"], {"deadline_hours": 24}),
    CheckName.SCOPE_LIMITS: (["asset.uploaded", "change.requested"], {}),
}

GOOD_HTML = """<!doctype html><html><head><title>Spring trail shoes | Acme Outdoor</title>
<meta name="description" content="Lightweight trail shoes for spring hikes: fit guide, sizes and care, from the Acme Outdoor team.">
<link rel="canonical" href="https://smoke.example/spring">
<meta property="og:title" content="Spring trail shoes"><meta property="og:description" content="Lightweight trail shoes">
<meta property="og:image" content="https://smoke.example/cover.jpg">
<script type="application/ld+json">{"@context": "https://schema.org", "@type": "Product", "name": "Trail shoe", "offers": {"@type": "Offer", "price": "89.00"}}</script>
</head><body><h1>Spring trail shoes</h1><h2>Fit</h2>
<p>Our spring trail shoe is light and firm. It grips wet rock well. You can wear it all day.</p>
<p>Pick your usual size. If you are between sizes, pick the larger one for long hikes.</p>
</body></html>"""
BAD_HTML = "<html><head><title>x</title></head><body><p>Nothing here.</p></body></html>"


def _png(color: str, box: bool = False) -> str:
    image = Image.new("RGB", (320, 200), color)
    if box:
        ImageDraw.Draw(image).rectangle([40, 40, 280, 160], fill="black")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@dataclass
class Case:
    check: str
    name: str
    expected: str
    got: str = ""
    ticket: str = ""
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.expected == self.got


def _setup(organization):
    Client.objects.update_or_create(
        organization=organization,
        client_id=CLIENT,
        defaults={"name": "Smoke Client", "tier": Tier.STANDARD},
    )
    role, _ = OwnerRole.objects.get_or_create(
        organization=organization,
        slug="seo-delivery-owner",
        defaults={"name": "SEO Delivery Owner"},
    )
    if not OwnerRule.objects.filter(
        organization=organization, event_type="", client_tier="", deliverable_type=""
    ).exists():
        OwnerRule.objects.create(organization=organization, owner_role=role, position=1000)
    for check, (event_types, parameters) in GATE_SPECS.items():
        Gate.objects.update_or_create(
            organization=organization,
            slug=f"smoke-{check.replace('_', '-')}",
            defaults={
                "name": f"Smoke: {check.label}",
                "check_name": check,
                "event_types": event_types,
                "parameters": parameters,
                "mode": GateMode.ENFORCE,
                "min_evaluations": 10**6,
                "playbook": f"Fix the {check.label.lower()} problem and resubmit.",
            },
        )


def _event(event_type, ref, key, payload, at):
    return {
        "event_type": event_type,
        "deliverable_id": ref,
        "client_id": CLIENT,
        "idempotency_key": key,
        "actor": {"role": "smoke", "id": "gate_smoke"},
        "occurred_at": at.isoformat(),
        "payload": payload,
    }


def _verdict(organization, check, ref):
    evaluation = (
        GateEvaluation.objects.filter(
            organization=organization, gate__check_name=check, deliverable__deliverable_id=ref
        )
        .order_by("-evaluated_at")
        .select_related("ticket")
        .first()
    )
    if evaluation is None:
        return "none", "", ""
    ticket = evaluation.ticket
    return evaluation.outcome, (ticket.status if ticket else ""), "; ".join(evaluation.reasons)[:80]


def _settled(predicate, timeout: float) -> bool:
    """Poll until the pipeline has done what ``predicate`` looks for (eager: at once)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _evaluated(organization, refs, checks, at_least: int = 1):
    def predicate() -> bool:
        found = GateEvaluation.objects.filter(
            organization=organization,
            deliverable__deliverable_id__in=refs,
            gate__check_name__in=checks,
        ).count()
        return found >= at_least * len(refs) * len(checks)

    return predicate


def run(slug: str = "gate-smoke", timeout: float = 30) -> list[Case]:
    organization, _ = create_organization(slug, "Gate smoke harness")
    run_id = timezone.now().strftime("%Y%m%d%H%M%S%f")
    now = timezone.now()
    cases: list[Case] = []
    late: list[str] = []  # steps whose verdicts had not arrived when the wait ran out

    def wait(step: str, predicate) -> None:
        if not _settled(predicate, timeout):
            late.append(step)

    with scope(organization=organization):
        _setup(organization)

        def submit(events):
            results = ingest_events(organization, events)
            rejected = [r.as_dict() for r in results if r.status == Status.REJECTED]
            if rejected:
                raise RuntimeError(f"smoke events rejected: {rejected}")

        def ref(name):
            return f"SMOKE-{name}-{run_id}"

        page = {
            "url": "https://smoke.example/spring",
            "html": GOOD_HTML,
            "schema_version": 2,
            "quality_score": 90,
            "screenshot": _png("white"),
            "baseline_screenshot": _png("white"),
        }
        bad_page = {
            "url": "https://smoke.example/broken",
            "html": BAD_HTML,
            "schema_version": 1,
            "quality_score": 10,
            "screenshot": _png("white", box=True),
            "baseline_screenshot": _png("white"),
        }
        submit([_event("page.published", ref("good"), f"{ref('good')}-pub", page, now)])
        submit([_event("page.published", ref("bad"), f"{ref('bad')}-pub", bad_page, now)])
        page_checks = (
            CheckName.SCHEMA_CHECK,
            CheckName.SEO_TAGS_PRESENT,
            CheckName.SCHEMA_VERSION,
            CheckName.CONTENT_QUALITY_SCORE,
            CheckName.SCREENSHOT_REGRESSION,
        )
        wait("page verdicts", _evaluated(organization, [ref("good"), ref("bad")], page_checks))
        for check in page_checks:
            for name, expected, ticket in (
                ("good", Outcome.PASS, ""),
                ("bad", Outcome.FAIL, "open"),
            ):
                got, status, detail = _verdict(organization, check, ref(name))
                cases.append(
                    Case(
                        check,
                        f"{name} page",
                        f"{expected}/{ticket or '-'}",
                        f"{got}/{status or '-'}",
                        status,
                        detail,
                    )
                )
        # Fixing the page and publishing again resolves the schema_check ticket.
        submit(
            [
                _event(
                    "page.published",
                    ref("bad"),
                    f"{ref('bad')}-fixed",
                    page,
                    now + timedelta(minutes=5),
                )
            ]
        )
        wait(
            "republished page", _evaluated(organization, [ref("bad")], [CheckName.SCHEMA_CHECK], 2)
        )
        ticket = Ticket.objects.filter(
            organization=organization,
            deliverable__deliverable_id=ref("bad"),
            context__check=CheckName.SCHEMA_CHECK,
        ).first()
        cases.append(
            Case(
                CheckName.SCHEMA_CHECK,
                "fixed and republished",
                "resolved",
                ticket.status if ticket else "no ticket",
            )
        )
        # Sitemap: listed in time passes; a deadline that passed fails when timers expire.
        submit(
            [
                _event(
                    "sitemap.submitted",
                    ref("good"),
                    f"{ref('good')}-sitemap",
                    {
                        "sitemap_url": "https://smoke.example/sitemap.xml",
                        "urls": ["https://smoke.example/spring"],
                    },
                    now + timedelta(hours=1),
                )
            ]
        )
        wait("sitemap", _evaluated(organization, [ref("good")], [CheckName.SITEMAP_SYNC]))
        got, status, detail = _verdict(organization, CheckName.SITEMAP_SYNC, ref("good"))
        cases.append(
            Case(
                CheckName.SITEMAP_SYNC,
                "listed within 24 h",
                "pass/-",
                f"{got}/{status or '-'}",
                status,
                detail,
            )
        )
        late_url = f"https://smoke.example/late-{run_id}"
        submit(
            [
                _event(
                    "page.published",
                    ref("late"),
                    f"{ref('late')}-pub",
                    {**page, "url": late_url},
                    now - timedelta(hours=25),
                )
            ]
        )
        wait(  # the page's processing starts its timer
            "late page's timer",
            lambda: SitemapTimer.objects.filter(
                organization=organization, deliverable__deliverable_id=ref("late")
            ).exists(),
        )
        expire_sitemap_timers(organization, now=now)
        got, status, detail = _verdict(organization, CheckName.SITEMAP_SYNC, ref("late"))
        cases.append(
            Case(
                CheckName.SITEMAP_SYNC,
                "not listed after 24 h",
                "fail/open",
                f"{got}/{status or '-'}",
                status,
                detail,
            )
        )
        # Scope: an asset within the accepted size passes; a larger one fails, billable.
        scope_payload = {"limits": {"asset_size_mb": 2, "revisions": 1}}
        for name, size in (("small", 500_000), ("large", 9_000_000)):
            submit(
                [
                    _event("scope.accepted", ref(name), f"{ref(name)}-scope", scope_payload, now),
                    _event(
                        "asset.uploaded",
                        ref(name),
                        f"{ref(name)}-asset",
                        {"asset_id": "hero", "size_bytes": size},
                        now + timedelta(minutes=1),
                    ),
                ]
            )
        wait(
            "scope verdicts",
            _evaluated(organization, [ref("small"), ref("large")], [CheckName.SCOPE_LIMITS]),
        )
        got, status, detail = _verdict(organization, CheckName.SCOPE_LIMITS, ref("small"))
        cases.append(
            Case(
                CheckName.SCOPE_LIMITS,
                "asset within scope",
                "pass/-",
                f"{got}/{status or '-'}",
                status,
                detail,
            )
        )
        evaluation = GateEvaluation.objects.filter(
            organization=organization,
            gate__check_name=CheckName.SCOPE_LIMITS,
            deliverable__deliverable_id=ref("large"),
        ).first()
        got = (
            f"{evaluation.outcome}/{'billable' if evaluation.billing_flag else 'not billable'}"
            if evaluation
            else "none"
        )
        cases.append(
            Case(
                CheckName.SCOPE_LIMITS,
                "asset over scope",
                "fail/billable",
                got,
                evaluation.ticket.status if evaluation and evaluation.ticket else "",
                "; ".join(evaluation.reasons)[:80] if evaluation else "",
            )
        )
    if late:  # say why the cases after them fail: the pipeline, not the gates
        cases.append(
            Case(
                "pipeline",
                "verdicts within the timeout",
                "yes",
                "timed out",
                detail=f"no verdicts after {timeout:g} s for: {', '.join(late)}; "
                "is a worker consuming the queue?",
            )
        )
    return cases
