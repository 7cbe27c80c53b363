"""GitLab's REST API over a kept-alive HTTPS connection (the standard library's http.client), for the hot
path of `--transport api`: Repository Files, Tree, Commits, Branches and merge_base. python-gitlab (gitlab.py)
serves merge requests and notes; importing it (or requests) would cost more than the requests themselves.

Every answer is mapped here to our errors. Redirects are never followed (the token would go with them);
HTTPS_PROXY/NO_PROXY are honoured through a CONNECT tunnel (HTTP_PROXY for an http:// GitLab: requests in
absolute form, as curl and requests send them); a POST is never retried here: whether a lost one
landed is for the adapter to find out.
"""

from __future__ import annotations

import http.client
import json
import ssl
import sys
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from gitops_ci import logs
from gitops_ci.deadline import AnswerTooSlow, answer_within
from gitops_ci.errors import ConfigurationError, OperationalError, RetryableError
from gitops_ci.manifest_repo import meanwhile
from gitops_ci.manifest_repo.gitlab_answers import Answer, proxy_refusal, refusal, unanswered
from gitops_ci.manifest_repo.gitlab_connection import GitLabConnection
from gitops_ci.manifest_repo.proxy_env import ascii_host, proxy_address, proxy_for, proxy_headers
from gitops_ci.manifest_repo.tls_trust import Trust

log = logs.get_logger(__name__)
MAX_ANSWER_BYTES = 16 << 20  # a file is at most 1 MiB (base64: 1.4), a tree page of 100 entries a few KiB


# A GET: a path under the project, its query, and what it reads (for errors)
Get = tuple[str, dict[str, Any] | None, str]


