"""`gitops-ci wait`: poll until every target runs the revision, synced and healthy, or fail fast.

The loop takes its clock and sleep as parameters (tests pass fakes), logs one line per state change (not
per poll), and fails fast on a failure that concerns the awaited revision; what "ready" and "failed" mean
is decided by the pure functions of `wait_status`. Transient read failures are logged and polled through.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gitops_ci import logs
from gitops_ci.errors import ConfigurationError, OperationalError, RetryableError, SyncError, WaitTimeoutError
from gitops_ci.naming import DEFAULT_APP_NAME_TEMPLATE, check_token
from gitops_ci.targets import argocd, flux
from gitops_ci.targets.argocd import ArgoCDApi
from gitops_ci.targets.durations import format_duration
from gitops_ci.targets.kube import (
    APPLICATION,
    KUSTOMIZATION,
    SOURCE_KINDS,
    KubeClient,
    KubeSettings,
)
from gitops_ci.targets.object_names import check_namespace, parse_object_ref
from gitops_ci.targets.sync import app_names, check_revision, from_env
from gitops_ci.targets.target import WAIT_KINDS, Target, choose, given
from gitops_ci.targets.wait_status import (
    ContainsCheck,
    TargetStatus,
    evaluate_application,
    evaluate_kustomization,
    short,
)

log = logs.get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class WaitSettings:
    revision: str  # the commit to wait for
    app: str | None = None
    environments: tuple[str, ...] = ()
    argocd_server: str | None = None  # read Applications through the Argo CD API ...
    argocd_kube: bool = False  # ... or through the kubernetes API (Application objects)
    flux_kustomizations: tuple[str, ...] = ()  # NAMESPACE/NAME, through the kubernetes API
    app_name_template: str = DEFAULT_APP_NAME_TEMPLATE
    app_namespace: str | None = None  # Argo CD apps in any namespace; Application objects' namespace
    timeout_seconds: float = 600.0
    interval_seconds: float = 5.0
    request_timeout_seconds: float = 30.0  # each status read; never past the deadline
    contains: ContainsCheck | None = None  # accept a later revision when it contains `revision`
    ca_file: str | None = None
    kube: KubeSettings = field(default_factory=KubeSettings)
    argocd_token: str | None = field(default_factory=from_env(argocd.TOKEN_VARIABLE), repr=False)

    @property
    def target(self) -> Target:
        return choose(given(self), WAIT_KINDS, "choose where to read the status: one of")

    def __post_init__(self) -> None:
        self.target  # noqa: B018 - exactly one status source, or bad input
        if not self.revision:
            raise ConfigurationError("no revision: pass --revision or set GITOPS_COMMIT_SHA")
        check_revision(self.revision)
        if self.timeout_seconds <= 0 or self.interval_seconds <= 0:
            raise ConfigurationError("--timeout and --interval must be positive")
        if self.app_namespace:
            check_namespace(self.app_namespace, "--app-namespace")
        for ref in self.flux_kustomizations:
            parse_object_ref(ref, "--flux-kustomization")
        logs.register_secret(self.argocd_token)
        check_token(self.argocd_token, argocd.TOKEN_VARIABLE)


@dataclass(frozen=True)
class WaitResult:
    status: str  # "ready", "failed" or "timeout"
    revision: str
    elapsed_seconds: float
    targets: tuple[TargetStatus, ...]


class RolloutFailedError(SyncError):
    """A target failed at the awaited revision; `result` holds every target's last status."""

    def __init__(self, message: str, result: WaitResult) -> None:
        super().__init__(message)
        self.result = result


class RolloutTimeoutError(WaitTimeoutError):
    """The deadline passed first; `result` holds every target's last status."""

    def __init__(self, message: str, result: WaitResult) -> None:
        super().__init__(message)
        self.result = result


Observer = Callable[[float], TargetStatus]
"""Reads a target's status; the argument is the seconds left to the deadline (a bound for its request)."""


