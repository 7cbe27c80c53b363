"""Argo CD over HTTP: the GitLab webhook and the application API; also the requests boundary that
the Flux receiver shares (both are GitLab-style webhooks over plain HTTPS).

`requests` is imported inside `send` (~80 ms), so commands that never talk HTTP do not pay for it.
Status codes and texts follow argo-cd `util/webhook/webhook.go` (400 "X-Gitlab-Token validation failed",
503 "Queue is full") and `server/application/application.go` (grpc-gateway errors; 403 "permission denied"
also for apps that do not exist, so a wrong name and a missing grant read the same).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from gitops_ci import logs
from gitops_ci.deadline import AnswerTooSlow, answer_within
from gitops_ci.errors import (
    AuthError,
    ConfigurationError,
    OperationalError,
    RetryableError,
    SyncError,
    root_cause,
)
from gitops_ci.naming import check_ca_file, check_http_url
from gitops_ci.targets.fields import text

log = logs.get_logger(__name__)
REQUEST_TIMEOUT = 30.0
MAX_ANSWER_BYTES = 16 << 20  # an Application with its resource tree is a few hundred KiB
WEBHOOK_SECRET_VARIABLE = "GITOPS_WEBHOOK_SECRET"
TOKEN_VARIABLE = "ARGOCD_AUTH_TOKEN"
_SECRET_HEADERS = {"x-gitlab-token": logs.MASK, "authorization": f"Bearer {logs.MASK}"}
_AUTO_SYNC_REFUSAL = "auto-sync currently set to"
_OPERATION_RUNNING = "another operation is already in progress"


@dataclass(frozen=True)
class PlannedRequest:
    """One HTTP request, sendable as is; `shown()` is what a dry run or a log may print."""

    method: str
    url: str
    headers: Mapping[str, str] = field(repr=False)
    body: Any = None
    params: Mapping[str, str] | None = None

    def shown(self) -> dict[str, Any]:
        headers = {k: _SECRET_HEADERS.get(k.lower(), v) for k, v in self.headers.items()}
        return {
            "method": self.method,
            "url": self.url,
            "params": self.params,
            "headers": headers,
            "body": self.body,
        }


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    text: str

    def json(self) -> Any:
        try:
            return json.loads(self.text)
        except ValueError:
            return None

    def message(self) -> str:
        """grpc-gateway's `message`, else the first line of the body."""
        data = self.json()
        if isinstance(data, dict) and data.get("message"):
            return logs.one_line(str(data["message"]))
        return logs.one_line((self.text.strip().splitlines() or [f"HTTP {self.status}"])[0])


def send(
    request: PlannedRequest, *, ca_file: str | None, what: str, timeout: float = REQUEST_TIMEOUT
) -> HttpAnswer:
    """Send `request`; connection failures and 5xx become RetryableError, TLS failures name --ca-file."""
    import requests  # lazily: see the module docstring

    check_ca_file(ca_file)
    data = None if request.body is None else json.dumps(request.body).encode()
    try:
        with answer_within(timeout):
            response = requests.request(
                request.method,
                request.url,
                headers=dict(request.headers),
                params=dict(request.params) if request.params else None,
                data=data,
                verify=ca_file or True,
                timeout=timeout,
                allow_redirects=False,  # a redirected POST turns into a GET: say so instead
                stream=True,  # read below, bounded
            )
            with response:
                text = _bounded_text(response, what)
    except AnswerTooSlow:
        raise RetryableError(f"{what}: {request.url} did not answer in full within {timeout:g}s") from None
    except requests.exceptions.SSLError as err:
        raise OperationalError(
            f"{what}: TLS verification of {request.url} failed ({_reason(err)}); point --ca-file "
            "(GITOPS_CA_FILE or CI_SERVER_TLS_CA_FILE) at the CA bundle that signed its certificate"
        ) from None
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
        raise RetryableError(f"{what}: {request.url} is unreachable ({_reason(err)})") from None
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema) as err:
        raise ConfigurationError(f"{what}: {request.url!r} is not a valid URL ({err})") from None
    except requests.exceptions.RequestException as err:
        raise OperationalError(f"{what}: request to {request.url} failed ({_reason(err)})") from None
    answer = HttpAnswer(response.status_code, text)
    log.debug("%s %s -> %s", request.method, request.url, answer.status)
    if answer.status >= 500:
        raise RetryableError(f"{what}: {request.url} answered {answer.status} ({answer.message()})")
    if 300 <= answer.status < 400:
        raise SyncError(
            f"{what}: {request.url} redirects to {response.headers.get('Location')}; use that URL instead"
        )
    return answer


def _bounded_text(response: Any, what: str) -> str:
    """The body as text, refused past MAX_ANSWER_BYTES (after decompression: a gzip bomb is refused too)."""
    body = bytearray()
    for chunk in response.iter_content(64 << 10):
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            raise OperationalError(f"{what}: {response.url} answered more than {MAX_ANSWER_BYTES >> 20} MiB")
    return bytes(body).decode(response.encoding or "utf-8", "replace")


def _reason(err: Exception) -> str:
    return root_cause(err)


# --------------------------------------------------------------------------- webhook


def webhook_request(url: str, payload: Mapping[str, Any], secret: str | None) -> PlannedRequest:
    """A GitLab Push Hook, as GitLab itself would send it to Argo CD's /api/webhook."""
    headers = {"Content-Type": "application/json", "X-Gitlab-Event": "Push Hook"}
    if secret:
        headers["X-Gitlab-Token"] = secret
    return PlannedRequest("POST", url, headers, dict(payload))


