"""Pieces shared by the sync contract servers.

* ``ArgoStatusMachine``: how an Argo CD Application's ``status`` moves after a refresh or a
  sync.  Both the Argo CD API double (``argocd_api``) and the kube-apiserver double
  (``kube_api``) drive one machine per Application, so the two views never disagree.
* ``LoopbackServer``: a threaded HTTP(S) server on 127.0.0.1 that all three doubles build on,
  with a call log that never stores credentials.

The machine is not thread-safe on its own: the servers only touch it under their lock.
"""

from __future__ import annotations

import copy
import json
import re
import ssl
import threading
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

JSON = dict[str, Any]
HeadResolver = Callable[[str], str]
"""Maps a branch (or tag) name to the commit it points at, like ``git ls-remote`` would."""

ZERO_SHA = "0" * 40
_SHA = re.compile(r"[0-9a-f]{40}")
_SAFE_HEADERS = ("content-type", "x-gitlab-event", "user-agent")


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class BranchHeads:
    """A thread-safe ``HeadResolver`` backed by a dict: ``heads["main"] = sha``."""

    def __init__(self, heads: Mapping[str, str] | None = None, *, default: str = ZERO_SHA) -> None:
        self._heads = dict(heads or {})
        self._default = default
        self._lock = threading.Lock()

    def __setitem__(self, branch: str, sha: str) -> None:
        with self._lock:
            self._heads[branch] = sha

    def __call__(self, branch: str) -> str:
        with self._lock:
            return self._heads.get(branch, self._default)


# --------------------------------------------------------------------------- Argo CD status


class Scenario(StrEnum):
    HEALTHY = "healthy"  # sync succeeds, then Progressing -> Healthy
    DEGRADED = "degraded"  # sync succeeds, then the Deployment never becomes available
    SYNC_FAILED = "sync_failed"  # the sync operation itself fails to apply


class OperationInProgressError(RuntimeError):
    """Argo CD answers FailedPrecondition with this text while an operation is running."""

    def __init__(self) -> None:
        super().__init__("another operation is already in progress")


SYNC_OK_MESSAGE = "successfully synced (all tasks run)"
RUNNING_MESSAGE = "one or more tasks are running"


def resolve_revision(head: HeadResolver, target_revision: str, default_branch: str = "main") -> str:
    """What the repo-server resolves ``targetRevision`` to: a SHA stays, a ref becomes its head."""
    ref = target_revision.removeprefix("refs/heads/").removeprefix("refs/tags/")
    if _SHA.fullmatch(ref):
        return ref
    return head(default_branch if ref in ("", "HEAD") else ref)


def application_spec(
    repo_url: str,
    target_revision: str,
    path: str,
    *,
    project: str = "default",
    auto_sync: bool = False,
    dest_namespace: str = "default",
) -> JSON:
    """``spec`` of a single-source Application, as both doubles serve it."""
    return {
        "project": project,
        "source": {"repoURL": repo_url, "path": path, "targetRevision": target_revision},
        "destination": {"server": "https://kubernetes.default.svc", "namespace": dest_namespace},
        "syncPolicy": {"automated": {"prune": False, "selfHeal": False}} if auto_sync else {},
    }


