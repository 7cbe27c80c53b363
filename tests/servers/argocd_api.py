"""Argo CD API-server double: the GitLab webhook and the application get/sync REST calls.

Mirrors argo-cd ``util/webhook/webhook.go`` (GitLab push handling, web-URL regex, target
revision matching, manifest-generate-paths, status codes and texts) and
``server/application/application.go`` (``getAppEnforceRBAC``: 403 rather than 404 unless a
``project`` is given; sync preconditions).  API errors use grpc-gateway's JSON shape
``{"error": msg, "code": grpc_code, "message": msg}``.

Unlike the real server, a webhook is processed before the 200 is sent (Argo CD queues it),
so a test can assert on ``refreshed`` right away.
"""

from __future__ import annotations

import copy
import html
import json
import posixpath
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from servers.argo_status import (
    JSON,
    ZERO_SHA,
    ArgoStatusMachine,
    HeadResolver,
    LoopbackServer,
    OperationInProgressError,
    Request,
    Response,
    Scenario,
    application_spec,
    resolve_revision,
    utc_now,
)

WEBHOOK_PATH = "/api/webhook"
APP_PATH = re.compile(r"/api/v1/applications/(?P<name>[^/]+)(?P<sync>/sync)?")
PARSED_GITLAB_EVENTS = ("Push Hook", "Tag Push Hook", "System Hook")
MANIFEST_PATHS_ANNOTATION = "argocd.argoproj.io/manifest-generate-paths"
PAYLOAD_ERROR = (
    "Webhook processing failed: The payload is either too large or corrupted. "
    "Please check the payload size (must be under 50 MB) and ensure it is valid JSON"
)
_USERNAME = r"[\w\.][\w\.-]{0,30}[\w\.\$-]?"
# grpc status code -> HTTP status, as grpc-gateway maps them
_HTTP_STATUS = {3: 400, 5: 404, 7: 403, 9: 400, 16: 401}
PERMISSION_DENIED, FAILED_PRECONDITION, UNAUTHENTICATED, NOT_FOUND, INVALID_ARGUMENT = 7, 9, 16, 5, 3


@dataclass
class ArgoApp:
    name: str
    repo_url: str
    target_revision: str = "HEAD"
    path: str = "."
    namespace: str = "argocd"
    project: str = "default"
    auto_sync: bool = False
    scenario: Scenario = Scenario.HEALTHY
    manifest_generate_paths: str | None = None  # the annotation's value, e.g. "." or "/shared;."
    dest_namespace: str = "default"
    initial_revision: str = ZERO_SHA
    legacy_health_message: bool = False  # Argo CD 2.x also put the reason on status.health.message


@dataclass(frozen=True)
class Principal:
    """Whose token it is; a project-role token only reaches the listed apps of its project."""

    subject: str
    project: str | None = None
    apps: frozenset[str] | None = None  # None: every app
    actions: frozenset[str] = frozenset({"get", "sync"})
    issued_at: str = field(default_factory=utc_now)

    def allows(self, action: str, project: str, name: str) -> bool:
        return (
            action in self.actions
            and self.project in (None, project)
            and (self.apps is None or name in self.apps)
        )


class _WebhookError(Exception):
    pass


