"""Each built-in check as a pure function: realistic passing and failing inputs, exact reasons.

No database, no network: a check sees an event, the deliverable's type and URL, its history
and the gate's parameters, and returns a verdict.
"""

import io
import socket
import struct
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from gates import checks
from gates.checks import CheckInput, EventView, images
from gates.checks.htmlparse import parse
from tests.gates.conftest import b64, page, png

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ALLOWED = (
    "Article, BlogPosting, BreadcrumbList, Event, FAQPage, LocalBusiness, Organization, "
    "Product, Service, WebPage"
)


def view(event_type="page.published", minutes=0, **payload) -> EventView:
    return EventView(
        f"evt-{event_type}-{minutes}", event_type, T0 + timedelta(minutes=minutes), payload
    )


def run(check, payload=None, *, event_type="page.published", history=(), totals=None, **parameters):
    check_input = CheckInput(
        event=view(event_type, 100, **(payload or {})),
        deliverable_type="landing_page",
        deliverable_url="https://acme.example/lp/ridgeline-gtx",
        history=tuple(history),
        parameters=parameters,
        totals=totals or {},
    )
    return checks.run(check, check_input)


def verdict(result) -> str:
    return "error" if result.error else "pass" if result.passed else "fail"


# --- schema_check ---------------------------------------------------------------------------


def test_schema_check_passes_a_product_page_with_a_yoast_style_graph():
    result = run("schema_check", {"html": page("product_landing.html")})
    assert verdict(result) == "pass", result.reasons
    assert result.details == {"types": ["Product", "WebPage"]}


def test_schema_check_passes_an_article_with_its_headline():
    result = run("schema_check", {"html": page("article_long.html")})
    assert verdict(result) == "pass", result.reasons
    assert result.details == {"types": ["Article"]}


@pytest.mark.parametrize(
    "fixture, reasons",
    [
        (
            "missing_jsonld.html",
            ['No schema.org JSON-LD (<script type="application/ld+json">) in the page.'],
        ),
        (
            "invalid_jsonld.html",
            [
                "JSON-LD block 1 is not valid JSON: Expecting property name enclosed in double "
                "quotes (line 26, column 9)."
            ],
        ),
        (
            "disallowed_type.html",
            [f"No JSON-LD node has an allowed @type (found: Recipe; allowed: {ALLOWED})."],
        ),
        ("missing_required.html", ["Product is missing required property 'offers'."]),
    ],
)
def test_schema_check_fails_with_the_exact_reason(fixture, reasons):
    result = run("schema_check", {"html": page(fixture)})
    assert verdict(result) == "fail"
    assert result.reasons == reasons
    assert result.billing_flag is False


def test_schema_check_missing_jsonld_names_the_page_as_the_failing_artifact():
    result = run("schema_check", {"html": page("missing_jsonld.html")})
    assert result.details == {"artifact": "page html", "jsonld_blocks": 0}


def test_schema_check_keeps_the_failing_jsonld_for_the_ticket():
    result = run("schema_check", {"html": page("missing_required.html")})
    [block] = result.details["jsonld"]
    assert '"@type": "Product"' in block


def test_schema_check_without_any_context_fails():
    html = '<script type="application/ld+json">{"@type": "WebPage", "name": "Spring"}</script>'
    result = run("schema_check", {"html": html})
    assert result.reasons == ["JSON-LD has no @context (expected https://schema.org)."]


def test_schema_check_a_malformed_type_fails_the_page_rather_than_the_check():
    html = (
        '<script type="application/ld+json">'
        '{"@context": "https://schema.org", "@type": {"name": "Product"}, "name": "Shoe"}'
        "</script>"
    )
    result = run("schema_check", {"html": html})
    assert verdict(result) == "fail"
    assert result.reasons == [
        f"No JSON-LD node has an allowed @type (found: none; allowed: {ALLOWED})."
    ]