class GitLabRest:
    """The project's endpoints under /api/v4/projects/<url-encoded path>."""

    def __init__(self, connection: GitLabConnection, trust: Trust | None = None) -> None:
        self.connection = connection
        self._trust = trust or Trust(connection.ca_file)
        url = urlsplit(connection.url)
        self._https = url.scheme == "https"
        self._host, self._port = ascii_host(url.hostname or ""), url.port or (443 if self._https else 80)
        self._netloc = url.netloc.rpartition("@")[2]
        self._proxy_variable = "HTTPS_PROXY" if self._https else "HTTP_PROXY"  # the one in use, once chosen
        self._via: str | None = None  # the proxy of the connection, if any
        self._forward = ""  # "http://host:port" before each target when an HTTP proxy forwards the requests
        self._proxy_auth: dict[str, str] = {}
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
        return self._send("GET", self._target(path, params), None, what=what, missing_ok=True)

    def get_together(self, first: Get, ahead: Sequence[Get]) -> tuple[Answer, list[Answer | None]]:
        """`first` and the GETs read ahead with it, all sent before any answer is awaited: `first` on the
        kept-alive connection, each other on one of its own (closed after), so GitLab answers them side by
        side while this process does its waiting-time work. `first` fails as `get` does (its connection
        failing, it is sent again alone); a read ahead that fails, or is answered 429 or 5xx, comes back
        None: it is for the caller to read when it needs it."""
        gets = [first, *ahead]
        sent: dict[int, http.client.HTTPConnection | None] = {}
        answers: list[Answer | None] = []
        try:
            with answer_within(self.connection.timeout):
                # a new connection's handshake first: it waits longer than the kept-alive one
                for index in reversed(range(len(gets))):
                    sent[index] = self._sent(index, gets[index])
                meanwhile.while_waiting()
                for index, get in enumerate(gets):
                    answers.append(self._collected(index, sent[index], get))
        except AnswerTooSlow as err:  # the bound is of the whole exchange: the step fails, as `get`'s would
            raise self._unanswered(err, gets[min(len(answers), len(gets) - 1)][2]) from None
        finally:
            if not answers:  # its answer unread, the kept-alive connection could not carry another request
                self._close()
            for index, extra in sent.items():
                if index and extra is not None:
                    extra.close()
        path, params, what = first
        return answers[0] or self.get(path, params, what=what), answers[1:]

    def _sent(self, index: int, get: Get) -> http.client.HTTPConnection | None:
        """The GET sent on the kept-alive connection (index 0) or a new one; None if it could not be."""
        path, params, what = get
        connection = None
        try:
            connection = self._open() if index else self._connection()
            self._request(connection, "GET", self._target(path, params), None, self._headers)
        except (OSError, http.client.HTTPException) as err:
            self._failed(index, connection, err, what)
            return None
        except BaseException:
            if connection is not None:
                connection.close()
            raise
        return connection

    def _collected(
        self, index: int, connection: http.client.HTTPConnection | None, get: Get
    ) -> Answer | None:
        if connection is None:
            return None
        path, params, what = get
        try:
            raw = self._answer_of(connection, what)
        except (OSError, http.client.HTTPException) as err:
            self._failed(index, connection, err, what)
            return None
        log.debug("GET %s → %d (sent together)", self._target(path, params), raw[0])
        try:
            return self._checked(raw, what, missing_ok=True)
        except RetryableError:
            if index == 0:
                raise
            return None

    def _failed(
        self, index: int, connection: http.client.HTTPConnection | None, err: BaseException, what: str
    ) -> None:
        """Closes a connection that failed; a failure that sending again would not cure (TLS verification, a
        proxy's 407) is raised."""
        if index == 0:
            self._close()
        if connection is not None:
            connection.close()
        error = self._unanswered(err, what)
        if not isinstance(error, RetryableError):
            raise error from None

    def post(self, path: str, body: dict[str, Any], *, what: str) -> Answer:
        """POST under the project; a 400 comes back as an Answer (its message says what GitLab refused)."""
        return self._send("POST", self._project + path, json.dumps(body).encode(), what=what, refused_ok=True)

    @staticmethod
    def quote(value: str) -> str:
        """A path segment: `/` becomes %2F, as GitLab requires for file paths and branch names."""
        return quote(value, safe="")

    def _target(self, path: str, params: dict[str, Any] | None) -> str:
        return self._project + path + (f"?{urlencode(params, doseq=True)}" if params else "")

    def _send(
        self, method: str, target: str, body: bytes | None, *, what: str, missing_ok: bool = False,
        refused_ok: bool = False,
    ) -> Answer:  # fmt: skip
        headers = {**self._headers, **({"Content-Type": "application/json"} if body is not None else {})}
        status, data, answer_headers = self._exchange(method, target, body, headers, what)
        log.debug("%s %s → %d", method, target, status)
        return self._checked((status, data, answer_headers), what, missing_ok, refused_ok)

    def _checked(
        self, raw: tuple[int, bytes, dict[str, str]], what: str, missing_ok: bool = False,
        refused_ok: bool = False,
    ) -> Answer:  # fmt: skip
        """The answer, read (a body that is not JSON reads as None); a status the caller does not take is
        raised as our error."""
        status, data, headers = raw
        answer = Answer(status, _json(data), headers, f"{what}: {self.connection.url}")
        if (
            answer.status < 300
            or (missing_ok and answer.status == 404)
            or (refused_ok and answer.status == 400)
        ):
            return answer
        if answer.status == 407 and self._via:
            raise proxy_refusal(what, self._via, self._proxy_variable)
        raise refusal(answer, self.connection, what)

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
                    self._request(connection, method, target, body, headers)
                    meanwhile.while_waiting()
                    return self._answer_of(connection, what)
            except (AnswerTooSlow, OSError, http.client.HTTPException) as err:
                self._close()
                error = self._unanswered(err, what)
                closed = isinstance(error, RetryableError) and not isinstance(err, AnswerTooSlow)
                if closed and method == "GET" and reused and attempt == 1:
                    continue
                raise error from None
        raise AssertionError("unreachable")

    def _request(
        self, connection: http.client.HTTPConnection, method: str, target: str, body: bytes | None,
        headers: dict[str, str],
    ) -> None:  # fmt: skip
        connection.request(method, self._forward + target, body, {**headers, **self._proxy_auth})

    def _answer_of(
        self, connection: http.client.HTTPConnection, what: str
    ) -> tuple[int, bytes, dict[str, str]]:
        response = connection.getresponse()
        data = response.read(MAX_ANSWER_BYTES + 1)
        if len(data) > MAX_ANSWER_BYTES:
            connection.close()
            raise OperationalError(
                f"{what}: {self.connection.url} answered more than {MAX_ANSWER_BYTES >> 20} MiB"
            )
        return response.status, data, {k.title(): v for k, v in response.getheaders()}

    def _unanswered(self, err: BaseException, what: str) -> Exception:
        return unanswered(err, self.connection, what, self._via, self._proxy_variable)

    def _connection(self) -> http.client.HTTPConnection:
        if self._http is None:
            self._http = self._open()
        return self._http

    def _open(self) -> http.client.HTTPConnection:
        """A new connection, connected: its handshake done before a byte of any request is sent, so that a
        certificate the system's CA directory alone could not verify is tried again with every default CA
        (tls_trust) without sending anything twice."""
        connection = self._new()
        try:
            connection.connect()
        except ssl.SSLCertVerificationError as err:
            connection.close()
            if not self._trust.widened(err):
                raise
            log.info(
                "%s: its CA is in the system's bundle, not in the CA directory beside it; verified against "
                "the whole bundle (run update-ca-certificates, or pass --ca-file)",
                self.connection.url,
            )
            return self._open()
        except BaseException:
            connection.close()
            raise
        return connection

    def _new(self) -> http.client.HTTPConnection:
        timeout = self.connection.timeout
        chosen = proxy_for(self._netloc, "https" if self._https else "http")
        proxy, self._proxy_variable = chosen or (None, self._proxy_variable)
        host, port = proxy_address(proxy, self._proxy_variable) if proxy else (self._host, self._port)
        # Python 3.11 writes `CONNECT ::1:443`, without the brackets
        if proxy and self._https and ":" in self._host and sys.version_info < (3, 12):
            raise ConfigurationError(
                f"{self.connection.url}: an IPv6 address through a proxy needs Python 3.12; use its host "
                "name, or add it to NO_PROXY"
            )
        self._via = proxy
        connection: http.client.HTTPConnection
        if self._https:
            context = self._trust.context()
            connection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout)
        if proxy and self._https:
            connection.set_tunnel(self._host, self._port, headers=proxy_headers(proxy))
        elif proxy:  # proxies commonly refuse a CONNECT to port 80 (squid: to any port but 443)
            authority = f"[{self._host}]" if ":" in self._host else self._host
            self._forward, self._proxy_auth = f"http://{authority}:{self._port}", proxy_headers(proxy)
        return connection

    def _close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None
