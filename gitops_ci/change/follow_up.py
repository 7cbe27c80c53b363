"""`deploy … --sync --wait`: after the manifest repo changed, tell Argo CD or Flux, then wait for the cluster.

In merge-request mode there is nothing to sync until the merge requests are merged; then the revision is the
target branch's tip, which contains every merge.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from gitops_ci import logs
from gitops_ci.change.model import DeployResult, RepoDefaults
from gitops_ci.change.settings import DeploySettings
from gitops_ci.errors import ConfigurationError
from gitops_ci.manifest_repo.port import ManifestRepo
from gitops_ci.naming import DEFAULT_APP_NAME_TEMPLATE
from gitops_ci.retry import SYSTEM_CLOCK, Clock
from gitops_ci.targets.kube import KubeSettings
from gitops_ci.targets.target import WAIT_KINDS, choose, given, preferred

if TYPE_CHECKING:  # sync and wait are imported when a deploy asks for them, not on every deploy
    from gitops_ci.targets.sync import SyncResult
    from gitops_ci.targets.wait import WaitResult

log = logs.get_logger(__name__)


@dataclass(frozen=True, kw_only=True)
class FollowUpSettings:
    sync: bool = False
    wait: bool = False
    argocd_webhook: str | None = None
    argocd_server: str | None = None
    argocd_kube: bool = False
    flux_receiver: str | None = None
    flux_kustomizations: tuple[str, ...] = ()
    app_name_template: str | None = None  # None: the repo's gitops-ci.yaml, else the seed's {app}-{env}
    app_namespace: str | None = None
    prune: bool = False
    with_source: bool = False
    kube: KubeSettings = field(default_factory=KubeSettings)
    timeout_seconds: float = 600.0
    interval_seconds: float = 5.0

    def __post_init__(self) -> None:
        if self.sync and preferred(given(self)) is None:
            raise ConfigurationError(
                "--sync needs --argocd-webhook, --argocd-server, --flux-receiver or --flux-kustomization"
            )
        if self.wait:
            choose(given(self), WAIT_KINDS, "--wait reads the status from one of")


@dataclass(frozen=True)
class FollowUpResult:
    revision: str | None
    sync: SyncResult | None = None
    wait: WaitResult | None = None
    skipped: str | None = None


@dataclass(frozen=True)
class FollowUp:
    """The follow-ups of one deploy: what to do, and the deploy they follow."""

    settings: FollowUpSettings
    deploy: DeploySettings


def follow_up(
    repo: ManifestRepo, result: DeployResult, follow: FollowUp, clock: Clock = SYSTEM_CLOCK
) -> FollowUpResult:
    """The sync step, then the wait step, at the revision the change produced."""
    revision = _revision(repo, result)
    if revision is None:
        reason = "the merge requests are not merged yet: sync and wait apply once they are"
        log.info("%s", reason)
        return FollowUpResult(None, skipped=reason)
    follow = with_defaults(follow, result.defaults)
    synced = sync_step(follow, result, revision) if follow.settings.sync else None
    if not follow.settings.wait or follow.deploy.repo.dry_run:
        return FollowUpResult(revision, synced)
    return FollowUpResult(revision, synced, wait_step(repo, follow, revision))


def sync_step(follow: FollowUp, result: DeployResult, revision: str) -> SyncResult:
    from gitops_ci.targets.sync import SyncSettings, sync

    settings, deploy, repo = follow.settings, follow.deploy, follow.deploy.repo
    return sync(
        SyncSettings(
            revision=revision,
            repo_url=repo.repo_url,
            branch=result.branch,
            before=result.base_commit,
            changed_files=tuple(result.changed_files),
            path_template=repo.path_template,
            app=deploy.app,
            environments=deploy.environments,
            **_sync_target(settings),
            app_name_template=settings.app_name_template or DEFAULT_APP_NAME_TEMPLATE,
            app_namespace=settings.app_namespace,
            prune=settings.prune,
            with_source=settings.with_source,
            ca_file=repo.ca_file,
            kube=settings.kube,
            max_attempts=repo.max_attempts,
            backoff_seconds=repo.backoff_seconds,
            request_timeout_seconds=repo.network_timeout_seconds,
            dry_run=repo.dry_run,
        )
    )


def wait_step(repo: ManifestRepo, follow: FollowUp, revision: str) -> WaitResult:
    from gitops_ci.targets.wait import WaitSettings, wait

    settings, deploy = follow.settings, follow.deploy
    return wait(
        WaitSettings(
            revision=revision,
            app=deploy.app,
            environments=deploy.environments,
            argocd_server=settings.argocd_server
            if not settings.argocd_kube and not settings.flux_kustomizations
            else None,
            argocd_kube=settings.argocd_kube,
            flux_kustomizations=settings.flux_kustomizations,
            app_name_template=settings.app_name_template or DEFAULT_APP_NAME_TEMPLATE,
            app_namespace=settings.app_namespace,
            timeout_seconds=settings.timeout_seconds,
            interval_seconds=settings.interval_seconds,
            contains=lambda sha: repo.contains(revision, sha),
            request_timeout_seconds=deploy.repo.network_timeout_seconds,
            ca_file=deploy.repo.ca_file,
            kube=settings.kube,
        )
    )


def _sync_target(settings: FollowUpSettings) -> dict[str, Any]:
    """One sync target, the cheapest given (a webhook needs no token)."""
    target = preferred(given(settings))
    assert target is not None  # checked by FollowUpSettings
    return {
        target.kind.replace("-", "_") + ("s" if target.kind == "flux-kustomization" else ""): target.value
    }


def with_defaults(follow: FollowUp, defaults: RepoDefaults) -> FollowUp:
    """The options, else what the repo's gitops-ci.yaml says, else the seed's names ({app}-{env})."""
    names = follow.settings.app_name_template or defaults.app_name_template or DEFAULT_APP_NAME_TEMPLATE
    paths = follow.deploy.repo.path_template or defaults.path_template
    return FollowUp(
        replace(follow.settings, app_name_template=names),
        replace(follow.deploy, repo=replace(follow.deploy.repo, path_template=paths)),
    )


def _revision(repo: ManifestRepo, result: DeployResult) -> str | None:
    if result.status != "merge-requests":
        return result.commit or result.base_commit
    if any(mr.action not in ("merged", "up-to-date") for mr in result.merge_requests):
        return None
    return repo.branch_tip(result.branch)