def wait(
    settings: WaitSettings,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitResult:
    return poll_until_ready(
        _observers(settings),
        revision=settings.revision,
        timeout=settings.timeout_seconds,
        interval=settings.interval_seconds,
        clock=clock,
        sleep=sleep,
    )


def poll_until_ready(
    observers: Mapping[str, Observer],
    *,
    revision: str,
    timeout: float,
    interval: float,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
) -> WaitResult:
    """Observe every target until all are ready (targets that are ready are not polled again), one fails,
    or the deadline passes; log a line whenever a target's status line changes."""
    start = clock()
    deadline = start + timeout
    last: dict[str, TargetStatus] = {}
    log.info(
        "Waiting up to %s for %s at %s",
        format_duration(timeout),
        ", ".join(observers),
        short(revision),
    )
    while True:
        for name, observe in observers.items():
            if name in last and last[name].state == "ready":
                continue
            status = observe(deadline - clock())
            if name not in last or last[name].line() != status.line():
                log.info("%s", status.line())
            last[name] = status
        targets = tuple(last.values())
        failed = [s for s in targets if s.state == "failed"]
        pending = [s for s in targets if s.state != "ready"]
        if failed:
            raise RolloutFailedError(
                "\n".join(f"{s.name} failed: {s.status}{s.at()}{s.details()}" for s in failed),
                WaitResult("failed", revision, clock() - start, targets),
            )
        if not pending:
            return WaitResult("ready", revision, clock() - start, targets)
        if clock() >= deadline:
            raise RolloutTimeoutError(
                "\n".join(
                    f"{s.name} was not synced and healthy at {short(revision)} within "
                    f"{format_duration(timeout)}; last status: {s.status}{s.at()}{s.details()}"
                    for s in pending
                ),
                WaitResult("timeout", revision, clock() - start, targets),
            )
        sleep(max(0.0, min(interval, deadline - clock())))


def _observers(settings: WaitSettings) -> dict[str, Observer]:
    wanted, contains = settings.revision, _cached(settings.contains)
    if settings.target.kind == "flux-kustomization":
        client = KubeClient(settings.kube)
        refs = [parse_object_ref(r, "--flux-kustomization") for r in settings.flux_kustomizations]
        return {f"{ns}/{name}": _flux_observer(client, ns, name, wanted, contains) for ns, name in refs}
    names = app_names(settings.app_name_template, settings.app, settings.environments)
    if settings.target.kind == "argocd-server":
        assert settings.argocd_server
        api = ArgoCDApi(
            settings.argocd_server,
            settings.argocd_token,
            ca_file=settings.ca_file,
            timeout=settings.request_timeout_seconds,
        )
        fetch: dict[str, Callable[[float], Any]] = {
            n: partial(_argocd_application, api, n, settings.app_namespace) for n in names
        }
    else:
        client = KubeClient(settings.kube)
        namespace = settings.app_namespace or "argocd"
        fetch = {n: partial(client.get, APPLICATION, namespace, n) for n in names}
    return {n: _observer(n, fetch[n], evaluate_application, wanted, contains) for n in names}


def _argocd_application(api: ArgoCDApi, name: str, app_namespace: str | None, budget: float) -> Any:
    return api.application(name, app_namespace, budget=budget)


def _observer(
    name: str,
    fetch: Callable[[float], Any],
    evaluate: Callable[[str, Mapping[str, Any], str, ContainsCheck | None], TargetStatus],
    wanted: str,
    contains: ContainsCheck | None,
) -> Observer:
    def observe(budget: float) -> TargetStatus:
        try:
            document = fetch(budget)
        except RetryableError as err:  # keep polling until the deadline: the next poll may get through
            return TargetStatus(name, "unknown", "waiting", None, f"unreachable ({err})")
        return evaluate(name, document if isinstance(document, Mapping) else {}, wanted, contains)

    return observe


def _flux_observer(
    client: KubeClient, namespace: str, name: str, wanted: str, contains: ContainsCheck | None
) -> Observer:
    """The Kustomization, and its source to explain what it waits for (a reader without access to
    sources still gets the Kustomization's own status)."""

    def fetch(budget: float) -> dict[str, Any]:
        kustomization = client.get(KUSTOMIZATION, namespace, name, budget)
        kind, source_ns, source_name = flux.source_ref(kustomization)
        try:
            source = None
            if kind in SOURCE_KINDS:
                source = client.get(SOURCE_KINDS[kind], source_ns, source_name, budget)
        except OperationalError as err:
            if isinstance(err, RetryableError):
                raise
            log.debug("cannot read the source of %s/%s: %s", namespace, name, err)
            source = None
        return {"kustomization": kustomization, "source": source}

    def evaluate(
        target: str, both: Mapping[str, Any], wanted: str, contains: ContainsCheck | None
    ) -> TargetStatus:
        return evaluate_kustomization(target, both["kustomization"], wanted, contains, both["source"])

    return _observer(f"{namespace}/{name}", fetch, evaluate, wanted, contains)


def _cached(contains: ContainsCheck | None) -> ContainsCheck | None:
    if contains is None:
        return None
    seen: dict[str, bool] = {}

    def check(sha: str) -> bool:
        if sha not in seen:
            seen[sha] = contains(sha)
        return seen[sha]

    return check
