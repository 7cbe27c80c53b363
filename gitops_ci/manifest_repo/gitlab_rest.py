"""GitLab's REST API over one kept-alive HTTPS connection (the standard library's http.client), for the hot
path of `--transport api`: Repository Files, Tree, Commits, Branches and merge_base. python-gitlab (gitlab.py)
serves merge requests and notes; importing it (or requests) would cost more than the requests themselves.

Every answer is mapped here to our errors. Redirects are never followed (the token would go with them);
HTTPS_PROXY/NO_PROXY are honoured through a CONNECT tunnel; a POST is never retried here: whether a lost one
landed is for the adapter to find out.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import ipaddress
import json
import os
import re
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, quote, unquote, urlencode, urlsplit

from gitops_ci import logs
from gitops_ci.deadline import AnswerTooSlow, answer_within
from gitops_ci.errors import AuthError, ConfigurationError, OperationalError, RetryableError
from gitops_ci.manifest_repo import meanwhile
from gitops_ci.manifest_repo.gitlab_connection import GitLabConnection

log = logs.get_logger(__name__)
MAX_ANSWER_BYTES = 16 << 20  # a file is at most 1 MiB (base64: 1.4), a tree page of 100 entries a few KiB
API_SCOPE_HINT = (
    "--transport api commits through GitLab's API, which needs a token with the api scope (write_repository "
    "covers git over HTTPS only): give {variable} the api scope, or use --transport git"
)


@dataclass(frozen=True)
class Answer:
    """A status, the JSON body and the headers (title-cased) of one answer."""

    status: int
    body: Any
    headers: dict[str, str]


class GitLabRest:
    """The project's endpoints under /api/v4/projects/<url-encoded path>."""

    def __init__(self, connection: GitLabConnection) -> None:
        self.connection = connection
        url = urlsplit(connection.url)
        self._https = url.scheme == "https"
        self._host, self._port = _ascii_host(url.hostname or ""), url.port or (443 if self._https else 80)
        self._netloc = url.netloc.rpartition("@")[2]
        self._proxy_variable = "HTTPS_PROXY" if self._https else "HTTP_PROXY"
        self._via: str | None = None  # the proxy of the connection, if any
        self._project = f"{url.path.rstrip('/')}/api/v4/projects/{quote(connection.project_path, safe='')}"
        self._headers = {
            "PRIVATE-TOKEN": connection.token,
            "User-Agent": "gitops-ci",
            "Accept": "application/json",
        }
        self._http: http.client.HTTPConnection | None = None

    def get(self, path: str, params: dict[str, Any] | None = None, *, what: str) -> Answer:
        """GET under the project; 404 comes back as an Answer, every other failure as an error (429, 5xx and
        no answer as RetryableError: the runner tries the step again)."""
        target = self._project + path + (f"?{urlencode(params, doseq=True)}" if params else "")
        return self._send("GET", target, None, what=what, missing_ok=True)

    def post(self, path: str, body: dict[str, Any], *, what: str) -> Answer:
        """POST under the project; a 400 comes back as an Answer (its message says what GitLab refused)."""
        return self._send("POST", self._project + path, json.dumps(body).encode(), what=what, refused_ok=True)

    @staticmethod
    def quote(value: str) -> str:
        """A path segment: `/` becomes %2F, as GitLab requires for file paths and branch names."""
        return quote(value, safe="")

    def _send(
        self, method: str, target: str, body: bytes | None, *, what: str, missing_ok: bool = False,
        refused_ok: bool = False,
    ) -> Answer:  # fmt: skip
        headers = {**self._headers, **({"Content-Type": "application/json"} if body is not None else {})}
        status, data, answer_headers = self._exchange(method, target, body, headers, what)
        log.debug("%s %s → %d", method, target, status)
        answer = Answer(status, _json(data), answer_headers)
        if (
            answer.status < 300
            or (missing_ok and answer.status == 404)
            or (refused_ok and answer.status == 400)
        ):
            return answer
        raise self._error(answer, what)

    def _exchange(
        self, method: str, target: str, body: bytes | None, headers: dict[str, str], what: str
    ) -> tuple[int, bytes, dict[str, str]]:
        """One request and all of its answer, within --network-timeout. A kept-alive connection that the
        server closed meanwhile fails at once: a GET goes again on a new one."""
        for attempt in (1, 2):
            reused = self._http is not None
            try:
                with answer_within(self.connection.timeout):
                    connection = self._connection()
                    connection.request(method, target, body, headers)
                    meanwhile.while_waiting()
                    response = connection.getresponse()
                    data = response.read(MAX_ANSWER_BYTES + 1)
            except (AnswerTooSlow, OSError, http.client.HTTPException) as err:
                self._close()
                error = self._unanswered(err, what)
                closed = isinstance(error, RetryableError) and not isinstance(err, AnswerTooSlow)
                if closed and method == "GET" and reused and attempt == 1:
                    continue
                raise error from None
            if len(data) > MAX_ANSWER_BYTES:
                self._close()
                raise OperationalError(
                    f"{what}: {self.connection.url} answered more than {MAX_ANSWER_BYTES >> 20} MiB"
                )
            return response.status, data, {k.title(): v for k, v in response.getheaders()}
        raise AssertionError("unreachable")

    def _unanswered(self, err: BaseException, what: str) -> Exception:
        url, seconds = self.connection.url, self.connection.timeout
        if isinstance(err, AnswerTooSlow):
            return RetryableError(
                f"{what}: {url} did not answer in full within {seconds:g}s (--network-timeout)"
            )
        if isinstance(err, ssl.SSLCertVerificationError):
            return OperationalError(
                f"{what}: TLS verification of {url} failed ({err.verify_message}); point --ca-file or "
                "CI_SERVER_TLS_CA_FILE at its CA bundle"
            )
        if str(err).startswith("Tunnel connection failed: 407"):
            variable = self._proxy_variable
            if self._via is not None and _proxy_parts(self._via).username is not None:
                return AuthError(f"{what}: the proxy in {variable} refused its user and password (407)")
            return AuthError(
                f"{what}: the proxy in {variable} wants a user and password (407); give them in its URL: "
                "http://user:password@proxy:3128"
            )
        return RetryableError(f"{what}: {url} did not answer ({err or type(err).__name__})")

    def _connection(self) -> http.client.HTTPConnection:
        if self._http is None:
            timeout = self.connection.timeout
            proxy = _proxy(self._netloc, "https" if self._https else "http")
            host, port = _proxy_address(proxy, self._proxy_variable) if proxy else (self._host, self._port)
            if proxy and ":" in self._host and sys.version_info < (3, 12):  # 3.11 writes CONNECT ::1:443
                raise ConfigurationError(
                    f"{self.connection.url}: an IPv6 address through a proxy needs Python 3.12; use its host "
                    "name, or add it to NO_PROXY"
                )
            self._via = proxy
            if self._https:
                context = ssl.create_default_context(cafile=self.connection.ca_file)
                self._http = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
            else:
                self._http = http.client.HTTPConnection(host, port, timeout=timeout)
            if proxy:
                self._http.set_tunnel(self._host, self._port, headers=_proxy_headers(proxy))
        return self._http

    def _close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def _error(self, answer: Answer, what: str) -> Exception:
        c, status, message = self.connection, answer.status, message_of(answer.body)
        if 300 <= status < 400:
            location = answer.headers.get("Location")
            return OperationalError(
                f"{what}: {c.url} answered {status} (a redirect to {location}); gitops-ci never sends the "
                "token elsewhere: use the URL GitLab redirects to"
            )
        if status == 401:
            return AuthError(
                f"{what}: {c.token_variable} was rejected by {c.url} (401); check the token is valid"
            )
        if (
            status == 403
            and isinstance(answer.body, dict)
            and answer.body.get("error") == "insufficient_scope"
        ):
            return AuthError(f"{what}: {API_SCOPE_HINT.format(variable=c.token_variable)}")
        if status == 403:
            return AuthError(f"{what}: {message} (403); the token's user needs Developer access and may push")
        if status == 404:
            return ConfigurationError(
                f"{what}: project {c.project_path} was not found on {c.url}; check --repo-url and that "
                f"{c.token_variable} can see it"
            )
        if status == 429 or status >= 500:
            return RetryableError(f"{what}: {c.url} answered {status} ({message})")
        return OperationalError(f"{what}: {c.url} answered {status} ({message})")


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None


