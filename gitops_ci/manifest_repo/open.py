"""Opening the manifest repo for a change: credentials resolved once, the signing key prepared, the adapter
chosen, and the clone made (with retries)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gitops_ci import logs
from gitops_ci.manifest_repo.credentials import check_repo_url, git_environment, resolve_credentials
from gitops_ci.manifest_repo.git import GitManifestRepo, Remote
from gitops_ci.manifest_repo.signing import signer_for
from gitops_ci.retry import SYSTEM_CLOCK, Clock, with_retries

if TYPE_CHECKING:
    from gitops_ci.change.settings import RepoSettings


def remote_for(settings: RepoSettings) -> Remote:
    url = check_repo_url(settings.repo_url)
    credentials = resolve_credentials()
    variable = credentials.variable if credentials else None
    env = git_environment(url, credentials, settings.ca_file, stall_seconds=settings.network_timeout_seconds)
    return Remote(url, env, variable, timeout=settings.git_timeout_seconds)


@contextlib.contextmanager
def open_repo(
    settings: RepoSettings, sparse_paths: Sequence[str], directory: Path, clock: Clock = SYSTEM_CLOCK
) -> Iterator[GitManifestRepo]:
    remote = remote_for(settings)
    with signer_for(settings.signing_key) as signer:
        with logs.section("clone", f"Cloning {remote.url} (sparse: {', '.join(sparse_paths)})"):
            repo = with_retries(
                lambda: GitManifestRepo.clone(
                    remote, directory, settings.branch, sparse_paths, signer=signer
                ),
                what="clone",
                max_attempts=settings.max_attempts,
                base=settings.backoff_seconds,
                clock=clock,
            )
        yield repo
