"""`gitops-ci deploy`: clone → edit → commit → push, re-applying the edit when the branch moves.

Rejected pushes are never rebased: the edit is applied again to the new tip, so a concurrent change to the
same file is merged at the data level and an unrelated one is simply kept.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from gitops_ci import logs
from gitops_ci.credentials import check_repo_url, git_environment, resolve_credentials
from gitops_ci.deploy_settings import DeploySettings, commit_message, image_updates, overlay_path
from gitops_ci.errors import ConfigurationError, KustomizationError, OperationalError, RetryableError
from gitops_ci.git_repo import ManifestClone, Remote
from gitops_ci.imageref import ImageUpdate
from gitops_ci.overlays import OverlayEdit, plan_edits, write_edits
from gitops_ci.retry import sleep_before_retry, with_retries

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnvironmentChange:
    environment: str
    path: str
    edit: OverlayEdit


@dataclass(frozen=True)
class DeployResult:
    status: str  # "pushed", "up-to-date" or "dry-run"
    repo_url: str
    branch: str
    commit: str | None
    base_commit: str
    changes: tuple[EnvironmentChange, ...]
    attempts: int = 1

    @property
    def changed_files(self) -> list[str]:
        return [f"{c.path}/{c.edit.file.name}" for c in self.changes if c.edit.changed]


def remote_for(repo_url: str, ca_file: str | None) -> Remote:
    url = check_repo_url(repo_url)
    credentials = resolve_credentials()
    variable = credentials.variable if credentials else None
    return Remote(url, git_environment(url, credentials, ca_file), variable)


def deploy(settings: DeploySettings) -> DeployResult:
    paths = {env: overlay_path(settings.path_template, settings.app, env) for env in settings.environments}
    updates = image_updates(settings.app, settings.images)
    remote = remote_for(settings.repo_url, settings.ca_file)
    message = commit_message(
        settings.message,
        app=settings.app,
        environments=settings.environments,
        updates=updates,
        trailers=settings.trailers,
    )
    with workspace(settings.workdir) as directory:
        with logs.section("clone", f"Cloning {remote.url} (sparse: {', '.join(paths.values())})"):
            clone = with_retries(
                lambda: ManifestClone.clone(remote, directory, settings.branch, list(paths.values())),
                what="clone",
                max_attempts=settings.max_attempts,
                base=settings.backoff_seconds,
            )
        return _edit_commit_push(settings, clone, paths, updates, message)


def _edit_commit_push(
    settings: DeploySettings,
    clone: ManifestClone,
    paths: dict[str, str],
    updates: Sequence[ImageUpdate],
    message: str,
) -> DeployResult:
    base = clone.head()
    for attempt in range(1, settings.max_attempts + 1):
        changes = edit_overlays(clone.root, paths, updates, dry_run=settings.dry_run)
        files = [f"{c.path}/{c.edit.file.name}" for c in changes if c.edit.changed]
        result = DeployResult(
            "up-to-date", clone.remote.url, clone.branch, None, base, tuple(changes), attempt
        )
        if not files:
            log.info("%s already holds the image in %s: nothing to commit", clone.branch, ", ".join(paths))
            return result
        if settings.dry_run:
            return DeployResult(
                "dry-run", clone.remote.url, clone.branch, None, base, tuple(changes), attempt
            )
        commit = clone.commit(files, message, settings.author or settings.committer, settings.committer)
        try:
            with logs.section(
                f"push_{attempt}", f"Pushing {commit[:12]} to {clone.branch} (attempt {attempt})"
            ):
                clone.push(clone.branch)
            return DeployResult(
                "pushed", clone.remote.url, clone.branch, commit, base, tuple(changes), attempt
            )
        except RetryableError as err:
            if attempt == settings.max_attempts:
                raise OperationalError(
                    f"push to {clone.branch} failed after {attempt} attempts: {err}; "
                    "raise --max-attempts or look for a job that pushes in a loop"
                ) from None
            sleep_before_retry(attempt, settings.backoff_seconds, str(err))
            base = with_retries(
                clone.refresh, what="fetch", max_attempts=settings.max_attempts, base=settings.backoff_seconds
            )
            if base == commit:  # the push landed although the connection failed: never land it twice
                log.info("the previous push of %s landed after all", commit[:12])
                return DeployResult(
                    "pushed", clone.remote.url, clone.branch, commit, base, tuple(changes), attempt
                )
    raise AssertionError("unreachable")


def edit_overlays(
    root: Path, paths: dict[str, str], updates: Sequence[ImageUpdate], *, dry_run: bool
) -> list[EnvironmentChange]:
    """Edit every environment's overlay at once (all or nothing); write unless dry-run."""
    for env, path in paths.items():
        if not (root / path).is_dir():
            raise KustomizationError(
                f"overlay {path} for environment {env!r} does not exist in the manifest repo; "
                "check --app, --env and --path-template"
            )
    edits = plan_edits([root / p for p in paths.values()], updates, display_root=root)
    if not dry_run:
        write_edits(edits)
    by_dir = {edit.overlay: edit for edit in edits}
    return [
        EnvironmentChange(env, path, by_dir[root / path])
        for env, path in paths.items()
        if root / path in by_dir
    ]


@contextlib.contextmanager
def workspace(workdir: Path | None) -> Iterator[Path]:
    """`--workdir` keeps the clone; otherwise a temporary directory that is always removed."""
    if workdir is not None:
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