def test_schema_check_accepts_a_list_of_types_and_a_top_level_array():
    html = (
        '<script type="application/ld+json">[{"@context": "https://schema.org", '
        '"@type": ["Product", "IndividualProduct"], "name": "Shoe", "offers": {"price": "1"}}]'
        "</script>"
    )
    result = run("schema_check", {"html": html})
    assert verdict(result) == "pass", result.reasons
    assert result.details == {"types": ["IndividualProduct", "Product"]}


def test_schema_check_reports_every_problem_of_every_block():
    html = page("missing_required.html").replace(
        "</head>",
        '<script type="application/ld+json">{"@context": "https://schema.org",}</script></head>',
    )
    result = run("schema_check", {"html": html})
    assert result.reasons == [
        "JSON-LD block 2 is not valid JSON: Expecting property name enclosed in double quotes "
        "(line 1, column 35).",
        "Product is missing required property 'offers'.",
    ]


def test_schema_check_parameters_narrow_types_and_add_required_properties():
    result = run(
        "schema_check",
        {"html": page("product_landing.html")},
        allowed_types=["Product"],
        required_properties={"Product": ["name", "offers", "gtin13"]},
    )
    assert result.reasons == ["Product is missing required property 'gtin13'."]
    allowed_recipe = run(
        "schema_check", {"html": page("disallowed_type.html")}, allowed_types=["Recipe"]
    )
    assert verdict(allowed_recipe) == "pass", allowed_recipe.reasons


def _jsonld_page(node: dict) -> str:
    import json

    block = json.dumps({"@context": "https://schema.org", **node})
    return f'<html><head><script type="application/ld+json">{block}</script></head></html>'


def test_schema_check_breadcrumbs_and_faqs_need_their_items_not_a_name():
    crumbs = {
        "@type": "BreadcrumbList",
        "itemListElement": [{"@type": "ListItem", "position": 1, "name": "Shoes"}],
    }
    faq = {"@type": "FAQPage", "mainEntity": [{"@type": "Question", "name": "Sizes?"}]}
    assert verdict(run("schema_check", {"html": _jsonld_page(crumbs)})) == "pass"
    assert verdict(run("schema_check", {"html": _jsonld_page(faq)})) == "pass"
    empty = run("schema_check", {"html": _jsonld_page({"@type": "BreadcrumbList"})})
    assert empty.reasons == ["BreadcrumbList is missing required property 'itemListElement'."]
    posting = run("schema_check", {"html": _jsonld_page({"@type": "BlogPosting", "name": "x"})})
    assert posting.reasons == ["BlogPosting is missing required property 'headline'."]


@pytest.mark.parametrize("payload", [{}, {"html": ""}, {"html": "   "}, {"html": 42}])
def test_schema_check_without_html_is_an_error(payload):
    result = run("schema_check", payload)
    assert verdict(result) == "error"
    assert result.reasons == ["The event has no payload.html to check."]


# --- seo_tags_present -----------------------------------------------------------------------


@pytest.mark.parametrize("fixture", ["product_landing.html", "article_long.html"])
def test_seo_tags_pass_on_complete_pages(fixture):
    result = run("seo_tags_present", {"html": page(fixture)})
    assert verdict(result) == "pass", result.reasons


@pytest.mark.parametrize(
    "fixture, reasons",
    [
        ("missing_og_image.html", ['Missing Open Graph <meta property="og:image">.']),
        ("two_h1.html", ["Expected exactly one <h1>; found 2."]),
        ("short_description.html", ["Meta description is 11 characters; expected 50-160."]),
        (
            "thin_duplicated.html",
            [
                "Expected exactly one <h1>; found 0.",
                'Missing Open Graph <meta property="og:title">.',
                'Missing Open Graph <meta property="og:description">.',
                'Missing Open Graph <meta property="og:image">.',
            ],
        ),
    ],
)
def test_seo_tags_fail_with_the_exact_reasons(fixture, reasons):
    result = run("seo_tags_present", {"html": page(fixture)})
    assert verdict(result) == "fail"
    assert result.reasons == reasons


