"""Which proxy the environment names for a URL (HTTPS_PROXY, NO_PROXY), as urllib and curl read them, and
the host names a CONNECT line needs: for the API transport's own HTTP client (gitlab_rest.py), which does not
import urllib.request for it."""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import re
from collections.abc import Iterator
from urllib.parse import SplitResult, unquote, urlsplit

from gitops_ci import logs
from gitops_ci.errors import ConfigurationError


def proxy_for(netloc: str, scheme: str) -> str | None:
    """The proxy urllib would choose from the environment for a URL's `host[:port]`, without importing
    urllib.request for it: a lowercase variable wins (set but empty, it cancels the uppercase one); a NO_PROXY
    entry matches the host or host:port and their subdomains, `*` every host. An address in a CIDR entry
    (10.0.0.0/8, fd00::/8) is not proxied either, as curl (git's transport) reads it; requests
    (python-gitlab's) reads IPv4 ranges only."""
    proxy, no_proxy = _variable(f"{scheme}_proxy"), _variable("no_proxy") or ""
    host = netloc.lower()
    hosts = (host, re.sub(r":\d*$", "", host)) if not host.endswith("]") else (host,)
    if no_proxy == "*":
        return None
    entries = [e.strip().lstrip(".").lower() for e in no_proxy.split(",")]
    for entry in entries:
        if entry and any(h == entry or h.endswith(f".{entry}") for h in hosts):
            return None
    address = _address(re.sub(r":\d*$", "", host).strip("[]"))
    if address is not None and any(address in network for network in _networks(entries)):
        return None
    return proxy


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _networks(entries: list[str]) -> Iterator[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    for entry in entries:
        if "/" in entry:
            with contextlib.suppress(ValueError):
                yield ipaddress.ip_network(entry, strict=False)


def _variable(lowercase: str) -> str | None:
    value = os.environ.get(lowercase)
    return (value if value is not None else os.environ.get(lowercase.upper())) or None


def proxy_address(proxy: str, variable: str = "HTTPS_PROXY") -> tuple[str, int]:
    """Host and port of a proxy URL (`proxy.corp:3128` without a scheme, as urllib accepts it)."""
    try:
        parts = proxy_parts(proxy)
        port = parts.port or 3128
    except ValueError:
        parts, port = None, 0
    if parts is None or not parts.hostname or not port:
        shown = proxy.rpartition("@")[2][:80]  # never its password
        raise ConfigurationError(f"the proxy {shown!r} ({variable}) is not host:port; fix the variable")
    return parts.hostname, port


def proxy_headers(proxy: str) -> dict[str, str]:
    """Basic credentials for the CONNECT, from `http://user:password@proxy:port` (as urllib sends them)."""
    parts = proxy_parts(proxy)
    if parts.username is None:
        return {}
    password = unquote(parts.password or "")
    logs.register_secret(password)
    pair = f"{unquote(parts.username)}:{password}".encode()
    return {"Proxy-Authorization": f"Basic {base64.b64encode(pair).decode()}"}


def proxy_parts(proxy: str) -> SplitResult:
    return urlsplit(proxy if "://" in proxy else f"http://{proxy}")


def ascii_host(host: str) -> str:
    """An internationalised host name as DNS, TLS and a CONNECT line need it (IDNA); others unchanged."""
    try:
        return host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ConfigurationError(f"GitLab's host name {host!r} is not a valid domain name") from None
