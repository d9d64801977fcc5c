"""A small, safe HTML reader: tags, attributes and text, via the standard library parser."""

from dataclasses import dataclass, field
from html.parser import HTMLParser

MAX_HTML_BYTES = 2_000_000


@dataclass
class Page:
    title: str | None = None
    metas: dict[str, str] = field(default_factory=dict)  # name or property → content
    links: dict[str, str] = field(default_factory=dict)  # rel → href
    headings: list[tuple[str, str]] = field(default_factory=list)  # (tag, text)
    paragraphs: list[str] = field(default_factory=list)
    jsonld: list[str] = field(default_factory=list)


class _Reader(HTMLParser):
    TEXT_TAGS = {"title", "h1", "h2", "h3", "h4", "h5", "h6", "p"}
    # HTML lets a paragraph's end tag be omitted: the paragraph ends where one of these
    # starts, or where its parent element ends (the HTML standard's list, abridged).
    ENDS_PARAGRAPH = {
        "address", "article", "aside", "blockquote", "details", "div", "dl", "fieldset",
        "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6",
        "header", "hr", "main", "menu", "nav", "ol", "p", "pre", "section", "table", "ul",
    }  # fmt: skip
    PARAGRAPH_PARENTS = ENDS_PARAGRAPH | {"body", "html", "li", "td", "th", "dd", "dt"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._open: str | None = None
        self._buffer: list[str] = []
        self._script: list[str] | None = None  # inside a <script>: its JSON-LD text, if any
        self._script_jsonld = False

    def handle_starttag(self, tag, attrs):
        attributes = {name.lower(): (value or "") for name, value in attrs}
        if tag == "meta":
            key = attributes.get("name") or attributes.get("property")
            if key:
                self.page.metas.setdefault(key.lower(), attributes.get("content", "").strip())
        elif tag == "link":
            for rel in attributes.get("rel", "").lower().split():
                self.page.links.setdefault(rel, attributes.get("href", "").strip())
        elif tag == "script":
            # Script text is never page text: a <script> inside a <p> must neither add its
            # code to the paragraph nor drop the words before it.
            self._script_jsonld = attributes.get("type", "").lower() == "application/ld+json"
            self._script = []
        elif tag in self.TEXT_TAGS:
            if self._open == "p" and tag in self.ENDS_PARAGRAPH:
                self._close_text()
            self._open = tag
            self._buffer = []
        elif self._open == "p" and tag in self.ENDS_PARAGRAPH:
            self._close_text()

    def _close_text(self) -> None:
        text = " ".join("".join(self._buffer).split())
        if self._open == "title":
            self.page.title = text if self.page.title is None else self.page.title
        elif self._open == "p":
            self.page.paragraphs.append(text)
        elif self._open:
            self.page.headings.append((self._open, text))
        self._open = None

    def close(self):
        super().close()
        if self._open == "p":  # the document ended inside a paragraph
            self._close_text()

    def handle_endtag(self, tag):
        if tag == "script":
            if self._script_jsonld and self._script is not None:
                self.page.jsonld.append("".join(self._script))
            self._script_jsonld = False
            self._script = None
        elif tag == self._open or (self._open == "p" and tag in self.PARAGRAPH_PARENTS):
            self._close_text()

    def handle_data(self, data):
        if self._script is not None:
            if self._script_jsonld:
                self._script.append(data)
        elif self._open:
            self._buffer.append(data)


def parse(html: str) -> Page:
    if len(html.encode()) > MAX_HTML_BYTES:
        raise ValueError(f"HTML is larger than {MAX_HTML_BYTES} bytes")
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.page
