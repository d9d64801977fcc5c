"""The outbound guard (meshline.outbound): which URLs may be called, what a failure is
stored as, and how requests are signed. Traffic goes only to 127.0.0.1; name resolution is
mocked (no real DNS)."""

import socket
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.core.exceptions import ValidationError
from standardwebhooks import Webhook

from meshline import outbound
from meshline.outbound import Failure, OutboundError


def resolves_to(monkeypatch, *addresses):
    """Make every host name resolve to ``addresses``; returns the names looked up."""
    looked_up = []

    def fake_getaddrinfo(host, port, *args, **kwargs):
        looked_up.append(host)
        return [
            (
                socket.AF_INET6 if ":" in a else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (a, port, 0, 0) if ":" in a else (a, port),
            )
            for a in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    return looked_up


@pytest.fixture(autouse=True)
def no_allowed_hosts(settings):
    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = []


BLOCKED_URLS = [
    "http://127.0.0.1:5432/",
    "http://127.1/",
    "http://localhost.:8000/",  # resolved below to 127.0.0.1 like every name here
    "http://0.0.0.0/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5/hook",
    "http://172.16.3.4/",
    "http://192.168.1.1/",
    "http://100.100.100.200/",  # shared space (Alibaba metadata)
    "http://192.0.0.192/",  # Oracle metadata
    "http://224.0.0.1/",
    "http://255.255.255.255/",
    "http://[::1]/",
    "http://[::]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:169.254.169.254]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[fd00:ec2::254]/",  # AWS IPv6 metadata
    "http://[fe80::1]/",
    "http://[ff02::1]/",
]


@pytest.mark.parametrize("url", BLOCKED_URLS)
def test_non_public_addresses_are_blocked(monkeypatch, url):
    resolves_to(monkeypatch, "127.0.0.1")

    with pytest.raises(OutboundError) as caught:
        outbound.check_url(url)

    assert str(caught.value) == Failure.BLOCKED
    assert "MESHLINE_OUTBOUND_ALLOWED_HOSTS" in caught.value.message


@pytest.mark.parametrize(
    "url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://example.com/", "//x.com/"]
)
def test_only_http_and_https_are_callable(url):
    with pytest.raises(ValidationError) as caught:
        outbound.validate_url(url)

    assert caught.value.code == "invalid_URL"
    assert "http:// and https://" in caught.value.messages[0]


@pytest.mark.parametrize("url", ["http://", "http://host:99999/", "https://[::1/"])
def test_malformed_urls_are_invalid(url):
    with pytest.raises(OutboundError) as caught:
        outbound.check_url(url)
    assert str(caught.value) == Failure.INVALID_URL


def test_a_name_that_resolves_to_a_private_address_is_blocked(monkeypatch):
    looked_up = resolves_to(monkeypatch, "93.184.216.34", "10.1.2.3")

    with pytest.raises(ValidationError, match="resolves to"):
        outbound.validate_url("https://hooks.example.com/x")

    # One private answer is enough: the resolver may hand out either.
    assert looked_up == ["hooks.example.com"]


def test_a_name_that_resolves_to_a_mapped_loopback_is_blocked(monkeypatch):
    resolves_to(monkeypatch, "::ffff:127.0.0.1")

    with pytest.raises(OutboundError, match="blocked address"):
        outbound.check_url("https://rebind.example.com/")


def test_a_public_name_is_allowed_with_its_checked_addresses(monkeypatch):
    resolves_to(monkeypatch, "93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946")

    scheme, host, port, path, addresses = outbound.check_url(
        "HTTPS://Hooks.Example.com/in?x=1#frag"
    )

    assert (scheme, host, port, path) == ("https", "hooks.example.com", 443, "/in?x=1")
    assert [str(a) for a in addresses] == ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]


def test_a_name_that_does_not_resolve_is_a_form_error(monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)

    with pytest.raises(ValidationError, match="does not resolve"):
        outbound.validate_url("https://nowhere.example/")


def test_operator_allowed_hosts_names_addresses_and_networks(monkeypatch, settings):
    resolves_to(monkeypatch, "10.20.0.7")
    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = ["hooks.internal", "127.0.0.1", "10.20.0.0/16"]

    outbound.validate_url("http://hooks.internal/x")  # by name
    outbound.validate_url("http://127.0.0.1:8080/x")  # by address
    outbound.validate_url("http://other.internal/x")  # resolves into the allowed network
    with pytest.raises(ValidationError):
        outbound.validate_url("http://[::1]/")  # allowing 127.0.0.1 does not allow ::1
    with pytest.raises(ValidationError):
        outbound.validate_url("http://169.254.169.254/")


# --- sending, against a local receiver ----------------------------------------------------


class Receiver:
    """127.0.0.1 HTTP server: records POSTs; answers ``status`` with optional ``location``."""

    def __init__(self):
        self.status, self.location, self.requests = 200, None, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, dict(self.headers.items()), body))
                self.send_response(receiver.status)
                if receiver.location:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    server = Receiver()
    yield server
    server.close()