def post_webhook(request: PlannedRequest, *, ca_file: str | None, timeout: float = REQUEST_TIMEOUT) -> None:
    answer = send(request, ca_file=ca_file, what="Argo CD webhook", timeout=timeout)
    if answer.status == 200:
        return
    message = answer.message()
    if "X-Gitlab-Token validation failed" in message or answer.status in (401, 403):
        raise AuthError(
            f"{WEBHOOK_SECRET_VARIABLE} was rejected by {request.url} ({message}); set it to the "
            "webhook.gitlab.secret key of the argocd-secret Secret"
        )
    if answer.status == 404:
        raise SyncError(f"no Argo CD webhook at {request.url} (404); --argocd-webhook ends in /api/webhook")
    raise SyncError(f"Argo CD webhook {request.url} refused the push event ({answer.status}: {message})")


# --------------------------------------------------------------------------- application API


def server_url(server: str) -> str:
    """`argocd.example.com` (the argocd CLI's ARGOCD_SERVER form) or a full URL, without a trailing /."""
    url = server if "://" in server else f"https://{server}"
    return check_http_url(url, "--argocd-server").rstrip("/")


class ArgoCDApi:
    """The few calls CI needs, with a project-role token (`get` and `sync` on the project's apps)."""

    def __init__(
        self, server: str, token: str | None, *, ca_file: str | None = None, timeout: float = REQUEST_TIMEOUT
    ) -> None:
        if not token:
            raise ConfigurationError(
                f"--argocd-server needs {TOKEN_VARIABLE}: create a project-role token with "
                "`argocd proj role create-token PROJECT ROLE` and store it as a masked CI/CD variable"
            )
        logs.register_secret(token)
        self.server = server_url(server)
        self._token = token
        self._ca_file = ca_file
        self._timeout = timeout

    def _request(self, method: str, name: str, suffix: str = "", **kwargs: Any) -> PlannedRequest:
        headers = {"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"}
        url = f"{self.server}/api/v1/applications/{quote(name, safe='')}{suffix}"
        return PlannedRequest(method, url, headers, **kwargs)

    def get_request(self, name: str, app_namespace: str | None, refresh: bool = False) -> PlannedRequest:
        params = {"appNamespace": app_namespace} if app_namespace else {}
        if refresh:
            params["refresh"] = "normal"
        return self._request("GET", name, params=params or None)

    def sync_request(
        self, name: str, *, revision: str | None, prune: bool, app_namespace: str | None
    ) -> PlannedRequest:
        body: dict[str, Any] = {"name": name, "prune": prune}
        if revision:
            body["revision"] = revision
        if app_namespace:
            body["appNamespace"] = app_namespace
        return self._request("POST", name, "/sync", body=body)

    def application(
        self,
        name: str,
        app_namespace: str | None = None,
        *,
        refresh: bool = False,
        budget: float | None = None,
    ) -> Any:
        """The Application; `budget` (seconds left to a caller's deadline) shortens the request timeout."""
        request = self.get_request(name, app_namespace, refresh)
        timeout = self._timeout if budget is None else max(1.0, min(self._timeout, budget))
        answer = send(request, ca_file=self._ca_file, what="Argo CD", timeout=timeout)
        return self._checked(answer, "get", name).json()

    def sync(self, request: PlannedRequest, name: str) -> str:
        """Start a sync; an auto-sync app refuses a pinned revision, so it gets a refresh instead."""
        answer = send(request, ca_file=self._ca_file, what="Argo CD", timeout=self._timeout)
        message = answer.message()
        if answer.status == 400 and _AUTO_SYNC_REFUSAL in message:
            log.info("%s has auto-sync (%s): asking for a refresh instead", name, message)
            self.application(name, (request.body or {}).get("appNamespace"), refresh=True)
            return "refresh requested (auto-sync)"
        if answer.status == 400 and _OPERATION_RUNNING in message:
            raise RetryableError(f"Argo CD: {name}: {message}")
        self._checked(answer, "sync", name)
        return "sync started"

    def _checked(self, answer: HttpAnswer, action: str, name: str) -> HttpAnswer:
        if answer.status == 200 and text(answer.json(), "metadata", "name") is None:
            raise RetryableError(
                f"Argo CD: {self.server} answered 200 to {action} {name} without an Application: not Argo "
                "CD's API (a proxy's or a sign-in page?); check --argocd-server"
            )
        if answer.status == 200:
            return answer
        message = answer.message()
        if answer.status == 401:
            raise AuthError(
                f"{TOKEN_VARIABLE} was rejected by {self.server} ({message}); the token expired or its role "
                "was deleted: create a new one with `argocd proj role create-token`"
            )
        if answer.status == 403:
            raise AuthError(
                f"{TOKEN_VARIABLE} may not {action} application {name} on {self.server} ({message}); "
                f"grant the project role `applications, {action}, <project>/{name}, allow`, and check the "
                "name (--app-name-template; Argo CD answers 403 for applications that do not exist)"
            )
        if answer.status == 404:
            raise SyncError(f"Argo CD has no application {name} ({message}); check --app-name-template")
        raise SyncError(f"Argo CD refused to {action} {name} ({answer.status}: {message})")
