"""Changing the manifest repo: clone → edit → commit → push (or open merge requests).

Rejected pushes are never rebased: the edit is planned and applied again on the new tip, so a concurrent
change to the same file is merged at the data level and an unrelated one is simply kept.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from gitops_ci import logs
from gitops_ci.change.settings import (
    DeploySettings,
    RepoSettings,
    commit_message,
    image_updates,
    overlay_path,
    with_trailers,
)
from gitops_ci.errors import (
    ConfigurationError,
    KustomizationError,
    OperationalError,
    PushRejectedError,
    RetryableError,
)
from gitops_ci.images.files import OverlayEdit, plan_edits, write_edits
from gitops_ci.images.reference import ImageUpdate
from gitops_ci.manifest_repo.credentials import check_repo_url, git_environment, resolve_credentials
from gitops_ci.manifest_repo.git import ManifestClone, Remote
from gitops_ci.manifest_repo.paths import writable_file
from gitops_ci.manifest_repo.signing import Signer, signer_for
from gitops_ci.retry import sleep_before_retry, with_retries

log = logs.get_logger(__name__)
PUSH_BACKOFF_CAP = 30.0


@dataclass(frozen=True)
class Target:
    """One overlay to edit, and how."""

    app: str
    environment: str
    path: str
    updates: tuple[ImageUpdate, ...]


@dataclass(frozen=True)
class EnvironmentChange:
    app: str
    environment: str
    path: str
    edit: OverlayEdit

    @property
    def file(self) -> str:
        return f"{self.path}/{self.edit.file.name}"


@dataclass(frozen=True)
class MergeRequestResult:
    app: str
    environment: str
    source_branch: str
    action: str  # created, updated, unchanged, merged, auto-merge, up-to-date, dry-run
    iid: int | None = None
    web_url: str | None = None
    commit: str | None = None


@dataclass(frozen=True)
class DeployResult:
    status: str  # pushed, up-to-date, dry-run, merge-requests
    repo_url: str
    branch: str
    commit: str | None
    base_commit: str
    changes: tuple[EnvironmentChange, ...]
    attempts: int = 1
    merge_requests: tuple[MergeRequestResult, ...] = ()

    @property
    def changed_files(self) -> list[str]:
        return [c.file for c in self.changes if c.edit.changed]


Planner = Callable[[Path], list[Target]]
MessageFor = Callable[[Sequence[EnvironmentChange]], str]


def deploy(settings: DeploySettings) -> DeployResult:
    updates = tuple(image_updates(settings.app, settings.images))
    targets = [
        Target(settings.app, env, overlay_path(settings.repo.path_template, settings.app, env), updates)
        for env in settings.environments
    ]
    images = [u.reference() for u in updates]

    def message(changes: Sequence[EnvironmentChange]) -> str:
        envs = [c.environment for c in changes if c.edit.changed] or list(settings.environments)
        return commit_message(
            settings.message, app=settings.app, environments=envs, images=images, mode=settings.repo.mode
        )

    message([])  # a bad template is bad input: fail before cloning
    return change_manifests(settings.repo, [t.path for t in targets], lambda root: targets, message)


def change_manifests(
    repo: RepoSettings, sparse_paths: Sequence[str], planner: Planner, message_for: MessageFor
) -> DeployResult:
    remote = remote_for(repo)
    with workspace(repo.workdir) as directory, signer_for(repo.signing_key) as signer:
        clone = open_clone(repo, remote, directory, sparse_paths, signer)
        if repo.mode == "merge-request":
            from gitops_ci.change.merge_request import open_merge_requests

            return open_merge_requests(repo, clone, planner, message_for)
        return push_with_retries(repo, clone, planner, message_for)


def remote_for(repo: RepoSettings) -> Remote:
    url = check_repo_url(repo.repo_url)
    credentials = resolve_credentials()
    variable = credentials.variable if credentials else None
    env = git_environment(url, credentials, repo.ca_file, stall_seconds=repo.network_timeout_seconds)
    return Remote(url, env, variable, timeout=repo.git_timeout_seconds)


def open_clone(
    repo: RepoSettings,
    remote: Remote,
    directory: Path,
    sparse_paths: Sequence[str],
    signer: Signer | None = None,
) -> ManifestClone:
    with logs.section("clone", f"Cloning {remote.url} (sparse: {', '.join(sparse_paths)})"):
        return with_retries(
            lambda: ManifestClone.clone(remote, directory, repo.branch, list(sparse_paths), signer=signer),
            what="clone",
            max_attempts=repo.max_attempts,
            base=repo.backoff_seconds,
        )


def push_with_retries(
    repo: RepoSettings, clone: ManifestClone, planner: Planner, message_for: MessageFor
) -> DeployResult:
    """Edit, commit and push until the push lands. A lost race (another job moved the branch) re-applies
    the edit on the new tip until --push-timeout; a transient failure is retried --max-attempts times."""
    base = clone.head()
    url, branch = clone.remote.url, clone.branch
    deadline = time.monotonic() + repo.push_timeout_seconds
    failures = 0
    for attempt in itertools.count(1):
        started = time.monotonic()
        changes = tuple(edit_targets(clone.root, planner(clone.root), dry_run=repo.dry_run))
        files = [c.file for c in changes if c.edit.changed]
        if not files or repo.dry_run:
            return DeployResult(
                "dry-run" if files else "up-to-date", url, branch, None, base, changes, attempt
            )
        author = repo.author or repo.committer
        commit = clone.commit(
            files, with_trailers(message_for(changes), repo.trailers), author, repo.committer
        )
        try:
            with logs.section(f"push_{attempt}", f"Pushing {commit[:12]} to {branch} (attempt {attempt})"):
                clone.push(branch)
            return DeployResult("pushed", url, branch, commit, base, changes, attempt)
        except PushRejectedError as err:
            if time.monotonic() >= deadline:
                raise OperationalError(
                    f"{branch} kept moving: other pushes won {attempt} races in a row for "
                    f"{repo.push_timeout_seconds:g}s; raise --push-timeout or look for a job that pushes "
                    "in a loop"
                ) from None
            reason = str(err)
        except RetryableError as err:
            failures += 1
            if failures == repo.max_attempts:
                raise OperationalError(
                    f"push to {branch} failed {failures} times: {err}; raise --max-attempts if the server "
                    "is only slow"
                ) from None
            reason = str(err)
        # Contenders collide while one of them is between its fetch and its push, so the backoff
        # window grows from the length of that cycle as measured here, not from a fixed base.
        cycle = time.monotonic() - started
        cap = max(0.0, min(PUSH_BACKOFF_CAP, deadline - time.monotonic()))
        sleep_before_retry(attempt, max(repo.backoff_seconds, cycle), reason, cap=cap)
        parent, base = (
            base,
            with_retries(
                clone.refresh, what="fetch", max_attempts=repo.max_attempts, base=repo.backoff_seconds
            ),
        )
        # A push whose answer was lost may have landed, and another job may have landed on top of it since:
        # the tip's history, not the tip itself, says whether ours is in (never land it twice).
        if clone.is_ancestor(commit, base):
            log.info("the previous push of %s landed after all", commit[:12])
            return DeployResult("pushed", url, branch, commit, parent, changes, attempt)
    raise AssertionError("unreachable")


def edit_targets(root: Path, targets: Sequence[Target], *, dry_run: bool) -> list[EnvironmentChange]:
    """Plan every target's edit in memory (all or nothing), then write them unless dry-run."""
    planned: list[EnvironmentChange] = []
    for target in targets:
        if not writable_file(root, target.path).is_dir():
            raise KustomizationError(
                f"overlay {target.path} for environment {target.environment!r} does not exist in the "
                "manifest repo; check --app, --env and --path-template"
            )
        (edit,) = plan_edits([root / target.path], target.updates, root=root)
        planned.append(EnvironmentChange(target.app, target.environment, target.path, edit))
    if not dry_run:
        write_edits([change.edit for change in planned])
    return planned


@contextlib.contextmanager
def workspace(workdir: Path | None) -> Iterator[Path]:
    """`--workdir` keeps the clone; otherwise a temporary directory that is always removed."""
    if workdir is not None:
        if workdir.exists() and not workdir.is_dir():
            raise ConfigurationError(f"--workdir {workdir} is not a directory; give a new or empty directory")
        if workdir.exists() and any(workdir.iterdir()):
            raise ConfigurationError(f"--workdir {workdir} is not empty; give a new or empty directory")
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    directory = Path(tempfile.mkdtemp(prefix="gitops-ci-"))
    try:
        yield directory / "manifests"
    finally:
        shutil.rmtree(directory, ignore_errors=True)
