"""Flux: the notification-controller Receiver (type `gitlab`) over HTTP, and how a Kustomization reports.

The receiver answers with an empty body whatever happens (fluxcd/notification-controller
`internal/server/receiver_handlers.go`): 400 for a wrong X-Gitlab-Token or an event outside
`spec.events`, 404 for an unknown `/hook/<digest>` path (a query string also makes it unknown),
503 when the Receiver is suspended or not ready, 500 when a listed resource cannot be annotated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from gitops_ci.errors import AuthError, ConfigurationError, SyncError, WaitTimeoutError
from gitops_ci.targets.argocd import REQUEST_TIMEOUT, WEBHOOK_SECRET_VARIABLE, PlannedRequest, send
from gitops_ci.targets.fields import items, obj, text

REQUESTED_AT_ANNOTATION = "reconcile.fluxcd.io/requestedAt"


def receiver_request(url: str, payload: Mapping[str, Any], secret: str | None) -> PlannedRequest:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.path.startswith("/hook/"):
        raise ConfigurationError(
            f"--flux-receiver {url!r} is not a receiver URL; use https://HOST/hook/<digest> "
            "(the Receiver's status.webhookPath)"
        )
    if parts.query:
        raise ConfigurationError(f"--flux-receiver {url!r} has a query string; Flux would answer 404")
    if not secret:
        raise ConfigurationError(
            f"--flux-receiver needs {WEBHOOK_SECRET_VARIABLE}: the token of the Receiver's secretRef"
        )
    headers = {
        "Content-Type": "application/json",
        "X-Gitlab-Event": "Push Hook",
        "X-Gitlab-Token": secret,
    }
    return PlannedRequest("POST", url, headers, dict(payload))


def post_receiver(request: PlannedRequest, *, ca_file: str | None, timeout: float = REQUEST_TIMEOUT) -> None:
    answer = send(request, ca_file=ca_file, what="Flux receiver", timeout=timeout)
    if answer.status == 200:
        return
    if answer.status in (400, 401, 403):
        raise AuthError(
            f"{WEBHOOK_SECRET_VARIABLE} was rejected by the Flux receiver {request.url} ({answer.status}); "
            "set it to the token in the Receiver's secretRef, and keep 'Push Hook' in its spec.events"
        )
    if answer.status == 404:
        raise SyncError(
            f"no Flux receiver at {request.url} (404); copy the URL path from the Receiver's "
            "status.webhookPath (it changes with the token)"
        )
    raise SyncError(f"Flux receiver {request.url} answered {answer.status}")


def requested_at(now: datetime | None = None) -> str:
    """The value `flux reconcile` writes: RFC 3339 with sub-second precision, so each request is new."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def condition(document: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    return next((c for c in items(document, "status", "conditions") if text(c, "type") == kind), {})


def source_ref(kustomization: Mapping[str, Any]) -> tuple[str, str, str]:
    """(kind, namespace, name) of the Kustomization's source; the namespace defaults to its own."""
    ref = obj(kustomization, "spec", "sourceRef")
    namespace = text(ref, "namespace") or text(kustomization, "metadata", "namespace") or ""
    return text(ref, "kind") or "", namespace, text(ref, "name") or ""


def source_handled(source: Mapping[str, Any], token: str) -> tuple[bool, str | None]:
    """Whether the source finished the reconcile we asked for, and the failure it reported, if any."""
    if text(source, "status", "lastHandledReconcileAt") != token:
        return False, None
    ready = condition(source, "Ready")
    if text(ready, "status") == "False":
        return True, f"{text(ready, 'reason') or 'Failed'}: {text(ready, 'message') or ''}".rstrip(": ")
    return text(ready, "status") == "True", None


def await_source(
    fetch: Callable[[], Mapping[str, Any]],
    token: str,
    *,
    subject: str,
    timeout: float,
    interval: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> str | None:
    """Poll a source until it handled the reconcile request `token`, like `flux reconcile --with-source`;
    returns the artifact revision it stored."""
    deadline = clock() + timeout
    while True:
        source = fetch()
        done, failure = source_handled(source, token)
        if failure:
            raise SyncError(f"{subject} failed to fetch the manifest repo: {failure}")
        if done:
            return text(source, "status", "artifact", "revision") or None
        if clock() >= deadline:
            raise WaitTimeoutError(
                f"{subject} did not handle the reconcile request within {timeout:g}s; "
                "check that source-controller runs and is not suspended"
            )
        sleep(max(0.0, min(interval, deadline - clock())))
