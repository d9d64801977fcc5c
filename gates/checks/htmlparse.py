"""A small, safe HTML reader: title, metas, links, headings, paragraphs and JSON-LD.

The page is parsed by selectolax's Lexbor engine, a full HTML5 tree builder: unclosed and
implied end tags, uppercase markup, entities, ``<title>`` as raw text and foreign content
(SVG) are handled the way browsers and crawlers handle them, not by our approximation of the
standard. Nothing is executed and nothing is fetched: scripts are text to the parser.
"""

from dataclasses import dataclass, field

from selectolax.lexbor import LexborHTMLParser, LexborNode

MAX_HTML_BYTES = 2_000_000
JSONLD_MIME = "application/ld+json"
# Elements whose text is never page text (a <script> inside a <p> must neither add its code
# to the paragraph nor drop the words around it).
NOT_TEXT = ["script", "style", "template"]
HEADINGS = "h1, h2, h3, h4, h5, h6"


@dataclass
class Page:
    title: str | None = None
    metas: dict[str, str] = field(default_factory=dict)  # name or property → content
    links: dict[str, str] = field(default_factory=dict)  # rel → href
    headings: list[tuple[str, str]] = field(default_factory=list)  # (tag, text)
    paragraphs: list[str] = field(default_factory=list)
    jsonld: list[str] = field(default_factory=list)


def _attr(node: LexborNode, name: str) -> str:
    # A bare attribute (<link href>) has the value None.
    return node.attributes.get(name) or ""


def _text(node: LexborNode) -> str:
    return " ".join(node.text(deep=True).split())


def _is_jsonld(script: LexborNode) -> bool:
    """``type`` compared as a MIME type: case, spaces and parameters (``; charset=``) ignored."""
    return _attr(script, "type").split(";")[0].strip().lower() == JSONLD_MIME


def _in_svg(node: LexborNode) -> bool:
    parent = node.parent
    while parent is not None:
        if parent.tag == "svg":
            return True
        parent = parent.parent
    return False


def parse(html: str) -> Page:
    """Read what the SEO, schema and quality checks look at; first occurrence wins per key."""
    if len(html.encode()) > MAX_HTML_BYTES:
        raise ValueError(f"HTML is larger than {MAX_HTML_BYTES} bytes")
    tree = LexborHTMLParser(html)
    page = Page()
    page.jsonld = [script.text(deep=True) for script in tree.css("script") if _is_jsonld(script)]
    tree.strip_tags(NOT_TEXT)
    for meta in tree.css("meta"):
        key = _attr(meta, "name") or _attr(meta, "property")
        if key:
            page.metas.setdefault(key.lower(), _attr(meta, "content").strip())
    for link in tree.css("link"):
        for rel in _attr(link, "rel").lower().split():
            page.links.setdefault(rel, _attr(link, "href").strip())
    # An SVG icon's <title> is its accessible name, not the document's title.
    title = next((node for node in tree.css("title") if not _in_svg(node)), None)
    page.title = None if title is None else _text(title)
    page.headings = [(node.tag, _text(node)) for node in tree.css(HEADINGS)]
    page.paragraphs = [_text(node) for node in tree.css("p")]
    return page
