import pytest

from reporting.normalize import normalize_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("https://acme.example/lp/spring", "https://acme.example/lp/spring"),
        ("http://acme.example/lp/spring", "https://acme.example/lp/spring"),
        ("HTTPS://ACME.Example/lp/spring/", "https://acme.example/lp/spring"),
        ("https://acme.example:443/lp/spring", "https://acme.example/lp/spring"),
        ("https://acme.example:8443/lp/", "https://acme.example:8443/lp"),
        ("https://acme.example/lp/spring#top", "https://acme.example/lp/spring"),
        (
            "https://acme.example/lp/spring?utm_source=g&utm_medium=cpc&gclid=x&fbclid=y",
            "https://acme.example/lp/spring",
        ),
        ("https://acme.example/p?b=2&a=1&utm_campaign=z", "https://acme.example/p?a=1&b=2"),
        ("https://acme.example", "https://acme.example/"),
        ("https://acme.example/", "https://acme.example/"),
        ("https://acme.example/Spring", "https://acme.example/Spring"),  # paths keep case
        ("  https://acme.example/x/  ", "https://acme.example/x"),
        ("not a url", "not a url"),
        ("https://[::1/x", "https://[::1/x"),  # unparseable: returned, never raised
    ],
)
def test_normalize_url(raw, expected):
    assert normalize_url(raw) == expected