class ArgoCDServer(LoopbackServer):
    def __init__(
        self,
        *,
        head: HeadResolver,
        webhook_secret: str | None = None,
        admin_token: str | None = None,
        namespace: str = "argocd",
        app_namespaces: Sequence[str] = (),
        default_branch: str = "main",
        polls_per_step: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.head = head
        self.webhook_secret = webhook_secret  # None: Argo CD skips the X-Gitlab-Token check
        self.admin_token = admin_token or secrets.token_urlsafe(24)
        self.namespace = namespace
        self.app_namespaces = tuple(app_namespaces)  # globs, like --application-namespaces
        self.default_branch = default_branch
        self.polls_per_step = polls_per_step
        self.refreshed: list[str] = []  # "<namespace>/<name>" for each app a webhook refreshed
        self._apps: dict[tuple[str, str], tuple[ArgoApp, ArgoStatusMachine]] = {}
        self._tokens = {self.admin_token: Principal("admin")}
        self._queue_full_for = 0

    # -- knobs -------------------------------------------------------------------------------

    def add_app(self, app: ArgoApp) -> ArgoApp:
        machine = ArgoStatusMachine(
            app.name,
            revision=app.initial_revision,
            scenario=app.scenario,
            polls_per_step=self.polls_per_step,
            legacy_health_message=app.legacy_health_message,
        )
        with self.lock:
            self._apps[(app.namespace, app.name)] = (app, machine)
        return app

    def add_project_token(
        self,
        project: str,
        role: str,
        *,
        apps: Iterable[str] | None = None,
        actions: Iterable[str] = ("get", "sync"),
    ) -> str:
        token = secrets.token_urlsafe(24)
        principal = Principal(
            f"proj:{project}:{role}", project, None if apps is None else frozenset(apps), frozenset(actions)
        )
        with self.lock:
            self._tokens[token] = principal
        return token

    def fail_next_webhooks(self, count: int) -> None:
        """Answer 503 "Queue is full" to the next ``count`` valid webhooks."""
        with self.lock:
            self._queue_full_for = count

    def set_scenario(self, name: str, scenario: Scenario, namespace: str | None = None) -> None:
        with self.lock:
            self._apps[(namespace or self.namespace, name)][1].scenario = scenario

    def application(self, name: str, namespace: str | None = None) -> JSON:
        """The app as the API would show it, without counting as a poll."""
        with self.lock:
            return self._render(*self._apps[(namespace or self.namespace, name)])

    # -- routing -----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path == WEBHOOK_PATH:
            return self._webhook(request)
        match = APP_PATH.fullmatch(request.path)
        if match is None:
            return _grpc_error(NOT_FOUND, "Not Found")
        principal = self._authenticate(request)
        if isinstance(principal, Response):
            return principal
        if request.method == "GET" and not match["sync"]:
            return self._get(request, principal, match["name"])
        if request.method == "POST" and match["sync"]:
            return self._sync(request, principal, match["name"])
        return _grpc_error(NOT_FOUND, "Not Found")

    # -- webhook -----------------------------------------------------------------------------

    def _webhook(self, request: Request) -> Response:
        event = request.headers.get("X-Gitlab-Event")
        if not event:  # only the GitLab flavour is modelled
            return Response.text(400, "Unknown webhook event")
        try:
            payload = self._parse_gitlab(request, event)
        except _WebhookError as exc:
            text = str(exc)
            if text == PAYLOAD_ERROR:
                return Response.text(400, text, note="empty payload")
            status = 405 if request.method != "POST" else 400
            return Response.text(status, "Webhook processing failed: " + html.escape(text), note=text)
        if self._queue_full_for > 0:
            self._queue_full_for -= 1
            return Response.text(503, "Queue is full, discarding webhook payload")
        if payload is not None:
            self._refresh_matching(payload)
        return Response(200, b"", "text/plain; charset=utf-8")

    def _parse_gitlab(self, request: Request, event: str) -> JSON | None:
        """go-playground/webhooks v6 ``gitlab.Parse``, in its order of checks."""
        if request.method != "POST":
            raise _WebhookError("invalid HTTP Method")
        if self.webhook_secret and request.headers.get("X-Gitlab-Token") != self.webhook_secret:
            raise _WebhookError("X-Gitlab-Token validation failed")
        if not request.body:
            raise _WebhookError(PAYLOAD_ERROR)
        if event not in PARSED_GITLAB_EVENTS:
            raise _WebhookError("event not defined to be parsed")
        try:
            payload = json.loads(request.body)
        except ValueError as exc:
            raise _WebhookError(str(exc)) from exc
        if not isinstance(payload, dict):
            raise _WebhookError(
                f"json: cannot unmarshal {type(payload).__name__} into Go value of type PushEvent"
            )
        _check_types(payload)
        kind = payload.get("object_kind") or payload.get("event_name")
        if event == "System Hook" and kind not in ("push", "tag_push"):
            return None  # parsed, but Argo CD ignores everything but pushes
        return payload

    def _refresh_matching(self, payload: JSON) -> None:
        project = payload.get("project") or {}
        revision = parse_revision(payload.get("ref") or "")
        touched_head = project.get("default_branch") == revision
        changed = [
            path
            for commit in payload.get("commits") or []
            for key in ("added", "modified", "removed")
            for path in commit.get(key) or []
        ]
        url_regex = web_url_regex(project.get("web_url") or "")
        if url_regex is None:
            return
        for (namespace, name), (app, machine) in self._apps.items():
            if (
                self._namespace_enabled(namespace)
                and revision_matches(app.target_revision, revision, touched_head)
                and url_regex.fullmatch(app.repo_url)
                and files_changed(app, changed)
            ):
                machine.refresh(
                    resolve_revision(self.head, app.target_revision, self.default_branch),
                    auto_sync=app.auto_sync,
                )
                self.refreshed.append(f"{namespace}/{name}")

    # -- application API ---------------------------------------------------------------------

    def _authenticate(self, request: Request) -> Principal | Response:
        header = request.headers.get("Authorization")
        if not header:
            return _grpc_error(UNAUTHENTICATED, "no session information")
        principal = self._tokens.get(header.removeprefix("Bearer "))
        if principal is None:
            return _grpc_error(UNAUTHENTICATED, "invalid session: failed to verify the token")
        return principal

    def _get(self, request: Request, principal: Principal, name: str) -> Response:
        found = self._lookup(principal, "get", name, request.param("appNamespace"), request.param("project"))
        if isinstance(found, Response):
            return found
        app, machine = found
        if request.param("refresh") in ("normal", "hard"):
            machine.refresh(
                resolve_revision(self.head, app.target_revision, self.default_branch), auto_sync=app.auto_sync
            )
        machine.poll()
        return Response.json(200, self._render(app, machine), principal=principal.subject)

    def _sync(self, request: Request, principal: Principal, name: str) -> Response:
        try:
            body = json.loads(request.body or b"{}")
        except ValueError as exc:
            return _grpc_error(INVALID_ARGUMENT, str(exc))
        if not isinstance(body, dict):
            return _grpc_error(INVALID_ARGUMENT, "request body must be a JSON object")
        found = self._lookup(principal, "get", name, body.get("appNamespace"), body.get("project"))
        if isinstance(found, Response):
            return found
        app, machine = found
        if not principal.allows("sync", app.project, name):
            rbac_name = "/".join(
                [app.project, *([app.namespace] if app.namespace != self.namespace else []), name]
            )
            text = f"permission denied: applications, sync, {rbac_name}, sub: {principal.subject}"
            return _grpc_error(PERMISSION_DENIED, f"{text}, iat: {principal.issued_at}")
        revision, dry_run = str(body.get("revision") or ""), bool(body.get("dryRun"))
        if app.auto_sync and not dry_run and revision and revision != (app.target_revision or "HEAD"):
            text = f"Cannot sync to {revision}: auto-sync currently set to {app.target_revision}"
            return _grpc_error(FAILED_PRECONDITION, text)
        sha = resolve_revision(self.head, revision or app.target_revision, self.default_branch)
        try:
            machine.sync(
                sha,
                prune=bool(body.get("prune")),
                dry_run=dry_run,
                initiated_by={"username": principal.subject},
            )
        except OperationInProgressError as exc:
            return _grpc_error(FAILED_PRECONDITION, str(exc))
        return Response.json(200, self._render(app, machine), principal=principal.subject)

    def _lookup(
        self, principal: Principal, action: str, name: str, app_namespace: str | None, project: str | None
    ) -> tuple[ArgoApp, ArgoStatusMachine] | Response:
        """``getAppEnforceRBAC``: without ``project``, "missing" and "forbidden" look the same (403)."""
        namespace = app_namespace or self.namespace
        if project and not principal.allows(action, project, name):
            return _grpc_error(PERMISSION_DENIED, "permission denied")
        found = self._apps.get((namespace, name)) if self._namespace_enabled(namespace) else None
        if found is None:
            if project and self._namespace_enabled(namespace):
                return _not_found(name)
            return _grpc_error(PERMISSION_DENIED, "permission denied")
        app = found[0]
        if not principal.allows(action, app.project, name):
            return _not_found(name) if project else _grpc_error(PERMISSION_DENIED, "permission denied")
        if project and project != app.project:
            return _not_found(name)
        return found

    # -- helpers -----------------------------------------------------------------------------

    def _namespace_enabled(self, namespace: str) -> bool:
        return namespace == self.namespace or any(
            fnmatchcase(namespace, glob) for glob in self.app_namespaces
        )

    def _render(self, app: ArgoApp, machine: ArgoStatusMachine) -> JSON:
        spec = application_spec(
            app.repo_url,
            app.target_revision,
            app.path,
            project=app.project,
            auto_sync=app.auto_sync,
            dest_namespace=app.dest_namespace,
        )
        annotations = (
            {MANIFEST_PATHS_ANNOTATION: app.manifest_generate_paths} if app.manifest_generate_paths else {}
        )
        rendered: JSON = {
            "metadata": {"name": app.name, "namespace": app.namespace, "annotations": annotations},
            "spec": spec,
            "status": machine.status(spec["source"], spec["destination"]),
        }
        if machine.operation is not None:
            rendered["operation"] = copy.deepcopy(machine.operation)
        return rendered


# --------------------------------------------------------------------------- webhook matching


def parse_revision(ref: str) -> str:
    """``webhook.ParseRevision``: the last of at most three ``/``-separated parts."""
    return ref.split("/", 2)[-1]


def web_url_regex(web_url: str) -> re.Pattern[str] | None:
    """``GetWebURLRegex``: scheme, user, ``ssh.``/``altssh.`` host prefix, port and ``.git`` are optional;
    case is ignored; a trailing ``/`` is *not* normalised away."""
    parts = urlsplit(web_url)
    if not parts.hostname or len(parts.path) < 2:
        return None
    host, path = re.escape(parts.hostname), re.escape(parts.path[1:])
    return re.compile(
        rf"((https?|ssh)://)?({_USERNAME}@)?((alt)?ssh\.)?{host}(:\d+)?[:/]{path}(\.git)?",
        re.IGNORECASE | re.ASCII,
    )


def revision_matches(target_revision: str, revision: str, touched_head: bool) -> bool:
    """``sourceRevisionHasChanged``."""
    target = parse_revision(target_revision)
    if target in ("HEAD", ""):
        return touched_head
    if target_revision.startswith(("refs/heads/", "refs/tags/")):
        return revision == target
    return target_revision == revision


def files_changed(app: ArgoApp, changed: list[str]) -> bool:
    """``GetAppRefreshPaths`` + ``AppFilesHaveChanged`` (globs without ``[...]`` classes)."""
    refresh_paths = [
        item[1:] if item.startswith("/") else posixpath.normpath(posixpath.join(app.path, item))
        for item in (app.manifest_generate_paths or "").split(";")
        if item
    ]
    if not changed or not refresh_paths:
        return True
    for path in changed:
        absolute = "/" + path.lstrip("/")
        for item in refresh_paths:
            root = "/" + item.lstrip("/")
            glob = re.escape(root).replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
            if (
                absolute == root
                or absolute.startswith(root.rstrip("/") + "/")
                or re.fullmatch(glob, absolute)
            ):
                return True
    return False


def _check_types(payload: JSON) -> None:
    """The fields Argo CD reads must have the types Go's ``json.Unmarshal`` expects."""
    project, commits = payload.get("project") or {}, payload.get("commits") or []
    fields: list[tuple[str, Any, type]] = [
        ("ref", payload.get("ref"), str),
        ("project", project, dict),
        ("commits", commits, list),
    ]
    if isinstance(project, dict):
        fields += [(f"project.{k}", project.get(k), str) for k in ("web_url", "default_branch")]
    for commit in commits if isinstance(commits, list) else []:
        fields.append(("commits", commit, dict))
        for k in ("added", "modified", "removed"):
            files = commit.get(k) if isinstance(commit, dict) else None
            fields += [(f"commits.{k}", files, list), *((f"commits.{k}", f, str) for f in files or [])]
    for name, value, expected in fields:
        if value is not None and not isinstance(value, expected):
            raise _WebhookError(f"json: cannot unmarshal {type(value).__name__} into Go struct field .{name}")


def _grpc_error(code: int, message: str) -> Response:
    return Response.json(_HTTP_STATUS[code], {"error": message, "code": code, "message": message})


def _not_found(name: str) -> Response:
    return _grpc_error(NOT_FOUND, f'applications.argoproj.io "{name}" not found')
