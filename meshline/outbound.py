"""Outbound HTTP guard: Meshline only calls http(s) URLs on public addresses.

A URL a tenant configures (a webhook, later an outbound subscription) must not turn Meshline
into a proxy for its own network. The rules, applied at configuration time and again right
before every connection (DNS can change between the two):

- scheme http or https, a host name, nothing else;
- every address the host resolves to is public: no loopback, private, link-local (cloud
  metadata), shared, multicast, reserved or unspecified ranges, IPv4 or IPv6, including IPv4
  addresses embedded in IPv6 (``::ffff:127.0.0.1``, 6to4, NAT64, Teredo);
- hosts (names, addresses or CIDR networks) listed in ``MESHLINE_OUTBOUND_ALLOWED_HOSTS``
  are allowed anyway (an operator's own receiver, or 127.0.0.1 in tests).

The API, for every connector:

- ``validate_url(url)``: raises ``django.core.exceptions.ValidationError`` with a message
  for a form (model ``clean``, serializer ``validate_<field>``);
- ``post(url, body, headers)`` (``post_reply`` also keeps the answer's start): one POST, connecting only to the checked address (no second
  DNS lookup between check and connect), redirects followed by hand (each hop checked, at
  most ``MAX_REDIRECTS``), a timeout on every step. Returns the final status (2xx); raises
  ``OutboundError`` whose ``str()`` is a classified text ("timeout", "HTTP 503", "blocked
  address") that is safe to store and show to the tenant. Internals go to the log only;
- ``generate_secret()``, ``signature_headers(secret, msg_id, body)``: Standard Webhooks
  signing (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``), so a receiver can
  verify with any Standard Webhooks library and refuse replays by timestamp and id;
- ``mask_secret(secret)``: what the admin shows after creation.
"""

import base64
import http.client
import ipaddress
import logging
import secrets
import socket
import ssl
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import urljoin, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from standardwebhooks import Webhook

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5  # per connect and per read, on every hop
MAX_REDIRECTS = 3
MAX_RESPONSE_BYTES = 64 * 1024  # the answer is read (to reuse nothing) and thrown away
EXCERPT_CHARS = 500  # what post_reply keeps of it
REDIRECT_STATUSES = {301, 302, 303, 307, 308}
SECRET_PREFIX = "whsec_"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Ranges Python's is_global does not (in every supported version) count as non-public.
_EXTRA_BLOCKED = [
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "100.64.0.0/10",  # shared address space (carrier NAT; Alibaba's metadata service)
        "192.0.0.0/24",  # IETF protocol assignments (Oracle's metadata service)
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
        "::/96",  # IPv4-compatible IPv6 (deprecated)
        "64:ff9b::/96",  # NAT64: would reach any IPv4 address through the gateway
        "64:ff9b:1::/48",  # local-use NAT64
        "fc00::/7",  # unique local (AWS's IPv6 metadata service, fd00:ec2::254)
        "fe80::/10",  # link-local
        "ff00::/8",  # multicast
    )
]


class Failure(models.TextChoices):
    """Why an outbound request did not deliver; stored and shown as is (no internals)."""

    BLOCKED = "blocked address", "Blocked address"
    INVALID_URL = "invalid URL", "Invalid URL"
    NAME_NOT_RESOLVED = "name not resolved", "Name not resolved"
    REFUSED = "connection refused", "Connection refused"
    TIMEOUT = "timeout", "Timeout"
    TLS = "TLS", "TLS error"
    TOO_MANY_REDIRECTS = "too many redirects", "Too many redirects"
    CONNECTION = "connection failed", "Connection failed"
    NO_SECRET = "no signing secret", "No signing secret"


class OutboundError(Exception):
    """A refused or failed request. ``str(error)`` is the classified text (a ``Failure``
    value or "HTTP <status>"); ``message`` explains a refusal to the person configuring."""

    def __init__(self, classification: str, message: str = "", excerpt: str = ""):
        super().__init__(classification)
        self.classification = classification
        self.message = message or classification
        self.excerpt = excerpt  # the start of a non-2xx answer's body, for the delivery log


class Reply(NamedTuple):
    """A 2xx answer: its status and the start of its body (for a delivery log)."""

    status: int
    excerpt: str