def test_seo_tags_report_a_missing_title_description_and_canonical():
    html = "<html><head></head><body><h1>Spring</h1></body></html>"
    result = run("seo_tags_present", {"html": html})
    assert result.reasons[:3] == [
        "Missing <title>.",
        'Missing <meta name="description">.',
        'Missing <link rel="canonical">.',
    ]


def test_seo_tags_bounds_come_from_the_gate_parameters():
    html = page("product_landing.html")
    too_long_title = run("seo_tags_present", {"html": html}, title_max=20)
    assert too_long_title.reasons == ["<title> is 39 characters; at most 20."]
    strict = run("seo_tags_present", {"html": html}, description_max=100)
    assert strict.reasons == ["Meta description is 128 characters; expected 50-100."]
    lenient = run("seo_tags_present", {"html": page("short_description.html")}, description_min=5)
    assert verdict(lenient) == "pass", lenient.reasons


# --- schema_version -------------------------------------------------------------------------


def test_schema_version_at_or_above_the_minimum_passes():
    assert verdict(run("schema_version", {"schema_version": 2}, min_version=2)) == "pass"
    assert run("schema_version", {"schema_version": 3}, min_version=2).details == {
        "schema_version": 3
    }


def test_schema_version_below_the_minimum_fails():
    result = run("schema_version", {"schema_version": 1}, min_version=2)
    assert verdict(result) == "fail"
    assert result.reasons == ["schema_version 1 is below the minimum 2."]


def test_schema_version_missing_fails_because_an_undeclared_version_is_below_any_minimum():
    # An old connector that does not declare a version is exactly what the gate is for:
    # a failure (and a ticket to upgrade it), not an undecidable input.
    result = run("schema_version", {"url": "https://acme.example/"}, min_version=2)
    assert verdict(result) == "fail"
    assert result.reasons == ["The payload declares no schema_version (minimum 2)."]


@pytest.mark.parametrize("declared", ["2", 2.0, True, [2], {"major": 2}])
def test_schema_version_that_is_not_a_whole_number_is_an_error(declared):
    result = run("schema_version", {"schema_version": declared}, min_version=2)
    assert verdict(result) == "error"
    assert result.reasons == [f"schema_version {declared!r} is not a whole number."]


def test_a_check_that_raises_is_an_error_verdict_not_a_crash():
    result = run("schema_version", {"schema_version": 2}, min_version="two")
    assert verdict(result) == "error"
    assert result.reasons == [
        "schema_version raised ValueError: invalid literal for int() with base 10: 'two'"
    ]


# --- content_quality_score ------------------------------------------------------------------


def test_quality_a_long_well_written_article_scores_full_marks():
    result = run("content_quality_score", {"html": page("article_long.html")})
    assert verdict(result) == "pass"
    assert result.details["score"] == 100.0
    assert result.details["source"] == "computed"
    assert result.details["points"] == {
        "length": 30.0,
        "headings": 20.0,
        "readability": 30.0,
        "uniqueness": 20.0,
    }
    assert result.details["words"] > 300
    assert result.details["duplicated_paragraphs"] == 0


def test_quality_a_thin_duplicated_page_fails_and_says_why():
    result = run("content_quality_score", {"html": page("thin_duplicated.html")})
    assert verdict(result) == "fail"
    assert result.reasons == ["Content quality 34.8 is below 60.0."]
    assert result.details["duplicated_paragraphs"] == 2
    assert result.details["points"]["uniqueness"] == 0.0
    assert result.details["points"]["headings"] == 0.0
    assert result.details["h1"] == 0


def test_quality_ranks_the_article_above_the_landing_page_above_the_thin_page():
    def score(fixture):
        return run("content_quality_score", {"html": page(fixture)}).details["score"]

    assert score("article_long.html") > score("product_landing.html") > 60
    assert score("thin_duplicated.html") < 60