def message_of(body: Any) -> str:
    if isinstance(body, dict):
        value = body.get("message") or body.get("error_description") or body.get("error") or ""
        return str(value[0] if isinstance(value, list) and value else value)[:300] or "no message"
    return "no message"


def _proxy(netloc: str, scheme: str) -> str | None:
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


def _proxy_address(proxy: str, variable: str = "HTTPS_PROXY") -> tuple[str, int]:
    """Host and port of a proxy URL (`proxy.corp:3128` without a scheme, as urllib accepts it)."""
    try:
        parts = _proxy_parts(proxy)
        port = parts.port or 3128
    except ValueError:
        parts, port = None, 0
    if parts is None or not parts.hostname or not port:
        shown = proxy.rpartition("@")[2][:80]  # never its password
        raise ConfigurationError(f"the proxy {shown!r} ({variable}) is not host:port; fix the variable")
    return parts.hostname, port


def _proxy_headers(proxy: str) -> dict[str, str]:
    """Basic credentials for the CONNECT, from `http://user:password@proxy:port` (as urllib sends them)."""
    parts = _proxy_parts(proxy)
    if parts.username is None:
        return {}
    password = unquote(parts.password or "")
    logs.register_secret(password)
    pair = f"{unquote(parts.username)}:{password}".encode()
    return {"Proxy-Authorization": f"Basic {base64.b64encode(pair).decode()}"}


def _proxy_parts(proxy: str) -> SplitResult:
    return urlsplit(proxy if "://" in proxy else f"http://{proxy}")


def _ascii_host(host: str) -> str:
    """An internationalised host name as DNS, TLS and a CONNECT line need it (IDNA); others unchanged."""
    try:
        return host if host.isascii() else host.encode("idna").decode("ascii")
    except UnicodeError:
        raise ConfigurationError(f"GitLab's host name {host!r} is not a valid domain name") from None
