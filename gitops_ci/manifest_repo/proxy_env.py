"""Which proxy the environment names for a URL (HTTPS_PROXY, ALL_PROXY, NO_PROXY), as curl and requests
read them, and the host names a CONNECT line needs: for the API transport's own HTTP client (gitlab_rest.py),
which does not import urllib.request for it."""

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


def proxy_for(netloc: str, scheme: str) -> tuple[str, str] | None:
    """The proxy for a URL's `host[:port]` and the variable that names it, as urllib chooses it (without
    importing urllib.request for it), and ALL_PROXY when the scheme's own is unset, as curl (git's transport)
    and requests (python-gitlab's) read it: a lowercase variable wins (set but empty, it cancels the uppercase
    one); a NO_PROXY entry matches the host or host:port and their subdomains, `*` every host. An address in a
    CIDR entry (10.0.0.0/8, fd00::/8) is not proxied either, as curl reads it; requests reads IPv4 ranges
    only."""
    proxy = _variable(f"{scheme}_proxy") or _variable("all_proxy")  # an empty one cancels ALL_PROXY too
    no_proxy = (_variable("no_proxy") or ("", ""))[0]
    if proxy is None or not proxy[0]:
        return None
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


def _variable(lowercase: str) -> tuple[str, str] | None:
    """The value and the name of the variable, the lowercase one first; None if neither is set."""
    for name in (lowercase, lowercase.upper()):
        if name in os.environ:
            return os.environ[name], name
    return None


def proxy_address(proxy: str, variable: str = "HTTPS_PROXY") -> tuple[str, int]:
    """Host and port of an HTTP proxy's URL (`proxy.corp:3128` without a scheme, as urllib accepts it)."""
    shown = proxy.rpartition("@")[2][:80]  # never its password
    try:
        parts = proxy_parts(proxy)
        port = parts.port or 3128
    except ValueError:
        parts, port = None, 0
    if parts is not None and parts.scheme.startswith("socks"):
        raise ConfigurationError(
            f"the proxy {shown!r} ({variable}) is a SOCKS proxy, and --transport api speaks to HTTP "
            "proxies only: name an HTTP proxy in HTTPS_PROXY (HTTP_PROXY for an http:// GitLab), or use "
            "--transport git"
        )
    if parts is None or not parts.hostname or not port:
        raise ConfigurationError(f"the proxy {shown!r} ({variable}) is not host:port; fix the variable")
    return parts.hostname, port


def register_proxy_passwords() -> None:
    """The passwords in the proxy variables git reads, masked in what git says (it may quote the URL)."""
    for lowercase in ("https_proxy", "http_proxy", "all_proxy"):
        found = _variable(lowercase)
        try:
            password = urlsplit(found[0]).password if found else None
        except ValueError:
            password = None
        if password:
            logs.register_secret(password)
            logs.register_secret(unquote(password))


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