def test_quality_threshold_and_target_come_from_the_parameters():
    html = page("product_landing.html")
    assert run("content_quality_score", {"html": html}).details["score"] == 81.5
    strict = run("content_quality_score", {"html": html}, threshold=90)
    assert strict.reasons == ["Content quality 81.5 is below 90.0."]
    short_target = run("content_quality_score", {"html": html}, threshold=90, target_words=100)
    assert verdict(short_target) == "pass"


def test_quality_readability_is_the_standard_flesch_reading_ease_with_dictionary_syllables():
    # idea (3), create (2) and area (3) syllables: a vowel-group count said 2, 1 and 2.
    # 206.835 - 1.015 * 7 words / 1 sentence - 84.6 * 12 syllables / 7 words = 54.7
    html = "<h1>Plans</h1><p>The idea was to create an area.</p>"
    result = run("content_quality_score", {"html": html}, threshold=0)
    assert result.details["words"] == 7
    assert result.details["flesch_reading_ease"] == 54.7
    assert result.details["points"]["readability"] == 27.4  # 30 points from 60 ("plain English")


def test_quality_readability_of_a_page_without_paragraph_text_is_zero():
    result = run("content_quality_score", {"html": "<h1>Plans</h1><p> </p>"}, threshold=0)
    assert result.details["words"] == 0
    assert result.details["flesch_reading_ease"] == 0.0
    assert result.details["points"]["readability"] == 0.0


def test_quality_score_supplied_in_the_payload_wins_over_the_html():
    result = run("content_quality_score", {"quality_score": 42, "html": page("article_long.html")})
    assert result.reasons == ["Content quality 42.0 is below 60.0."]
    assert result.details == {"source": "payload", "score": 42.0, "threshold": 60.0}
    assert verdict(run("content_quality_score", {"quality_score": 60})) == "pass"


@pytest.mark.parametrize(
    "payload, reason",
    [
        ({"quality_score": "high"}, "quality_score 'high' is not a number."),
        ({"quality_score": True}, "quality_score True is not a number."),
        ({}, "No quality_score and no html in the payload."),
    ],
)
def test_quality_without_a_usable_score_is_an_error(payload, reason):
    result = run("content_quality_score", payload)
    assert verdict(result) == "error"
    assert result.reasons == [reason]


# --- screenshot_regression ------------------------------------------------------------------

WHITE = png("white")
BOXED = png("white", box=[40, 40, 280, 160])