class ArgoStatusMachine:
    """Status of one Application; each ``poll()`` (a GET of the app) applies one pending step.

    After ``sync()``: poll 1 ``OutOfSync/Progressing`` with the operation ``Running``, poll 2
    ``Synced/Progressing`` with the operation ``Succeeded``, poll 3 ``Synced/Healthy`` (or
    ``Degraded``).  ``SYNC_FAILED`` ends poll 2 with ``operationState.phase: Failed``.
    ``refresh()`` costs one poll (the comparison) and, for auto-sync apps, starts a sync.

    Argo CD 3 no longer fills the app-level ``status.health.message`` (deprecated in
    ``AppHealthStatus``); the reason is on ``status.resources[].health.message``.  Pass
    ``legacy_health_message=True`` for the 2.x behaviour.
    """

    def __init__(
        self,
        app_name: str,
        *,
        revision: str = ZERO_SHA,
        scenario: Scenario = Scenario.HEALTHY,
        polls_per_step: int = 1,
        legacy_health_message: bool = False,
    ) -> None:
        self.app_name = app_name
        self.legacy_health_message = legacy_health_message
        self.scenario = scenario
        self.polls_per_step = max(1, polls_per_step)
        self.sync_status = "Synced"
        self.sync_revision = revision
        self.applied_revision = revision
        self.health = "Healthy"
        self.health_message: str | None = None
        self.health_since = utc_now()
        self.operation: JSON | None = None
        self.operation_state: JSON | None = None
        self.conditions: list[JSON] = []
        self.history: list[JSON] = []
        self.reconciled_at = utc_now()
        self._steps: deque[Callable[[], None]] = deque()
        self._polls = 0

    @property
    def settled(self) -> bool:
        return not self._steps

    def refresh(self, revision: str, *, auto_sync: bool) -> None:
        self._steps.append(lambda: self._compare(revision))
        if auto_sync:
            self._steps.append(lambda: self._auto_sync(revision))

    def sync(self, revision: str, *, initiated_by: JSON, prune: bool = False, dry_run: bool = False) -> None:
        if self.operation is not None:
            raise OperationInProgressError
        self.operation = {
            "sync": {"revision": revision, "prune": prune, "dryRun": dry_run},
            "initiatedBy": dict(initiated_by),
            "retry": {},
        }
        self._steps.extend([lambda: self._running(revision), self._finish, self._settle])

    def poll(self) -> None:
        if not self._steps:
            return
        self._polls += 1
        if self._polls < self.polls_per_step:
            return
        self._polls = 0
        self._steps.popleft()()
        self.reconciled_at = utc_now()

    def status(self, source: Mapping[str, Any], destination: Mapping[str, Any]) -> JSON:
        resource_health: JSON = {"status": self.health}
        if self.health_message:
            resource_health["message"] = self.health_message
        health = {**resource_health, "lastTransitionTime": self.health_since}
        if not self.legacy_health_message:
            health.pop("message", None)
        resource = {
            "group": "apps",
            "version": "v1",
            "kind": "Deployment",
            "namespace": destination.get("namespace", "default"),
            "name": self.app_name,
            "status": self.sync_status,
            "health": resource_health,
        }
        status: JSON = {
            "sync": {
                "status": self.sync_status,
                "revision": self.sync_revision,
                "comparedTo": {"source": dict(source), "destination": dict(destination)},
            },
            "health": health,
            "resources": [resource],
            "reconciledAt": self.reconciled_at,
            "sourceType": "Kustomize",
            "summary": {},
            "history": copy.deepcopy(self.history),
        }
        if self.conditions:
            status["conditions"] = copy.deepcopy(self.conditions)
        if self.operation_state is not None:
            status["operationState"] = copy.deepcopy(self.operation_state)
        return status

    # -- steps -------------------------------------------------------------------------------

    def _compare(self, revision: str) -> None:
        self.sync_revision = revision
        self.sync_status = "Synced" if revision == self.applied_revision else "OutOfSync"

    def _auto_sync(self, revision: str) -> None:
        last = (self.operation_state or {}).get("syncResult", {}).get("revision")
        failed_before = (
            last == revision and self.operation_state and self.operation_state["phase"] != "Succeeded"
        )
        if self.operation is None and self.sync_status == "OutOfSync" and not failed_before:
            self.sync(revision, initiated_by={"automated": True})

    def _running(self, revision: str) -> None:
        assert self.operation is not None
        self.operation_state = {
            "operation": copy.deepcopy(self.operation),
            "phase": "Running",
            "message": RUNNING_MESSAGE,
            "startedAt": utc_now(),
            "syncResult": {"revision": revision, "resources": []},
        }
        self._compare(revision)
        if not self._dry_run and self.scenario is not Scenario.SYNC_FAILED:
            self._set_health("Progressing")

    @property
    def _dry_run(self) -> bool:
        return bool(self.operation and self.operation["sync"]["dryRun"])

    def _finish(self) -> None:
        assert self.operation is not None and self.operation_state is not None
        revision = self.operation["sync"]["revision"]
        state = self.operation_state
        state["finishedAt"] = utc_now()
        if self.scenario is Scenario.SYNC_FAILED and not self._dry_run:
            state["phase"], state["message"] = "Failed", self._failure_message()
        else:
            state["phase"], state["message"] = "Succeeded", SYNC_OK_MESSAGE
            if not self._dry_run:
                self.applied_revision = revision
                self.conditions = [c for c in self.conditions if c["type"] != "SyncError"]
                self.history.append({"id": len(self.history), "revision": revision, "deployedAt": utc_now()})
            self._compare(self.sync_revision)
        self.operation = None

    def _settle(self) -> None:
        state = self.operation_state or {}
        if state.get("phase") == "Failed":
            if state["operation"].get("initiatedBy", {}).get("automated"):
                message = f"Failed last sync attempt to {state['syncResult']['revision']}: {state['message']}"
                self.conditions.append(
                    {"type": "SyncError", "message": message, "lastTransitionTime": utc_now()}
                )
        elif not state.get("operation", {}).get("sync", {}).get("dryRun"):
            if self.scenario is Scenario.DEGRADED:
                self._set_health("Degraded", f'Deployment "{self.app_name}" exceeded its progress deadline')
            else:
                self._set_health("Healthy")

    def _set_health(self, status: str, message: str | None = None) -> None:
        if status != self.health:
            self.health_since = utc_now()
        self.health, self.health_message = status, message

    def _failure_message(self) -> str:
        return (
            f'one or more objects failed to apply, reason: Deployment.apps "{self.app_name}" is invalid: '
            "spec.template.spec.containers[0].image: Required value"
        )


