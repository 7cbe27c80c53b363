"""`gitops-ci sync`: make Argo CD or Flux look at the manifest repo now instead of at its next poll.

One target per run: an Argo CD webhook (a GitLab Push Hook, so Argo CD refreshes exactly the apps on that
repo, branch and paths), the Argo CD API (sync apps without auto-sync), a Flux Receiver (the same Push
Hook), or `reconcile.fluxcd.io/requestedAt` on Flux Kustomizations through the kubernetes API. Every request
retries transient failures (5xx, Argo CD's 503 "Queue is full", dropped connections) with backoff.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from gitops_ci import logs
from gitops_ci.errors import ConfigurationError
from gitops_ci.naming import (
    DEFAULT_APP_NAME_TEMPLATE,
    check_http_url,
    check_name,
    check_secret,
    check_token,
    render,
)
from gitops_ci.retry import with_retries
from gitops_ci.targets import argocd, flux
from gitops_ci.targets.argocd import ArgoCDApi, PlannedRequest
from gitops_ci.targets.kube import (
    GIT_REPOSITORY,
    KUSTOMIZATION,
    SOURCE_KINDS,
    CustomKind,
    KubeClient,
    KubeSettings,
)
from gitops_ci.targets.object_names import check_namespace, parse_object_ref
from gitops_ci.targets.push_hook import changed_overlay_files, push_hook_payload
from gitops_ci.targets.target import SYNC_KINDS, Target, choose, given

log = logs.get_logger(__name__)
T = TypeVar("T")
_SHA = re.compile(r"[0-9a-fA-F]{7,64}")


def check_revision(value: str | None, option: str = "--revision") -> str | None:
    if value is not None and not _SHA.fullmatch(value):
        raise ConfigurationError(f"{option} {value!r} is not a commit SHA; pass the commit the deploy pushed")
    return value


def app_names(template: str, app: str | None, environments: Sequence[str]) -> list[str]:
    """Argo CD application names, one per environment (one in all when the template has no {env})."""
    if not app:
        raise ConfigurationError("no app: pass --app or set GITOPS_APP_NAME")
    if "{env}" in template and not environments:
        raise ConfigurationError("--app-name-template uses {env}: pass --env or set GITOPS_ENVIRONMENT")
    check_name(app, "--app")
    for env in environments:
        check_name(env, "--env")
    names = [render(template, "--app-name-template", app=app, env=env) for env in environments or [""]]
    return list(dict.fromkeys(names))


def from_env(name: str) -> Callable[[], str | None]:
    return lambda: os.environ.get(name) or None


@dataclass(frozen=True, kw_only=True)
class SyncSettings:
    revision: str | None  # the commit B or C produced: Push Hook `after`, Argo CD API sync revision
    repo_url: str | None = None
    branch: str | None = None
    default_branch: str | None = None  # the manifest repo's default branch (default: `branch`)
    before: str | None = None  # the commit `revision` replaced: Push Hook `before`
    changed_files: tuple[str, ...] = ()  # default: each environment's overlay kustomization.yaml
    path_template: str | None = None
    app: str | None = None
    environments: tuple[str, ...] = ()
    argocd_webhook: str | None = None
    argocd_server: str | None = None
    flux_receiver: str | None = None
    flux_kustomizations: tuple[str, ...] = ()  # NAMESPACE/NAME
    app_name_template: str = DEFAULT_APP_NAME_TEMPLATE
    app_namespace: str | None = None
    prune: bool = False
    with_source: bool = False
    ca_file: str | None = None
    kube: KubeSettings = field(default_factory=KubeSettings)
    max_attempts: int = 5
    backoff_seconds: float = 0.5
    source_timeout_seconds: float = 120.0
    request_timeout_seconds: float = 30.0  # each request; a sync takes at most max_attempts x (this + 8 s)
    interval_seconds: float = 2.0
    dry_run: bool = False
    webhook_secret: str | None = field(default_factory=from_env(argocd.WEBHOOK_SECRET_VARIABLE), repr=False)
    argocd_token: str | None = field(default_factory=from_env(argocd.TOKEN_VARIABLE), repr=False)

    @property
    def target(self) -> Target:
        return choose(given(self), SYNC_KINDS, "choose one sync target of")

    def __post_init__(self) -> None:
        self.target  # noqa: B018 - exactly one target, or bad input
        check_revision(self.revision)
        check_revision(self.before, "--before")
        required = (("--repo-url", self.repo_url), ("--branch", self.branch), ("--revision", self.revision))
        for option, value in required if self.argocd_webhook or self.flux_receiver else ():
            if not value:
                variable = {"--revision": "GITOPS_COMMIT_SHA"}.get(option, f"GITOPS_{option[2:].upper()}")
                raise ConfigurationError(f"a webhook needs {option} (or {variable})")
        if self.app_namespace:
            check_namespace(self.app_namespace, "--app-namespace")
        for path in self.changed_files:
            if path.startswith("/") or ".." in path.split("/") or logs.has_controls(path):
                raise ConfigurationError(
                    f"--changed-file {path[:80]!r} is not a path inside the manifest repo"
                )
        for ref in self.flux_kustomizations:
            parse_object_ref(ref, "--flux-kustomization")
        hooks = (("--argocd-webhook", self.argocd_webhook), ("--flux-receiver", self.flux_receiver))
        for option, url in hooks:
            if url:
                check_http_url(url, option)
        if self.max_attempts < 1:
            raise ConfigurationError("--max-attempts must be at least 1")
        logs.register_secret(self.webhook_secret)
        logs.register_secret(self.argocd_token)
        check_secret(self.webhook_secret, argocd.WEBHOOK_SECRET_VARIABLE)
        check_token(self.argocd_token, argocd.TOKEN_VARIABLE)


@dataclass(frozen=True)
class SyncAction:
    target: str  # "argocd-webhook", "argocd-api", "flux-receiver" or "flux-kustomization"
    subject: str  # what was asked to refresh or sync
    request: dict[str, Any]  # PlannedRequest.shown(): secrets masked
    outcome: str  # "sent", "sync started", "refresh requested (auto-sync)" or "would send"


@dataclass(frozen=True)
class SyncResult:
    dry_run: bool
    revision: str | None
    actions: tuple[SyncAction, ...]


def sync(
    settings: SyncSettings,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SyncResult:
    kind = settings.target.kind
    if kind in ("argocd-webhook", "flux-receiver"):
        actions = [_webhook(settings)]
    elif kind == "argocd-server":
        actions = _argocd_syncs(settings)
    else:
        actions = _flux_reconcile(settings, KubeClient(settings.kube), clock, sleep)
    return SyncResult(settings.dry_run, settings.revision, tuple(actions))


def _argocd_syncs(settings: SyncSettings) -> list[SyncAction]:
    assert settings.argocd_server
    api = ArgoCDApi(
        settings.argocd_server,
        settings.argocd_token,
        ca_file=settings.ca_file,
        timeout=settings.request_timeout_seconds,
    )
    names = app_names(settings.app_name_template, settings.app, settings.environments)
    return [_argocd_sync(settings, api, name) for name in names]


def _retrying(settings: SyncSettings, step: Callable[[], T], what: str) -> T:
    return with_retries(step, what=what, max_attempts=settings.max_attempts, base=settings.backoff_seconds)


def _webhook(settings: SyncSettings) -> SyncAction:
    assert settings.repo_url and settings.branch and settings.revision  # checked by SyncSettings
    payload = push_hook_payload(
        repo_url=settings.repo_url,
        branch=settings.branch,
        default_branch=settings.default_branch or settings.branch,
        before=settings.before,
        after=settings.revision,
        changed_files=settings.changed_files
        or changed_overlay_files(settings.path_template, settings.app, settings.environments),
    )
    secret, ca_file = settings.webhook_secret, settings.ca_file
    post: Callable[[PlannedRequest], None]
    if settings.argocd_webhook:
        if not secret:
            log.warning("%s is not set: sending without X-Gitlab-Token", argocd.WEBHOOK_SECRET_VARIABLE)
        target, request = "argocd-webhook", argocd.webhook_request(settings.argocd_webhook, payload, secret)
        post = partial(argocd.post_webhook, ca_file=ca_file, timeout=settings.request_timeout_seconds)
    else:
        assert settings.flux_receiver
        target, request = "flux-receiver", flux.receiver_request(settings.flux_receiver, payload, secret)
        post = partial(flux.post_receiver, ca_file=ca_file, timeout=settings.request_timeout_seconds)
    subject = f"{payload['project']['web_url']} {settings.branch} at {settings.revision[:12]}"
    if settings.dry_run:
        return SyncAction(target, subject, request.shown(), "would send")
    with logs.section(target, f"Sending a Push Hook for {subject} to {request.url}"):
        _retrying(settings, lambda: post(request), target)
    return SyncAction(target, subject, request.shown(), "sent")


def _argocd_sync(settings: SyncSettings, api: ArgoCDApi, name: str) -> SyncAction:
    request = api.sync_request(
        name, revision=settings.revision, prune=settings.prune, app_namespace=settings.app_namespace
    )
    if settings.dry_run:
        return SyncAction("argocd-api", name, request.shown(), "would send")
    log.info("Syncing Argo CD application %s to %s", name, (settings.revision or "its target revision")[:12])
    outcome = _retrying(settings, lambda: api.sync(request, name), f"sync of {name}")
    return SyncAction("argocd-api", name, request.shown(), outcome)


def _flux_reconcile(
    settings: SyncSettings, client: KubeClient, clock: Callable[[], float], sleep: Callable[[float], None]
) -> list[SyncAction]:
    """Like `flux reconcile kustomization [--with-source]`: the source first, its fetch awaited, then the
    Kustomization, so that it applies the new artifact rather than the one the source held before."""
    token = flux.requested_at()
    actions: list[SyncAction] = []
    for ref in settings.flux_kustomizations:
        namespace, name = parse_object_ref(ref, "--flux-kustomization")
        if settings.with_source:
            actions.append(_reconcile_source(settings, client, namespace, name, token, clock, sleep))
        actions.append(_annotate(settings, client, KUSTOMIZATION, namespace, name, token))
    return actions


def _reconcile_source(
    settings: SyncSettings,
    client: KubeClient,
    namespace: str,
    name: str,
    token: str,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> SyncAction:
    if settings.dry_run:  # a dry run reads nothing either
        return _annotate(settings, client, GIT_REPOSITORY, namespace, f"<spec.sourceRef of {name}>", token)
    kustomization = _retrying(settings, lambda: client.get(KUSTOMIZATION, namespace, name), "kube get")
    kind, source_ns, source_name = flux.source_ref(kustomization)
    if kind not in SOURCE_KINDS:
        raise ConfigurationError(
            f"--with-source supports GitRepository sources; {namespace}/{name} uses {kind!r}"
        )
    source = SOURCE_KINDS[kind]
    action = _annotate(settings, client, source, source_ns, source_name, token)
    fetched = flux.await_source(
        lambda: _retrying(settings, lambda: client.get(source, source_ns, source_name), "kube get"),
        token,
        subject=action.subject,
        timeout=settings.source_timeout_seconds,
        interval=settings.interval_seconds,
        clock=clock,
        sleep=sleep,
    )
    log.info("%s fetched %s", action.subject, fetched)
    return action


def _annotate(
    settings: SyncSettings, client: KubeClient, kind: CustomKind, namespace: str, name: str, token: str
) -> SyncAction:
    annotations = {flux.REQUESTED_AT_ANNOTATION: token}
    path = f"/apis/{kind.group}/{kind.version}/namespaces/{namespace}/{kind.plural}/{name}"
    body = {"metadata": {"annotations": annotations}}
    shown = PlannedRequest("PATCH", path, {"Content-Type": "application/merge-patch+json"}, body).shown()
    subject = kind.describe(namespace, name)
    if settings.dry_run:
        return SyncAction("flux-kustomization", subject, shown, "would send")
    log.info("Requesting a reconcile of %s", subject)
    _retrying(settings, lambda: client.annotate(kind, namespace, name, annotations), "kube patch")
    return SyncAction("flux-kustomization", subject, shown, "sent")