def _png_header(width: int, height: int) -> bytes:
    """A syntactically valid PNG whose header claims width x height (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def test_screenshot_identical_to_the_baseline_passes():
    result = run(
        "screenshot_regression", {"screenshot": b64(WHITE), "baseline_screenshot": b64(WHITE)}
    )
    assert verdict(result) == "pass", result.reasons
    assert result.details == {"difference_percent": 0.0, "threshold_percent": 5.0}
    assert result.artifacts == []


def test_screenshot_that_changed_fails_with_a_difference_png():
    result = run(
        "screenshot_regression", {"screenshot": b64(BOXED), "baseline_screenshot": b64(WHITE)}
    )
    assert verdict(result) == "fail"
    percent = result.details["difference_percent"]
    assert 40 < percent < 60  # the black block covers 45 % of the page
    assert result.reasons == [
        f"Screenshot differs from the baseline by {percent:.1f}% (threshold 5.0%)."
    ]
    [artifact] = result.artifacts
    assert (artifact.name, artifact.content_type) == ("difference.png", "image/png")
    difference = Image.open(io.BytesIO(artifact.data))
    difference.load()
    assert difference.format == "PNG"
    assert difference.size == (256, 160)
    assert difference.getpixel((128, 80)) == 255  # inside the block: maximal difference
    assert difference.getpixel((5, 5)) == 0  # the margin did not change


def test_screenshot_threshold_comes_from_the_parameters():
    small_change = b64(png("white", box=[300, 180, 319, 199]))
    payload = {"screenshot": small_change, "baseline_screenshot": b64(WHITE)}
    assert verdict(run("screenshot_regression", payload)) == "pass"
    assert verdict(run("screenshot_regression", payload, threshold_percent=0.1)) == "fail"


def test_screenshot_baseline_defaults_to_the_latest_earlier_screenshot():
    history = [
        view(minutes=1, screenshot=b64(BOXED)),
        view(minutes=2, screenshot=b64(WHITE)),
        view("change.requested", 3, summary="Move the button"),
    ]
    same_as_latest = run("screenshot_regression", {"screenshot": b64(WHITE)}, history=history)
    assert verdict(same_as_latest) == "pass"
    changed = run("screenshot_regression", {"screenshot": b64(BOXED)}, history=history)
    assert verdict(changed) == "fail"


def test_the_first_screenshot_becomes_the_baseline():
    result = run("screenshot_regression", {"screenshot": b64(WHITE)})
    assert verdict(result) == "pass"
    assert result.details == {"note": "No baseline yet: this screenshot becomes the baseline."}


def test_screenshots_of_different_sizes_are_compared_after_scaling():
    result = run(
        "screenshot_regression",
        {"screenshot": b64(png("white", (1280, 800))), "baseline_screenshot": b64(WHITE)},
    )
    assert verdict(result) == "pass", result.reasons


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize(
    "screenshot, baseline, reason",
    [
        ("not base64 at all!", b64(WHITE), "screenshot is not valid base64."),
        (b64(WHITE), "%%%", "baseline screenshot is not valid base64."),
        (
            "A" * (images.MAX_IMAGE_BYTES * 4 // 3 + 8),
            b64(WHITE),
            f"screenshot is larger than {images.MAX_IMAGE_BYTES} bytes.",
        ),
        (
            b64(_png_header(10_000, 10_000)),
            b64(WHITE),
            f"screenshot is 10000x10000; at most {images.MAX_PIXELS} pixels.",
        ),
        (
            b64(WHITE),
            b64(_png_header(5000, 4000)),
            f"baseline screenshot is 5000x4000; at most {images.MAX_PIXELS} pixels.",
        ),
        (
            b64(b"%PDF-1.7 not an image"),
            b64(WHITE),
            "screenshot is not a readable image (UnidentifiedImageError).",
        ),
        (b64(WHITE[:60]), b64(WHITE), "screenshot is not a readable image (OSError)."),
        (["a", "list"], b64(WHITE), "screenshot must be a base64 string."),
    ],
)
def test_bad_screenshots_are_an_error_not_a_crash(screenshot, baseline, reason):
    result = run(
        "screenshot_regression", {"screenshot": screenshot, "baseline_screenshot": baseline}
    )
    assert verdict(result) == "error"
    assert result.reasons == [reason]
    assert result.artifacts == []


def test_a_pixel_bomb_is_rejected_from_its_header_before_any_pixel_is_decoded(monkeypatch):
    def refuse_to_decode(self, *args, **kwargs):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", refuse_to_decode)
    with (
        pytest.raises(images.ImageRejected, match="at most"),
        pytest.warns(Image.DecompressionBombWarning),
    ):
        images.decode(b64(_png_header(10_000, 10_000)), "screenshot")


def test_a_missing_screenshot_is_an_error():
    result = run("screenshot_regression", {"url": "https://acme.example/"})
    assert result.reasons == ["The event has no payload.screenshot."]
    assert verdict(result) == "error"


def test_the_comparison_size_is_bounded_whatever_the_aspect_ratio(monkeypatch):
    # A 1 x 16-million-pixel strip is small in bytes and within MAX_PIXELS; scaled to the
    # comparison width without a bound it would need gigabytes.
    sizes = []
    normalize = images._normalize

    def spy(image, size):
        sizes.append(size)
        return normalize(image, size)

    monkeypatch.setattr(images, "_normalize", spy)
    strip = Image.new("RGB", (2, 4000), "white")
    percent, difference = images.difference(strip, strip)
    assert percent == 0.0
    assert all(width * height <= 256 * 4096 for width, height in sizes), sizes
    assert difference.size == sizes[0]


# --- scope_limits ---------------------------------------------------------------------------

SCOPE = view("scope.accepted", 1, limits={"asset_size_mb": 2, "revisions": 1})


def test_scope_limits_without_an_accepted_scope_pass():
    result = run(
        "scope_limits", {"asset_id": "hero", "size_bytes": 90_000_000}, event_type="asset.uploaded"
    )
    assert verdict(result) == "pass"
    assert result.details == {"note": "No scope accepted yet: nothing to compare against."}
    assert result.billing_flag is False


def test_scope_limits_within_the_scope_pass():
    result = run(
        "scope_limits",
        {"asset_id": "hero", "size_bytes": 1_500_000},
        event_type="asset.uploaded",
        history=[SCOPE],
    )
    assert verdict(result) == "pass"
    assert result.billing_flag is False
    assert result.details["asset_size_mb"] == 1.5


def test_scope_limits_an_asset_over_the_size_fails_billable():
    result = run(
        "scope_limits",
        {"asset_id": "hero", "size_bytes": 9_000_000},
        event_type="asset.uploaded",
        history=[SCOPE],
    )
    assert verdict(result) == "fail"
    assert result.reasons == ["Asset is 9.0 MB; the scope allows 2 MB."]
    assert result.billing_flag is True


HOURS_SCOPE = view("scope.accepted", 1, limits={"hours": 10})


@pytest.mark.parametrize(
    ("logged_before", "now", "outcome"),
    [(0, 4, "pass"), (6, 4, "pass"), (6, 4.5, "fail")],
)
def test_scope_limits_hours_count_everything_logged_so_far(logged_before, now, outcome):
    result = run(
        "scope_limits",
        {"hours": now},
        event_type="time.logged",
        history=[HOURS_SCOPE],
        totals={"hours": logged_before},
    )
    assert verdict(result) == outcome
    assert result.details["hours"] == logged_before + now
    if outcome == "fail":
        assert result.reasons == ["10.5 hours logged; the scope includes 10."]
        assert result.billing_flag is True


def test_scope_limits_revisions_over_the_scope_fail_billable():
    history = [SCOPE, view("change.requested", 2, summary="New hero image")]
    result = run(
        "scope_limits", {"summary": "Other colours"}, event_type="change.requested", history=history
    )
    assert verdict(result) == "fail"
    assert result.reasons == ["2 revisions; the scope includes 1."]
    assert result.billing_flag is True
    assert result.details["revisions"] == 2


def test_scope_limits_report_size_and_revisions_together():
    history = [
        SCOPE,
        view("change.requested", 2, summary="a"),
        view("change.requested", 3, summary="b"),
    ]
    result = run(
        "scope_limits",
        {"asset_id": "hero", "size_bytes": 3_000_000},
        event_type="asset.uploaded",
        history=history,
    )
    assert result.reasons == [
        "Asset is 3.0 MB; the scope allows 2 MB.",
        "2 revisions; the scope includes 1.",
    ]


def test_scope_limits_the_latest_accepted_scope_applies():
    rescoped = view("scope.accepted", 5, limits={"asset_size_mb": 10, "revisions": 3})
    result = run(
        "scope_limits",
        {"asset_id": "hero", "size_bytes": 9_000_000},
        event_type="asset.uploaded",
        history=[SCOPE, rescoped],
    )
    assert verdict(result) == "pass", result.reasons


def test_scope_limits_revision_event_types_come_from_the_parameters():
    history = [SCOPE, view("asset.uploaded", 2, asset_id="v1", size_bytes=1, revision=1)]
    result = run(
        "scope_limits",
        {"asset_id": "v2", "size_bytes": 1, "revision": 2},
        event_type="asset.uploaded",
        history=history,
        revision_event_types=["asset.uploaded"],
    )
    assert result.reasons == ["2 revisions; the scope includes 1."]


# --- HTML is parsed, never executed; nothing is fetched --------------------------------------


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection or resolve a name fails the test."""
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_hostile_html_is_parsed_not_executed_and_nothing_is_fetched(no_network):
    html = page("hostile.html")
    assert "<script>alert(1)</script>" in html
    assert '<img src="http://example.invalid"' in html
    results = {
        name: run(name, {"html": html})
        for name in ("schema_check", "seo_tags_present", "content_quality_score")
    }
    results["screenshot_regression"] = run(
        "screenshot_regression",
        {
            "screenshot": b64(WHITE),
            "baseline_screenshot": b64(WHITE),
            "url": "http://example.invalid",
        },
    )
    assert {name: verdict(r) for name, r in results.items()} == {
        "schema_check": "pass",
        "seo_tags_present": "pass",
        "content_quality_score": "pass",
        "screenshot_regression": "pass",
    }, {name: r.reasons for name, r in results.items()}
    assert no_network == []


