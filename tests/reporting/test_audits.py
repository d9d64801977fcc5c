"""The monthly sample audit: ten deliverables drawn reproducibly from those with events in
the month, each report frozen as a PDF, reviews recorded with who and what."""

import hashlib
import io
from datetime import date

import pytest
from django_scopes import scope
from pypdf import PdfReader

from deliveries.models import Event
from reporting import tasks
from reporting.models import SampleAudit
from reporting.services import audits
from tests.reporting.conftest import NOW, page

MARCH = date(2026, 3, 1)


@pytest.fixture
def march(org_a, client_acme, publish, owner_map, settings, tmp_path):
    """Twelve pages published in March 2026; the audit's reports go to tmp_path."""
    settings.MEDIA_ROOT = tmp_path
    publish(org_a, *[page(f"LP-{n}", f"https://acme.example/lp/{n}/") for n in range(1, 13)])


def test_the_draw_is_reproducible_from_its_seed_and_drawn_once(org_a, march):
    with scope(organization=org_a):
        audit = audits.draw(org_a, date(2026, 3, 17), now=NOW)
        items = list(audit.items.select_related("deliverable"))
        ids = audits.population(org_a, MARCH)
        assert (audit.month, audit.population, len(items)) == (MARCH, 12, 10)
        assert audit.seed == audits.seed_for(org_a, MARCH)
        # Anyone can redraw it: the stored seed and the population give the same sample.
        assert [item.deliverable_id for item in items] == audits.draw_sample(audit.seed, ids)
        assert audits.draw_sample(audit.seed + 1, ids) != audits.draw_sample(audit.seed, ids)
        assert audits.draw(org_a, MARCH, now=NOW) == audit
        assert SampleAudit.objects.filter(organization=org_a).count() == 1
        assert audits.draw(org_a, date(2026, 4, 1), now=NOW) is None  # no events in April
        # Each report is the forensic report frozen at the draw, with its digest.
        first = items[0]
        content = first.report.read()
        assert hashlib.sha256(content).hexdigest() == first.report_sha256
        text = PdfReader(io.BytesIO(content)).pages[0].extract_text()
        assert f"Forensic report: {first.deliverable.deliverable_id}" in text
        [sampled] = Event.objects.filter(organization=org_a, event_type="audit.sampled")
    assert sampled.payload["deliverables"] == [i.deliverable.deliverable_id for i in items]
    assert sampled.payload["seed"] == audit.seed


def test_the_nightly_run_draws_the_month_that_just_ended(org_a, march):
    tasks.nightly_for.apply(kwargs={"organization_id": org_a.pk, "day": "2026-03-30"}).get()
    with scope(organization=org_a):
        assert not SampleAudit.objects.filter(organization=org_a).exists()
    tasks.nightly_for.apply(kwargs={"organization_id": org_a.pk, "day": "2026-03-31"}).get()
    with scope(organization=org_a):
        assert SampleAudit.objects.get(organization=org_a).month == MARCH


def test_a_reviewer_records_what_they_found(client, org_a, march, member, viewer, outsider):
    with scope(organization=org_a):
        audit = audits.draw(org_a, MARCH, now=NOW)
        item = audit.items.get(position=3)
    base = "/o/org-a/reporting/audits/2026-03/"
    client.force_login(member)
    page_html = client.get(base).content.decode()
    assert "Sample audit: March 2026" in page_html and "0 of 10 reviewed" in page_html
    assert client.get("/o/org-a/reporting/").content.decode().count(base) == 1
    pdf = client.get(f"{base}3/report.pdf")
    assert hashlib.sha256(b"".join(pdf.streaming_content)).hexdigest() == item.report_sha256

    missing = client.post(f"{base}3/review", {"finding": "issue", "notes": " "})
    assert missing.status_code == 400 and "Say what the issue is." in missing.content.decode()
    unknown = client.post(f"{base}3/review", {"finding": "maybe"})
    assert unknown.status_code == 400 and "Choose what you found." in unknown.content.decode()
    done = client.post(f"{base}3/review", {"finding": "issue", "notes": "Touch T-9 missing"})
    assert done.status_code == 302
    with scope(organization=org_a):
        item.refresh_from_db()
        [reviewed] = Event.objects.filter(organization=org_a, event_type="audit.reviewed")
    assert (item.finding, item.notes, item.reviewed_by) == ("issue", "Touch T-9 missing", member)
    assert reviewed.payload["report_sha256"] == item.report_sha256
    assert "1 of 10 reviewed" in client.get(base).content.decode()

    client.force_login(viewer)
    assert client.post(f"{base}3/review", {"finding": "confirmed"}).status_code == 403
    client.force_login(outsider)
    for url in (base, f"{base}3/report.pdf"):
        assert client.get(url).status_code == 404
    assert client.post(f"{base}3/review", {"finding": "confirmed"}).status_code == 404
    client.force_login(member)
    assert client.get("/o/org-a/reporting/audits/2026-13/").status_code == 404
    assert client.get(f"{base}11/report.pdf").status_code == 404
