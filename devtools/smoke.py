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
from devtools.factories import OwnerRoleFactory, OwnerRuleFactory
from gates.models import CheckName, Gate, GateEvaluation, GateMode, Outcome, SitemapTimer
from gates.services import expire_sitemap_timers
from meshline.services import create_organization
from owners.models import OwnerRule, Ticket

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
    role = OwnerRoleFactory(
        organization=organization, slug="seo-delivery-owner", name="SEO Delivery Owner"
    )
    if not OwnerRule.objects.filter(
        organization=organization, event_type="", client_tier="", deliverable_type=""
    ).exists():
        OwnerRuleFactory(organization=organization, owner_role=role, position=1000)
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


class _Harness:
    """One run's state: its organization, references, clock, cases and late steps."""

    def __init__(self, organization, timeout: float):
        self.organization = organization
        self.timeout = timeout
        self.run_id = timezone.now().strftime("%Y%m%d%H%M%S%f")
        self.now = timezone.now()
        self.cases: list[Case] = []
        self.late: list[str] = []  # steps whose verdicts had not arrived when the wait ran out

    def ref(self, name: str) -> str:
        return f"SMOKE-{name}-{self.run_id}"

    def submit(self, events) -> None:
        results = ingest_events(self.organization, events)
        rejected = [r.as_dict() for r in results if r.status == Status.REJECTED]
        if rejected:
            raise RuntimeError(f"smoke events rejected: {rejected}")

    def publish(self, name: str, key: str, payload: dict, at) -> None:
        ref = self.ref(name)
        self.submit([_event("page.published", ref, f"{ref}-{key}", payload, at)])

    def wait(self, step: str, predicate) -> None:
        if not _settled(predicate, self.timeout):
            self.late.append(step)

    def expect(self, check, name: str, case: str, expected: str) -> None:
        """Add a case comparing ``outcome/ticket status`` of ``check`` on ``name``."""
        got, status, detail = _verdict(self.organization, check, self.ref(name))
        self.cases.append(Case(check, case, expected, f"{got}/{status or '-'}", status, detail))


PAGE_CHECKS = (
    CheckName.SCHEMA_CHECK,
    CheckName.SEO_TAGS_PRESENT,
    CheckName.SCHEMA_VERSION,
    CheckName.CONTENT_QUALITY_SCORE,
    CheckName.SCREENSHOT_REGRESSION,
)
GOOD_PAGE = {
    "url": "https://smoke.example/spring",
    "html": GOOD_HTML,
    "schema_version": 2,
    "quality_score": 90,
}
BAD_PAGE = {
    "url": "https://smoke.example/broken",
    "html": BAD_HTML,
    "schema_version": 1,
    "quality_score": 10,
}


def _pages(h: _Harness) -> dict:
    """A good page passes every page check; a bad one fails each and opens a ticket."""
    page = {**GOOD_PAGE, "screenshot": _png("white"), "baseline_screenshot": _png("white")}
    bad_page = {
        **BAD_PAGE,
        "screenshot": _png("white", box=True),
        "baseline_screenshot": _png("white"),
    }
    h.publish("good", "pub", page, h.now)
    h.publish("bad", "pub", bad_page, h.now)
    h.wait("page verdicts", _evaluated(h.organization, [h.ref("good"), h.ref("bad")], PAGE_CHECKS))
    for check in PAGE_CHECKS:
        h.expect(check, "good", "good page", f"{Outcome.PASS}/-")
        h.expect(check, "bad", "bad page", f"{Outcome.FAIL}/open")
    return page


def _republish(h: _Harness, page: dict) -> None:
    """Fixing the page and publishing again resolves the schema_check ticket."""
    h.publish("bad", "fixed", page, h.now + timedelta(minutes=5))
    h.wait(
        "republished page",
        _evaluated(h.organization, [h.ref("bad")], [CheckName.SCHEMA_CHECK], 2),
    )
    ticket = Ticket.objects.filter(
        organization=h.organization,
        deliverable__deliverable_id=h.ref("bad"),
        context__check=CheckName.SCHEMA_CHECK,
    ).first()
    h.cases.append(
        Case(
            CheckName.SCHEMA_CHECK,
            "fixed and republished",
            "resolved",
            ticket.status if ticket else "no ticket",
        )
    )


