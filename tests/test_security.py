"""Production security settings, the Content-Security-Policy and /metrics access.

The policy forbids inline scripts, inline styles and on* handlers: every portal page is
checked for them (and for javascript: URLs), on the seeded demo, with the header it gets.
`check --deploy` runs in a subprocess with .env.production.example and must be silent.
"""

import os
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
from django.test import override_settings

from devtools.demo import DEMO_SLUG
from tests.test_accessibility import demo, demo_pages  # noqa: F401  (demo is a fixture)

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parent.parent


class InlineCode(HTMLParser):
    """What a CSP without 'unsafe-inline' would block or that could run script."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.found = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        data_block = attrs.get("type") in {"application/json", "application/ld+json"}
        if tag == "script" and not attrs.get("src") and not data_block:
            self.found.append(f"inline <script> {attrs}")
        if tag == "style":
            self.found.append("inline <style>")
        for name, value in attrs.items():
            if name.startswith("on") or name.startswith("hx-on"):
                self.found.append(f"<{tag} {name}=...> handler")
            if name == "style":
                self.found.append(f"<{tag} style={value!r}>")
            if name in {"href", "src", "action", "formaction"} and (
                value or ""
            ).strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}={value!r}>")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found


def csp_directives(response) -> dict:
    """The policy's directives by name (django-csp does not promise their order)."""
    policy = response.get("Content-Security-Policy", "")
    return dict(
        [*part.split(" ", 1), ""][:2] for part in (p.strip() for p in policy.split(";")) if part
    )


def assert_strict_csp(response):
    policy = response.get("Content-Security-Policy", "")
    directives = csp_directives(response)
    assert directives.get("script-src") == "'self'", policy
    assert directives.get("style-src") == "'self'", policy
    assert directives.get("object-src") == "'none'", policy
    assert directives.get("frame-ancestors") == "'none'", policy
    assert "unsafe" not in policy


def test_every_portal_page_has_the_csp_and_no_inline_code(demo):  # noqa: F811
    client = demo["client"]
    checked, report = 0, {}
    pages = [*demo_pages(demo), "/", f"/o/{DEMO_SLUG}/board/?overdue=true"]
    for url in pages:
        response = client.get(url, follow=True)
        if response.status_code != 200 or not response["Content-Type"].startswith("text/html"):
            continue  # POST-only actions (405), artifacts (images)
        checked += 1
        assert_strict_csp(response)
        if found := inline_code(response.content.decode()):
            report[url] = found
    # htmx partials are swapped into a page under its policy: they must be clean too.
    partial = client.post(
        f"/o/{DEMO_SLUG}/tickets/{demo['ticket']}/resolve", {}, HTTP_HX_REQUEST="true"
    )
    assert partial.status_code == 400
    if found := inline_code(partial.content.decode()):
        report["resolve partial"] = found
    assert checked >= 10, f"only {checked} pages were checked"
    assert report == {}


def test_sign_in_pages_have_the_csp_and_no_inline_code(client, member):
    login = client.get("/accounts/login/")
    assert_strict_csp(login)
    assert inline_code(login.content.decode()) == []
    for _ in range(5):
        locked = client.post("/accounts/login/", {"username": member.username, "password": "no"})
    assert locked.status_code == 429
    assert_strict_csp(locked)
    assert inline_code(locked.content.decode()) == []


def test_the_checker_finds_what_it_looks_for():
    html = (
        '<script>alert(1)</script><script src="/s.js"></script><style>p{}</style>'
        '<a href="JavaScript:x()" onclick="y()">a</a><p style="color:red" hx-on:click="z">'
        '<script type="application/ld+json">{}</script>'
    )
    assert len(inline_code(html)) == 6


def test_portal_base_turns_off_htmxs_injected_indicator_style(demo):  # noqa: F811
    page = demo["client"].get(f"/o/{DEMO_SLUG}/board/").content.decode()
    assert """<meta name="htmx-config" content='{"includeIndicatorStyles": false}'>""" in page


# --- check --deploy --------------------------------------------------------------------


def production_env(**changes) -> dict:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    for line in (ROOT / ".env.production.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            env[name.strip()] = value.strip()
    env.update(changes)
    return {k: v for k, v in env.items() if v is not None}


def check_deploy(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_with_the_production_example_reports_nothing():
    result = check_deploy(production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_check_deploy_names_what_a_production_environment_lacks():
    result = check_deploy(
        production_env(
            MESHLINE_HTTPS="0",
            MESHLINE_HSTS_SECONDS=None,
            MESHLINE_METRICS_TOKEN=None,
            MESHLINE_CACHE_URL=None,
        )
    )
    assert result.returncode != 0
    report = result.stdout + result.stderr
    for check_id in (
        "security.W004",  # HSTS
        "security.W008",  # SSL redirect
        "security.W012",  # session cookie
        "security.W016",  # CSRF cookie
        "meshline.W001",  # metrics token
        "meshline.W002",  # shared cache for API rate limits
    ):
        assert check_id in report, check_id


def test_production_settings_switch_on_from_the_environment():
    script = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='meshline.settings'; "
        "django.setup(); from django.conf import settings as s; "
        "print(s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, "
        "s.SECURE_HSTS_SECONDS, s.SECURE_HSTS_PRELOAD, s.SECURE_PROXY_SSL_HEADER, s.DEBUG)"
    )
    out = (
        subprocess.run(
            [sys.executable, "-c", script],
            cwd=ROOT,
            env=production_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        .stdout.strip()
        .split(maxsplit=5)
    )
    assert out[:5] == ["True", "True", "True", "31536000", "True"]
    assert "HTTP_X_FORWARDED_PROTO" in out[5] and out[5].endswith("False")


@override_settings(SECURE_SSL_REDIRECT=True)
def test_with_https_on_plain_http_is_redirected(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/accounts/login/"


# --- /metrics ------------------------------------------------------------------------------


@override_settings(MESHLINE_METRICS_TOKEN="scrape-secret")
def test_with_a_token_configured_loopback_needs_it_too(client):
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 401
    ok = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_AUTHORIZATION="Bearer scrape-secret")
    assert ok.status_code == 200


@override_settings(MESHLINE_METRICS_TOKEN="", MESHLINE_PROXY_COUNT=1)
def test_behind_a_proxy_without_a_token_loopback_is_refused(client):
    # Every client of a proxy on this host arrives from 127.0.0.1.
    response = client.get("/metrics", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert response.status_code == 403


@override_settings(MESHLINE_METRICS_TOKEN="")
def test_without_a_token_direct_loopback_is_answered_for_development(client):
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.0.0.5").status_code == 403


def test_the_api_docs_page_runs_no_inline_script(client):
    page = client.get("/api/v1/docs/")
    assert page.status_code == 200
    directives = csp_directives(page)
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self' 'unsafe-inline'"  # Swagger UI's, here only
    assert [f for f in inline_code(page.content.decode()) if "script" in f] == []
    script = client.get("/api/v1/docs/?script")
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode()