def test_post_delivers_to_an_allowed_receiver(receiver):
    assert outbound.post(f"{receiver.url}/in?x=1", b"{}", {"X-Test": "1"}) == 200

    [(path, headers, body)] = receiver.requests
    assert (path, headers["X-Test"], headers["Host"], body) == (
        "/in?x=1",
        "1",
        receiver.url.removeprefix("http://"),
        b"{}",
    )


def test_post_to_loopback_is_refused_without_the_operator_setting(receiver, settings):
    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = []

    with pytest.raises(OutboundError, match="blocked address"):
        outbound.post(receiver.url, b"{}", {})

    assert receiver.requests == []


def test_post_connects_to_the_checked_address_without_a_second_lookup(
    receiver, monkeypatch, settings
):
    # A rebinding resolver answers differently the second time: there is no second time.
    looked_up = resolves_to(monkeypatch, "127.0.0.1")
    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = ["hooks.test"]
    port = receiver.server.server_port

    assert outbound.post(f"http://hooks.test:{port}/", b"{}", {}) == 200

    assert looked_up == ["hooks.test"]
    assert receiver.requests[0][1]["Host"] == f"hooks.test:{port}"


def test_redirect_to_a_metadata_address_is_never_followed(receiver, monkeypatch):
    receiver.status, receiver.location = 302, "http://169.254.169.254/latest/meta-data/"
    connected = []
    real_connect = outbound._connect
    monkeypatch.setattr(
        outbound,
        "_connect",
        lambda addresses, port, timeout: (
            connected.append([str(a) for a in addresses]) or real_connect(addresses, port, timeout)
        ),
    )

    with pytest.raises(OutboundError) as caught:
        outbound.post(f"{receiver.url}/hook", b"{}", {})

    assert str(caught.value) == Failure.BLOCKED
    assert connected == [["127.0.0.1"]]  # the receiver only; never the metadata address
    assert len(receiver.requests) == 1


def test_redirect_to_an_allowed_address_is_followed_with_the_same_post(receiver):
    receiver.location = f"{receiver.url}/moved"
    receiver.status = 307
    target = Receiver()
    try:
        receiver.location = f"{target.url}/moved"
        assert outbound.post(f"{receiver.url}/hook", b'{"a": 1}', {"X-Test": "1"}) == 200
    finally:
        target.close()

    [(path, headers, body)] = target.requests
    assert (path, headers["X-Test"], body) == ("/moved", "1", b'{"a": 1}')


def test_redirect_loops_stop_after_the_limit(receiver):
    receiver.status, receiver.location = 302, "/again"

    with pytest.raises(OutboundError, match="too many redirects"):
        outbound.post(receiver.url, b"{}", {})

    assert len(receiver.requests) == outbound.MAX_REDIRECTS + 1


@pytest.mark.parametrize("status", [404, 500, 503])
def test_error_status_is_classified_by_its_code(receiver, status):
    receiver.status = status

    with pytest.raises(OutboundError) as caught:
        outbound.post(receiver.url, b"{}", {})

    assert str(caught.value) == f"HTTP {status}"


def test_closed_port_is_connection_refused(settings):
    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    with pytest.raises(OutboundError) as caught:
        outbound.post(f"http://127.0.0.1:{port}/", b"{}", {})

    assert str(caught.value) == Failure.REFUSED


def test_a_silent_server_is_a_timeout(settings):
    settings.MESHLINE_OUTBOUND_ALLOWED_HOSTS = ["127.0.0.1"]
    with socket.socket() as server:  # accepts (backlog) but never answers
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]

        with pytest.raises(OutboundError) as caught:
            outbound.post(f"http://127.0.0.1:{port}/", b"{}", {}, timeout=0.2)

    assert str(caught.value) == Failure.TIMEOUT


def test_tls_to_a_plain_http_server_is_a_tls_error(receiver):
    with pytest.raises(OutboundError) as caught:
        outbound.post(receiver.url.replace("http://", "https://"), b"{}", {})

    assert str(caught.value) == Failure.TLS


# --- signing --------------------------------------------------------------------------------


def test_signature_headers_verify_with_standard_webhooks():
    secret = outbound.generate_secret()
    at = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)

    headers = outbound.signature_headers(secret, "msg_1", b'{"a": 1}', at=at)

    assert headers["webhook-id"] == "msg_1"
    assert headers["webhook-timestamp"] == str(int(at.timestamp()))
    expected = Webhook(secret).sign("msg_1", at, '{"a": 1}')
    assert headers["webhook-signature"] == expected
    assert secret.startswith("whsec_") and secret != outbound.generate_secret()


def test_a_legacy_secret_signs_with_its_raw_bytes():
    at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

    headers = outbound.signature_headers("topsecret", "msg_1", b"{}", at=at)

    assert headers["webhook-signature"] == Webhook(b"topsecret").sign("msg_1", at, "{}")


def test_no_secret_is_a_classified_failure():
    with pytest.raises(OutboundError, match="no signing secret"):
        outbound.signature_headers("", "msg_1", b"{}")


def test_mask_secret_keeps_only_the_last_four_characters():
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    masked = outbound.mask_secret(secret)

    assert masked.endswith("LaSw") and "MfKQ9r8GKYqr" not in masked
    assert outbound.mask_secret("") == ""