def _sitemap(h: _Harness, page: dict) -> None:
    """Listed in time passes; a deadline that passed fails when timers expire."""
    good = h.ref("good")
    sitemap = {"sitemap_url": "https://smoke.example/sitemap.xml", "urls": [GOOD_PAGE["url"]]}
    h.submit(
        [_event("sitemap.submitted", good, f"{good}-sitemap", sitemap, h.now + timedelta(hours=1))]
    )
    h.wait("sitemap", _evaluated(h.organization, [good], [CheckName.SITEMAP_SYNC]))
    h.expect(CheckName.SITEMAP_SYNC, "good", "listed within 24 h", "pass/-")
    late_page = {**page, "url": f"https://smoke.example/late-{h.run_id}"}
    h.publish("late", "pub", late_page, h.now - timedelta(hours=25))
    h.wait(  # the page's processing starts its timer
        "late page's timer",
        lambda: SitemapTimer.objects.filter(
            organization=h.organization, deliverable__deliverable_id=h.ref("late")
        ).exists(),
    )
    expire_sitemap_timers(h.organization, now=h.now)
    h.expect(CheckName.SITEMAP_SYNC, "late", "not listed after 24 h", "fail/open")


def _scope(h: _Harness) -> None:
    """An asset within the accepted size passes; a larger one fails, billable."""
    scope_payload = {"limits": {"asset_size_mb": 2, "revisions": 1}}
    for name, size in (("small", 500_000), ("large", 9_000_000)):
        ref = h.ref(name)
        h.submit(
            [
                _event("scope.accepted", ref, f"{ref}-scope", scope_payload, h.now),
                _event(
                    "asset.uploaded",
                    ref,
                    f"{ref}-asset",
                    {"asset_id": "hero", "size_bytes": size},
                    h.now + timedelta(minutes=1),
                ),
            ]
        )
    h.wait(
        "scope verdicts",
        _evaluated(h.organization, [h.ref("small"), h.ref("large")], [CheckName.SCOPE_LIMITS]),
    )
    h.expect(CheckName.SCOPE_LIMITS, "small", "asset within scope", "pass/-")
    evaluation = GateEvaluation.objects.filter(
        organization=h.organization,
        gate__check_name=CheckName.SCOPE_LIMITS,
        deliverable__deliverable_id=h.ref("large"),
    ).first()
    got = (
        f"{evaluation.outcome}/{'billable' if evaluation.billing_flag else 'not billable'}"
        if evaluation
        else "none"
    )
    h.cases.append(
        Case(
            CheckName.SCOPE_LIMITS,
            "asset over scope",
            "fail/billable",
            got,
            evaluation.ticket.status if evaluation and evaluation.ticket else "",
            "; ".join(evaluation.reasons)[:80] if evaluation else "",
        )
    )


def run(slug: str = "gate-smoke", timeout: float = 30) -> list[Case]:
    """Run every step in a dedicated organization; one Case per expectation."""
    organization, _ = create_organization(slug, "Gate smoke harness")
    h = _Harness(organization, timeout)
    with scope(organization=organization):
        _setup(organization)
        page = _pages(h)
        _republish(h, page)
        _sitemap(h, page)
        _scope(h)
    if h.late:  # say why the cases after them fail: the pipeline, not the gates
        h.cases.append(
            Case(
                "pipeline",
                "verdicts within the timeout",
                "yes",
                "timed out",
                detail=f"no verdicts after {timeout:g} s for: {', '.join(h.late)}; "
                "is a worker consuming the queue?",
            )
        )
    return h.cases
