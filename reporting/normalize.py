"""URL normalisation: the same page, however a tool spells its URL, gets one key.

Search Console, CRMs and CMSs disagree on scheme, host case, default ports, trailing
slashes, fragments and campaign parameters. Matching deliverables to search rows and
touches by URL only works when both sides are reduced to the same form first.
"""

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that say how a visitor arrived, not which page it is.
TRACKING_PARAMS = frozenset(
    {"gclid", "dclid", "gbraid", "wbraid", "fbclid", "msclkid", "yclid", "mc_cid", "mc_eid"}
    | {"_ga", "_gl", "igshid", "ref_src", "srsltid"}
)
DEFAULT_PORTS = {"http": 80, "https": 443}


def is_tracking(name: str) -> bool:
    return name.lower().startswith("utm_") or name.lower() in TRACKING_PARAMS


def normalize_url(url: str) -> str:
    """``HTTP://Acme.example:443/Spring/?utm_source=x&b=2&a=1#top`` ->
    ``https://acme.example/Spring?a=1&b=2``.

    http and https are one page (Search Console reports the property's scheme); the host is
    lower-cased, default ports, fragments, tracking parameters and a trailing slash go
    (except the root, "/"); the remaining parameters are sorted. The path keeps its case:
    servers may treat /Spring and /spring as different pages. Not a URL: returned stripped.
    """
    url = (url or "").strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return url
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return url
    host = parts.hostname.lower().rstrip(".")
    if port is not None and port not in DEFAULT_PORTS.values():
        host = f"{host}:{port}"
    path = parts.path or "/"
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    query = sorted(
        (name, value)
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
        if not is_tracking(name)
    )
    return urlunsplit(("https", host, path, urlencode(query), ""))


def site_of(url: str) -> str:
    """The site (host) a normalised URL belongs to; empty if it is not a URL."""
    try:
        return urlsplit(url).netloc
    except ValueError:
        return ""