def test_script_code_is_never_page_text():
    parsed = parse(page("hostile.html"))
    assert parsed.paragraphs == ["Tents, packs and sleeping bags are on sale until Sunday night."]
    assert parsed.headings == [("h1", "Summer sale: up to 40 percent off")]
    assert len(parsed.jsonld) == 1  # the ld+json block only, not alert(1) or the tracker
    assert "alert" not in " ".join(parsed.paragraphs + parsed.jsonld)


def test_paragraphs_without_end_tags_are_still_paragraphs():
    html = (
        "<body><h1>Trail shoes</h1><p>First paragraph<p>Second paragraph"
        "<h2>Fit</h2><p>Third<ul><li>not a paragraph</li></ul>"
        "<section><p>Fourth</section><div><p>Fifth</div><p>Sixth"
    )
    page_ = parse(html)
    assert page_.paragraphs == [
        "First paragraph",
        "Second paragraph",
        "Third",
        "Fourth",
        "Fifth",
        "Sixth",
    ]
    assert page_.headings == [("h1", "Trail shoes"), ("h2", "Fit")]


def test_quality_sees_duplicated_paragraphs_without_end_tags():
    repeated = "Our trail shoe grips wet rock and dries fast after a river crossing."
    closed = f"<h1>Shoes</h1><p>{repeated}</p><p>{repeated}</p>"
    unclosed = f"<h1>Shoes</h1><p>{repeated}<p>{repeated}"
    for html in (closed, unclosed):
        result = run("content_quality_score", {"html": html}, threshold=0)
        assert result.details["duplicated_paragraphs"] == 1, html


