"""Opening the manifest repo for a change: credentials resolved once, the adapter chosen by --transport
(git: a sparse clone in the workspace, with retries and the signing key; api: GitLab's API, no workspace
and nothing of git imported)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from gitops_ci import logs
from gitops_ci.errors import ConfigurationError
from gitops_ci.manifest_repo.credentials import check_repo_url, git_environment, resolve_credentials
from gitops_ci.manifest_repo.port import ManifestRepo
from gitops_ci.naming import check_ref_name
from gitops_ci.retry import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from gitops_ci.change.settings import RepoSettings
    from gitops_ci.manifest_repo.git import Remote
    from gitops_ci.manifest_repo.gitlab_connection import GitLabConnection
    from gitops_ci.manifest_repo.gitlab_rest import GitLabRest
    from gitops_ci.manifest_repo.signing import Signer


def _remote(settings: RepoSettings) -> Remote:
    from gitops_ci.manifest_repo.git import Remote

    url = check_repo_url(settings.repo_url)
    credentials = resolve_credentials()
    variable = credentials.variable if credentials else None
    if any(name.lower().endswith("_proxy") for name in os.environ):  # read only when one is set
        from gitops_ci.manifest_repo.proxy_env import register_proxy_passwords

        register_proxy_passwords()
    env = git_environment(url, credentials, settings.ca_file, stall_seconds=settings.network_timeout_seconds)
    return Remote(url, env, variable, timeout=settings.git_timeout_seconds)


@contextlib.contextmanager
def open_repo(
    settings: RepoSettings,
    sparse_paths: Sequence[str],
    clock: Clock = SYSTEM_CLOCK,
    *,
    overlays: Sequence[str] = (),
) -> Iterator[ManifestRepo]:
    """`sparse_paths`: what the clone checks out; `overlays`: those the change edits, if it knows (the API
    transport reads them ahead)."""
    if settings.transport == "api":
        yield _api_repo(settings, clock, overlays)
        return
    from gitops_ci.manifest_repo.git import GitManifestRepo

    remote = _remote(settings)
    with workspace(settings.workdir) as directory, _signer(settings) as signer:
        with logs.section("clone", f"Cloning {remote.url} (sparse: {', '.join(sparse_paths)})"):
            repo = settings.retried(
                lambda: GitManifestRepo.clone(
                    remote, directory, settings.branch, sparse_paths, signer=signer
                ),
                "clone",
                clock,
            )
        yield repo


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
    import shutil
    import tempfile

    directory = Path(tempfile.mkdtemp(prefix="gitops-ci-"))
    try:
        yield directory / "manifests"
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _signer(settings: RepoSettings) -> contextlib.AbstractContextManager[Signer | None]:
    if settings.signing_key is None:
        return contextlib.nullcontext()
    from gitops_ci.manifest_repo.signing import signer_for

    return signer_for(settings.signing_key)


def _api_repo(settings: RepoSettings, clock: Clock, overlays: Sequence[str]) -> ManifestRepo:
    from gitops_ci.manifest_repo.api_repo import GitLabApiRepo

    if settings.signing_key is not None:
        raise ConfigurationError(
            "--signing-key signs the commits gitops-ci makes with git; with --transport api GitLab makes "
            "them: use --transport git to sign"
        )
    if settings.workdir is not None:
        raise ConfigurationError(
            f"--workdir {settings.workdir} keeps the clone, and --transport api makes none: drop --workdir "
            "(GITOPS_WORKDIR) or use --transport git"
        )
    from gitops_ci.manifest_repo.gitlab_rest import GitLabRest

    rest = GitLabRest(gitlab_connection(settings))
    url = check_repo_url(settings.repo_url)
    branch = settings.branch or settings.retried(lambda: _default_branch(rest), "reading the project", clock)
    return GitLabApiRepo(rest, url, branch, overlays)


def gitlab_connection(settings: RepoSettings) -> GitLabConnection:
    """GitLab's API for the manifest repo, with the token and the retry bounds of these settings."""
    from gitops_ci.manifest_repo.gitlab_connection import connection_for

    credentials = resolve_credentials()
    connection = connection_for(
        check_repo_url(settings.repo_url),
        settings.merge_request.gitlab_url,
        credentials.token if credentials else None,
        credentials.variable if credentials else None,
        settings.ca_file,
        settings.network_timeout_seconds,
    )
    return replace(connection, max_attempts=settings.max_attempts, backoff_seconds=settings.backoff_seconds)


def _default_branch(rest: GitLabRest) -> str:
    project = rest.get("", what="reading the project")
    if project.status == 404 or not isinstance(project.body, dict) or not project.body.get("default_branch"):
        c = rest.connection
        raise ConfigurationError(
            f"project {c.project_path} on {c.url} was not found or has no default branch; check --repo-url "
            f"(or pass --branch), and that {c.token_variable} can see it"
        )
    return check_ref_name(str(project.body["default_branch"]), "the project's default branch")