# --------------------------------------------------------------------------- HTTP plumbing


@dataclass(frozen=True)
class Request:
    method: str
    target: str  # the raw request-target, query string included (Go's RequestURI)
    path: str
    query: Mapping[str, list[str]]
    headers: Message[str, str]  # case-insensitive, like Go's http.Header
    body: bytes

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    principal: str | None = None  # recorded in the call log, never sent
    note: str | None = None  # why a request was refused, recorded, never sent

    @classmethod
    def json(cls, status: int, payload: Any, *, principal: str | None = None) -> Response:
        return cls(status, json.dumps(payload).encode(), "application/json", principal)

    @classmethod
    def text(cls, status: int, text: str, *, note: str | None = None) -> Response:
        """Like Go's ``http.Error``: text/plain and a trailing newline."""
        return cls(status, (text + "\n").encode(), "text/plain; charset=utf-8", note=note)


@dataclass(frozen=True)
class RecordedCall:
    """One request as seen by a double. Credentials (Authorization, X-Gitlab-Token) are never kept."""

    method: str
    path: str
    status: int
    headers: Mapping[str, str]
    body: Any = None  # the parsed JSON body, when there was one
    principal: str | None = None
    note: str | None = None


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: LoopbackServer


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        query = parse_qs(split.query, keep_blank_values=True)
        request = Request(self.command, self.path, split.path, query, self.headers, body)
        response = self.server.owner.serve(request)
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        """Keep pytest output clean."""


class LoopbackServer:
    """Base class: subclasses implement ``handle``; every request runs under ``self.lock``."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.ssl_context = ssl_context
        self.lock = threading.RLock()
        self.calls: list[RecordedCall] = []
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> Self:
        httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        httpd.owner = self
        if self.ssl_context is not None:
            httpd.socket = self.ssl_context.wrap_socket(httpd.socket, server_side=True)
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def handle(self, request: Request) -> Response:
        raise NotImplementedError

    def serve(self, request: Request) -> Response:
        with self.lock:
            try:
                response = self.handle(request)
            except Exception as exc:  # a bug in a double must show up in the test, not hang it
                response = Response.text(500, f"contract server error: {exc!r}")
            self.calls.append(
                RecordedCall(
                    method=request.method,
                    path=request.path,
                    status=response.status,
                    headers={k: v for k, v in request.headers.items() if k.lower() in _SAFE_HEADERS},
                    body=_json_or_none(request.body),
                    principal=response.principal,
                    note=response.note,
                )
            )
        return response


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None
