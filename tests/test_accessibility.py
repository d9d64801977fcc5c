"""Manners every portal page keeps, checked on every page of the seeded demo.

Walks the portal's URL configuration (``tests.test_portal.organization_urls``) with the
demo's real references, as its account manager, and reads each page with the standard
library's HTML parser: a language, a title, one h1, a label for every form control, a
name for every button, alt text for every image, landmarks, unique ids. A page added later
is covered without editing this file.
"""

import io
from collections import Counter
from html.parser import HTMLParser

import pytest
from django.core.management import call_command
from django_scopes import scopes_disabled

from devtools.demo import DEMO_SLUG
from gates.models import Artifact, GateEvaluation
from owners.models import Ticket
from tests.test_portal import organization_urls

pytestmark = pytest.mark.django_db

CONTROLS = {"input", "select", "textarea"}
UNLABELLED_INPUT_TYPES = {"hidden", "submit", "button", "reset", "image"}


class Page(HTMLParser):
    """What the checks need of a page: its elements, labels, headings and buttons."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.lang = None
        self.title = ""
        self.h1 = 0
        self.main = 0
        self.ids = Counter()
        self.label_for = set()
        self.controls = []  # (tag, attrs, inside a <label>)
        self.images = []
        self.buttons = []  # [attrs, text]
        self._stack = []
        self._in_title = False
        self._label_depth = 0
        self._button = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids[attrs["id"]] += 1
        if tag == "html":
            self.lang = attrs.get("lang")
        elif tag == "title":
            self._in_title = True
        elif tag == "h1":
            self.h1 += 1
        elif tag == "main":
            self.main += 1
        elif tag == "label":
            self._label_depth += 1
            if attrs.get("for"):
                self.label_for.add(attrs["for"])
        elif tag in CONTROLS:
            self.controls.append((tag, attrs, self._label_depth > 0))
        elif tag == "img":
            self.images.append(attrs)
        elif tag == "button":
            self._button = [attrs, ""]
            self.buttons.append(self._button)

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        elif tag == "label":
            self._label_depth = max(0, self._label_depth - 1)
        elif tag == "button":
            self._button = None

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        if self._button is not None:
            self._button[1] += data


def problems_of(html: str) -> list[str]:
    page = Page()
    page.feed(html)
    page.close()
    found = []
    if not page.lang:
        found.append('<html> has no lang="..."')
    if not page.title.strip():
        found.append("no <title>")
    if page.h1 != 1:
        found.append(f"{page.h1} <h1> elements (one expected)")
    if page.main != 1:
        found.append(f"{page.main} <main> landmarks (one expected)")
    found += [f'id "{i}" used {n} times' for i, n in page.ids.items() if n > 1]
    for tag, attrs, wrapped in page.controls:
        if tag == "input" and attrs.get("type", "text") in UNLABELLED_INPUT_TYPES:
            continue
        named = (
            wrapped
            or attrs.get("id") in page.label_for
            or attrs.get("aria-label")
            or attrs.get("aria-labelledby")
        )
        if not named:
            found.append(f"<{tag} name={attrs.get('name')!r}> has no label")
    found += [f"<img src={a.get('src')!r}> has no alt" for a in page.images if "alt" not in a]
    for attrs, text in page.buttons:
        if not text.strip() and not attrs.get("aria-label"):
            found.append(f"a <button> without a name ({attrs})")
    return found


@pytest.fixture
def demo(client):
    call_command("seed_demo", stdout=io.StringIO())
    client.login(username="am@northwind.example", password="meshline-demo")
    with scopes_disabled():
        ticket = Ticket.objects.filter(organization__slug=DEMO_SLUG).first()
        evaluation = GateEvaluation.objects.filter(organization__slug=DEMO_SLUG).first()
        artifact = Artifact.objects.filter(organization__slug=DEMO_SLUG).first()
    return {
        "client": client,
        "ticket": str(ticket.pk),
        "evaluation": str(evaluation.pk),
        "artifact": artifact.name if artifact else "",
    }


def demo_pages(stand_ins: dict) -> list[str]:
    """Every portal page of the demo organization, with real references."""
    pages = []
    for url in organization_urls(DEMO_SLUG):
        url = url.replace("/LP-1/", "/SEO-2007/").replace("/clients/acme/", "/clients/acme/")
        url = url.replace("/0190f0f0-0000-7000-8000-000000000001/", f"/{stand_ins['evaluation']}/")
        url = url.replace("/tickets/x1", f"/tickets/{stand_ins['ticket']}")
        pages.append(url)
    return pages


def test_every_portal_page_keeps_its_manners(demo):
    client = demo["client"]
    checked, report = 0, {}
    for url in demo_pages(demo):
        response = client.get(url)
        if response.status_code != 200 or not response["Content-Type"].startswith("text/html"):
            continue  # POST-only actions (405), artifacts (images), stand-ins with no row
        checked += 1
        found = problems_of(response.content.decode())
        if found:
            report[url] = found
    for extra in ("/?period=24h", "/board/?overdue=true", "/deliverables/?state=bogus"):
        found = problems_of(client.get(f"/o/{DEMO_SLUG}{extra}").content.decode())
        if found:
            report[extra] = found
    # A form sent back with its errors keeps them too (the gate still fails: no waiver).
    refused = client.post(f"/o/{DEMO_SLUG}/tickets/{demo['ticket']}/resolve", {})
    assert "still fails" in refused.content.decode()
    if found := problems_of(refused.content.decode()):
        report["resolve without a waiver"] = found
    assert checked >= 10, f"only {checked} pages were checked: is the URL walk still right?"
    assert report == {}


def test_the_sign_in_page_keeps_its_manners(client):
    assert problems_of(client.get("/accounts/login/").content.decode()) == []
    refused = client.post("/accounts/login/", {"username": "nobody", "password": "wrong"})
    assert problems_of(refused.content.decode()) == []


def test_the_checks_catch_what_they_look_for():
    """The checker itself: a page breaking each rule is reported for each."""
    html = (
        "<html><head></head><body><h1>A</h1><h1>B</h1>"
        '<input name="q"><select name="s"></select><img src="x.png">'
        '<button></button><p id="x"></p><p id="x"></p></body></html>'
    )
    found = problems_of(html)
    assert found == [
        '<html> has no lang="..."',
        "no <title>",
        "2 <h1> elements (one expected)",
        "0 <main> landmarks (one expected)",
        'id "x" used 2 times',
        "<input name='q'> has no label",
        "<select name='s'> has no label",
        "<img src='x.png'> has no alt",
        "a <button> without a name ({})",
    ]
    labelled = (
        '<html lang="en"><head><title>T</title></head><body><main><h1>A</h1>'
        '<label for="q">Search</label><input id="q" name="q">'
        '<label>Client <select name="c"></select></label>'
        '<input type="hidden" name="csrf"><button aria-label="Close"></button>'
        "</main></body></html>"
    )
    assert problems_of(labelled) == []


def _luminance(hex_colour: str) -> float:
    value = hex_colour.lstrip("#")
    if len(value) == 3:
        value = "".join(c * 2 for c in value)
    channels = [int(value[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio of two colours (1 to 21)."""
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def test_the_palette_meets_wcag_aa_contrast():
    """Text colours on the backgrounds they are used on (4.5:1), focus rings (3:1)."""
    import re
    from pathlib import Path

    css = (Path(__file__).resolve().parents[1] / "static/css/meshline.css").read_text()
    root = re.search(r":root\s*{([^}]*)}", css).group(1)
    colour = dict(re.findall(r"--([a-z-]+):\s*(#[0-9a-fA-F]{3,6})", root))
    white = "#ffffff"
    text_pairs = [
        *(
            (colour[fg], bg)
            for fg in ("ink", "muted", "accent", "bad", "ok", "pending")
            for bg in (white, colour["bg"])
        ),
        (white, colour["ink"]),  # the top bar
        ("#c9d1d9", colour["ink"]),  # the organization's name in the top bar
        (white, colour["accent"]),  # buttons
    ]
    low = [(fg, bg, round(contrast(fg, bg), 2)) for fg, bg in text_pairs if contrast(fg, bg) < 4.5]
    assert low == []
    assert contrast(colour["focus"], white) >= 3 and contrast(colour["focus"], colour["bg"]) >= 3
    assert contrast(colour["focus-on-dark"], colour["ink"]) >= 3
    assert round(contrast("#000", "#fff"), 1) == 21.0  # the formula itself