# Cases the HTML5 parser (selectolax/Lexbor) reads the way browsers and crawlers do.

SEO_HEAD = (
    "<title>{title}</title>"
    '<meta name="description" content="Waterproof trail shoes with grippy soles, built for wet '
    'spring hikes and river crossings.">'
    '<link rel="canonical" href="https://acme.example/lp/ridgeline-gtx">'
    '<meta property="og:title" content="Ridgeline GTX">'
    '<meta property="og:description" content="Waterproof trail shoes.">'
    '<meta property="og:image" content="https://cdn.acme.example/img/ridgeline.jpg">'
)


def test_seo_tags_read_uppercase_markup_and_entity_encoded_text():
    html = (
        "<HTML><HEAD><TITLE>Boots &amp; Shoes &#8211; Acme</TITLE>"
        '<META NAME="Description" CONTENT="Waterproof trail shoes with grippy soles, built for '
        'wet spring hikes &amp; river crossings.">'
        '<LINK REL="Canonical" HREF="https://acme.example/lp/ridgeline-gtx">'
        '<META PROPERTY="og:title" CONTENT="Ridgeline GTX">'
        '<META PROPERTY="og:description" CONTENT="Waterproof trail shoes.">'
        '<META PROPERTY="og:image" CONTENT="https://cdn.acme.example/img/ridgeline.jpg">'
        "</HEAD><BODY><H1>Trail shoes</H1></BODY></HTML>"
    )
    result = run("seo_tags_present", {"html": html})
    assert verdict(result) == "pass", result.reasons
    assert result.details == {"title": "Boots & Shoes \u2013 Acme"}
    assert parse(html).metas["description"].endswith("hikes & river crossings.")


