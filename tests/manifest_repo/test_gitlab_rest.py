"""The API transport's proxy: the one urllib would choose from the environment, and its credentials."""

from __future__ import annotations

import base64
import urllib.request

import pytest
import requests.utils

from gitops_ci.errors import ConfigurationError
from gitops_ci.manifest_repo.proxy_env import ascii_host, proxy_address, proxy_for, proxy_headers


@pytest.mark.parametrize(
    ("env", "host", "expected"),
    [
        ({"HTTPS_PROXY": "http://proxy:3128"}, "gitlab.example.com", "http://proxy:3128"),
        (
            {"https_proxy": "http://lower:1", "HTTPS_PROXY": "http://upper:2"},
            "gitlab.example.com",
            "http://lower:1",
        ),
        ({"HTTP_PROXY": "http://proxy:3128"}, "gitlab.example.com", None),  # not for https
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com"}, "gitlab.example.com", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".example.com"}, "gitlab.example.com", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "gitlab.example.com", None),
        ({"HTTPS_PROXY": "http://p:1", "no_proxy": "other.com, Example.COM"}, "GitLab.example.com", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "ample.com"}, "gitlab.example.com", "http://p:1"),
        ({}, "gitlab.example.com", None),
        ({"https_proxy": "", "HTTPS_PROXY": "http://upper:2"}, "gitlab.example.com", None),  # cancelled
        ({"HTTPS_PROXY": "http://p:1", "no_proxy": "", "NO_PROXY": "*"}, "gitlab.example.com", "http://p:1"),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "gitlab.example.com:8443"},
            "gitlab.example.com:8443",
            None,
        ),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "example.com:8443"}, "gitlab.example.com:8443", None),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "gitlab.example.com:8443"},
            "gitlab.example.com:443",
            "http://p:1",
        ),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "gitlab.example.com"}, "gitlab.example.com:8443", None),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "localhost,*"}, "gitlab.example.com", "http://p:1"),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": " * "}, "gitlab.example.com", "http://p:1"),
    ],
)
def test_the_proxy_urllib_would_choose(
    env: dict[str, str], host: str, expected: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_proxy_variables(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert (proxy_for(host, "https") or (None,))[0] == expected
    chosen = urllib.request.getproxies().get("https")  # what urllib's ProxyHandler does for https://HOST/
    assert (None if chosen and urllib.request.proxy_bypass(host) else chosen) == expected


@pytest.mark.parametrize(
    ("no_proxy", "host", "proxied"),
    [
        ("10.0.0.0/8", "10.1.2.3", False),
        ("example.com, 10.0.0.0/8", "10.1.2.3:8443", False),
        ("10.0.0.0/8", "11.1.2.3", True),
        ("192.168.0.0/16", "192.168.7.7", False),
        ("fd00::/8", "[fd00::1]:443", False),
        ("10.0.0.0/8", "gitlab.example.com", True),  # a name is never resolved to match a range
        ("10.0.0.0/33,not/a-range", "10.1.2.3", True),  # unreadable entries match nothing
    ],
)
def test_a_cidr_entry_in_no_proxy_bypasses_the_proxy_for_its_addresses(
    no_proxy: str, host: str, proxied: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As curl (git's transport, since 7.86) reads NO_PROXY, and requests (python-gitlab's) for IPv4."""
    clear_proxy_variables(monkeypatch)
    monkeypatch.setenv("HTTPS_PROXY", "http://p:1")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    assert proxy_for(host, "https") == (("http://p:1", "HTTPS_PROXY") if proxied else None)
    if not host.startswith("["):  # requests reads IPv4 ranges only
        bypassed = requests.utils.should_bypass_proxies(f"https://{host}/", no_proxy=no_proxy)
        assert bypassed is not proxied


def clear_proxy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("https_proxy", "http_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"ALL_PROXY": "http://all:1"}, ("http://all:1", "ALL_PROXY")),
        ({"all_proxy": "http://all:1", "ALL_PROXY": "http://upper:2"}, ("http://all:1", "all_proxy")),
        ({"ALL_PROXY": "http://all:1", "HTTPS_PROXY": "http://p:1"}, ("http://p:1", "HTTPS_PROXY")),
        ({"ALL_PROXY": "http://all:1", "NO_PROXY": "example.com"}, None),
    ],
)
def test_all_proxy_serves_when_the_schemes_own_is_unset_as_curl_and_requests_read_it(
    env: dict[str, str], expected: tuple[str, str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git (curl) and python-gitlab (requests) go through ALL_PROXY: so does the API transport."""
    clear_proxy_variables(monkeypatch)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    url = "https://gitlab.example.com/api/v4/projects"
    assert proxy_for("gitlab.example.com", "https") == expected
    chosen = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    assert chosen == (expected[0] if expected else None)


def test_an_empty_scheme_proxy_cancels_all_proxy_as_in_curl(monkeypatch: pytest.MonkeyPatch) -> None:
    """curl (git) reads a set but empty https_proxy as "no proxy"; requests would fall back to ALL_PROXY."""
    clear_proxy_variables(monkeypatch)
    monkeypatch.setenv("ALL_PROXY", "http://all:1")
    monkeypatch.setenv("https_proxy", "")
    assert proxy_for("gitlab.example.com", "https") is None


@pytest.mark.parametrize("scheme", ["socks5", "socks5h", "socks4"])
def test_a_socks_proxy_is_refused_with_what_to_do(scheme: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        proxy_address(f"{scheme}://ci:s3cret@proxy.corp:1080", "ALL_PROXY")
    message = str(refused.value)
    assert "SOCKS" in message and "(ALL_PROXY)" in message and "--transport git" in message
    assert "s3cret" not in message


def test_a_proxy_is_host_and_port_with_or_without_a_scheme() -> None:
    assert proxy_address("http://proxy.corp:8080") == ("proxy.corp", 8080)
    assert proxy_address("proxy.corp:3128") == ("proxy.corp", 3128)
    assert proxy_address("http://proxy.corp") == ("proxy.corp", 3128)
    for bad in ("http://proxy:abc", "http://:8080"):
        with pytest.raises(ConfigurationError, match="HTTPS_PROXY"):
            proxy_address(bad)


@pytest.mark.parametrize(
    "proxy", ["http://ci:s3cret-pass@proxy.corp:port", "http://ci:s3cret-pass@[proxy:3128"]
)
def test_a_bad_proxy_is_named_without_its_password(proxy: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        proxy_address(proxy)
    assert "s3cret" not in str(refused.value) and "@" not in str(refused.value)


def test_an_internationalised_gitlab_host_is_used_as_idna() -> None:
    assert ascii_host("gitlab.exämple.com") == "gitlab.xn--exmple-cua.com"
    assert ascii_host("gitlab.example.com") == "gitlab.example.com"
    with pytest.raises(ConfigurationError, match="not a valid domain name"):
        ascii_host("a" * 64 + ".exämple.com")


def test_proxy_credentials_are_basic_auth_of_the_decoded_user_and_password() -> None:
    assert proxy_headers("http://proxy.corp:3128") == {}
    assert proxy_headers("http://ci%40corp:p%3Ass@proxy.corp:3128") == {
        "Proxy-Authorization": "Basic " + base64.b64encode(b"ci@corp:p:ss").decode()
    }