# --- addresses ----------------------------------------------------------------------------


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def is_public(ip: IPAddress) -> bool:
    """True for an address on the public internet (and no embedded non-public IPv4)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded is not None and not is_public(embedded):
            return False
    if any(ip in net for net in _EXTRA_BLOCKED if net.version == ip.version):
        return False
    return bool(
        ip.is_global
        and not (
            ip.is_loopback
            or ip.is_private
            or ip.is_link_local
            or ip.is_multicast
            or ip.is_reserved
            or ip.is_unspecified
        )
    )


def _allowed_entries() -> tuple[set[str], list]:
    names, networks = set(), []
    for entry in getattr(settings, "MESHLINE_OUTBOUND_ALLOWED_HOSTS", []):
        entry = entry.strip().lower().strip("[]")
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.rstrip("."))
    return names, networks


def _parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an http(s) URL, or OutboundError."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
        host = parts.hostname
    except ValueError:
        raise OutboundError(Failure.INVALID_URL, "Enter a valid http:// or https:// URL.") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise OutboundError(
            Failure.INVALID_URL,
            "Only http:// and https:// URLs can be called"
            + (f", not {scheme}://." if scheme else "."),
        )
    if not host:
        raise OutboundError(Failure.INVALID_URL, "The URL names no host.")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise OutboundError(Failure.INVALID_URL, "The host name is not valid.") from None
    path = parts.path or "/"
    if parts.query:
        path = f"{path}?{parts.query}"
    return scheme, host, port or (443 if scheme == "https" else 80), path


def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise OutboundError(
            Failure.NAME_NOT_RESOLVED, f"The host name {host} does not resolve."
        ) from None
    addresses = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        # IPv6 sockaddrs may carry a zone ("fe80::1%eth0"); the zone is not part of the address.
        ip = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise OutboundError(Failure.NAME_NOT_RESOLVED, f"The host name {host} does not resolve.")
    return addresses


def check_url(url: str) -> tuple[str, str, int, str, list[IPAddress]]:
    """Parse, resolve and check ``url``: (scheme, host, port, path, addresses to connect to).

    Every resolved address must pass: a name that resolves to one public and one private
    address is refused, since the resolver may hand out either.
    """
    scheme, host, port, path = _parse(url)
    addresses = _resolve(host, port)
    names, networks = _allowed_entries()
    if host.lower().rstrip(".") in names:
        return scheme, host, port, path, addresses
    for ip in addresses:
        if is_public(ip) or any(ip in net for net in networks if net.version == ip.version):
            continue
        raise OutboundError(
            Failure.BLOCKED,
            f"{host} is (or resolves to) a loopback, private, link-local, multicast or "
            "reserved address; Meshline only calls public addresses. An operator can allow "
            "the host with MESHLINE_OUTBOUND_ALLOWED_HOSTS.",
        )
    return scheme, host, port, path, addresses


def validate_url(url: str) -> None:
    """Configuration-time check: a ValidationError with a message for the form."""
    try:
        check_url(url)
    except OutboundError as exc:
        raise ValidationError(exc.message, code=exc.classification.replace(" ", "_")) from None


# --- sending ------------------------------------------------------------------------------


def _connect(addresses: Iterable[IPAddress], port: int, timeout: float) -> socket.socket:
    """A socket to the first checked address that answers (never a fresh DNS answer)."""
    error: OSError | None = None
    for ip in addresses:
        # Not socket.create_connection: it would resolve again (a no-op for an address, but
        # this way no resolver is involved at all between the check and the connect).
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect((str(ip), port))
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    assert error is not None
    raise error


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host, port, addresses, timeout):
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def connect(self):
        self.sock = _connect(self._addresses, self.port, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """TLS to the checked address, with SNI and certificate checks against the host name."""

    def __init__(self, host, port, addresses, timeout):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._addresses = addresses

    def connect(self):
        sock = _connect(self._addresses, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _classify(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return Failure.TLS
    if isinstance(exc, TimeoutError | socket.timeout):
        return Failure.TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return Failure.REFUSED
    return Failure.CONNECTION


def post(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float = TIMEOUT_SECONDS,
    max_redirects: int = MAX_REDIRECTS,
) -> int:
    """POST ``body`` to ``url``; the final 2xx status, or OutboundError (classified).

    A redirect is re-checked like the first URL and sent the same POST (a webhook turned
    into a GET would deliver nothing); a redirect to a blocked address is never connected.
    """
    return post_reply(url, body, headers, timeout=timeout, max_redirects=max_redirects).status


def post_reply(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    timeout: float = TIMEOUT_SECONDS,
    max_redirects: int = MAX_REDIRECTS,
) -> Reply:
    """``post``, also keeping the start of the answer's body (in the Reply, or in the
    OutboundError's ``excerpt`` for a non-2xx answer) for a delivery log."""
    for _hop in range(max_redirects + 1):
        scheme, host, port, path, addresses = check_url(url)
        connection_class = _PinnedHTTPS if scheme == "https" else _PinnedHTTP
        connection = connection_class(host, port, addresses, timeout)
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read(MAX_RESPONSE_BYTES)
            status, location = response.status, response.getheader("Location")
        except (OSError, http.client.HTTPException) as exc:
            log.info("outbound POST to %s failed: %r", host, exc)
            raise OutboundError(_classify(exc)) from None
        finally:
            connection.close()
        if status in REDIRECT_STATUSES and location:
            url = urljoin(url, location)
            continue
        excerpt = answer[: EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS]
        if not 200 <= status < 300:
            raise OutboundError(f"HTTP {status}", excerpt=excerpt)
        return Reply(status, excerpt)
    raise OutboundError(Failure.TOO_MANY_REDIRECTS)


# --- signing (Standard Webhooks) ------------------------------------------------------------


def generate_secret() -> str:
    """A new signing secret in the Standard Webhooks format (``whsec_`` + base64 of 24 bytes)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


def signature_headers(
    secret: str, msg_id: str, body: bytes, at: datetime | None = None
) -> dict[str, str]:
    """``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` for one attempt.

    ``msg_id`` stays the same across retries (receivers deduplicate on it); the timestamp is
    the attempt's, so a receiver can refuse an old request replayed. A secret from before
    Standard Webhooks (not ``whsec_...``) is used as raw key bytes: the receiver's key is
    unchanged, it verifies with ``whsec_`` + base64 of its old secret.
    """
    if not secret:
        raise OutboundError(Failure.NO_SECRET)
    key = secret if secret.startswith(SECRET_PREFIX) else secret.encode()
    at = (at or datetime.now(UTC)).astimezone(UTC)
    signature = Webhook(key).sign(msg_id=msg_id, timestamp=at, data=body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signature,
    }


def mask_secret(secret: str) -> str:
    """What is shown once the secret has been handed out: enough to tell two apart."""
    if not secret:
        return ""
    return f"{SECRET_PREFIX}{'•' * 8}{secret[-4:]}"