def test_an_h1_left_open_before_a_paragraph_still_counts_as_the_h1():
    html = SEO_HEAD.format(title="Trail shoes") + "<h1>Trail shoes<p>Grippy soles for wet rock."
    result = run("seo_tags_present", {"html": html})
    assert verdict(result) == "pass", result.reasons
    assert parse(html).paragraphs == ["Grippy soles for wet rock."]


def test_the_first_title_is_the_page_title_and_an_svg_icon_title_is_not_one():
    two_titles = SEO_HEAD.format(title="Trail shoes") + "<title>Second</title><h1>Shoes</h1>"
    assert parse(two_titles).title == "Trail shoes"
    icon_only = SEO_HEAD.replace("<title>{title}</title>", "") + (
        "<h1>Shoes</h1><svg viewBox='0 0 8 8'><title>Cart</title></svg>"
    )
    result = run("seo_tags_present", {"html": icon_only})
    assert result.reasons == ["Missing <title>."]


def test_malformed_markup_keeps_its_paragraph_text_and_drops_style_and_script():
    html = (
        "<!doctype html><div><p>Trail <b>shoes<i> grip</p><P CLASS=x>Wet <style>p{color:red}</style>rock"
        "<table><tr><td>cell</table><p>Dries <script>track()</script>fast</div>"
    )
    assert parse(html).paragraphs == ["Trail shoes grip", "Wet rock", "Dries fast"]


@pytest.mark.parametrize(
    "script_type",
    [" application/ld+json ", "Application/LD+JSON", "application/ld+json; charset=utf-8"],
)
def test_schema_check_reads_jsonld_whatever_the_type_attribute_casing_and_spacing(script_type):
    block = '\n\t {"@context": "https://schema.org", "@type": "WebPage", "name": "Spring"}\n'
    html = f'<SCRIPT TYPE="{script_type}">{block}</SCRIPT>'
    result = run("schema_check", {"html": html})
    assert verdict(result) == "pass", result.reasons
    assert result.details == {"types": ["WebPage"]}


def test_schema_check_reads_a_graph_that_is_one_object_and_an_array_of_graphs():
    import json

    single = {"@context": "https://schema.org", "@graph": {"@type": "Product", "name": "Shoe"}}
    result = run("schema_check", {"html": _jsonld_page_raw(single)})
    assert result.reasons == ["Product is missing required property 'offers'."]
    graphs = [
        {"@context": "https://schema.org", "@graph": [{"@type": "WebPage", "name": "Shoes"}]},
        {"@context": "https://schema.org", "@graph": [{"@type": "Article", "headline": "Fit"}]},
    ]
    result = run("schema_check", {"html": _jsonld_page_raw(graphs)})
    assert verdict(result) == "pass", result.reasons
    assert result.details == {"types": ["Article", "WebPage"]}
    assert json.loads(parse(_jsonld_page_raw(graphs)).jsonld[0]) == graphs


def _jsonld_page_raw(data) -> str:
    import json

    return f'<script type="application/ld+json">{json.dumps(data)}</script>'


def test_html_over_the_size_limit_is_an_error():
    result = run("schema_check", {"html": "<p>" + "x" * 2_000_001 + "</p>"})
    assert verdict(result) == "error"
    assert result.reasons == ["schema_check raised ValueError: HTML is larger than 2000000 bytes"]


def test_every_built_in_check_is_registered():
    from gates.models import CheckName

    assert set(checks.CHECKS) | {CheckName.SITEMAP_SYNC} == set(CheckName.values)


def test_workers_load_the_readability_dictionaries_before_forking():
    from celery.signals import worker_init

    from gates.checks import content

    assert content.warm_up in [receiver for _key, receiver in worker_init.receivers]  # strong ref
    assert content.warm_up() > 0  # a real Flesch score: the dictionaries are loaded
