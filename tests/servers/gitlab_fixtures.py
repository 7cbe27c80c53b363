"""Pytest fixtures around :mod:`servers.gitlab_api` (the GitLab REST contract server).

Load them from a test module (or a conftest) with::

    pytest_plugins = ["servers.gitlab_fixtures"]

``gitlab_api`` is a started server per test; ``gitlab_project`` creates a bare repository with
real git plumbing under ``tmp_path`` and registers it; ``gitlab_token`` is an ``api``-scoped
token of the user ``ci-bot``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from servers.gitlab_api import GitLabContractServer
from servers.gitlab_git import GitRepo, Ident

__all__ = [
    "PINNED_IDENT",
    "GitLabProject",
    "commit_to_branch",
    "git_identity_env",
    "gitlab_api",
    "gitlab_project",
    "gitlab_token",
    "make_bare_repo_with_files",
]

PINNED_IDENT = Ident("Test Author", "author@example.com", "2024-01-01T00:00:00Z")
TOKEN = "glpat-contract-ci-bot"


def make_bare_repo_with_files(path: str | Path, files: Mapping[str, str], branch: str = "main") -> str:
    """Create a bare repo at ``path`` whose ``branch`` holds ``files`` in one commit; return its SHA.

    Built with plumbing (``hash-object``, ``update-index``, ``write-tree``, ``commit-tree``,
    ``update-ref``) and a pinned author/committer, so the SHA is the same on every run.
    """
    repo = GitRepo.init_bare(path, branch)
    return repo.commit_files(branch, files, "initial commit\n", PINNED_IDENT)


def commit_to_branch(
    repo_dir: str | Path,
    branch: str,
    files: Mapping[str, str],
    *,
    message: str = "update\n",
    base: str | None = None,
) -> str:
    """Commit ``files`` onto ``branch`` (created from ``base``, a branch name or SHA, if given)."""
    repo = GitRepo(repo_dir)
    parent = repo.run("rev-parse", "--verify", f"{base}^{{commit}}").stdout.strip() if base else None
    return repo.commit_files(branch, files, message, PINNED_IDENT, base=parent)


@dataclass(frozen=True)
class GitLabProject:
    """A registered project: its API JSON and its bare repository."""

    info: dict[str, Any]
    repo_dir: Path

    @property
    def id(self) -> int:
        return int(self.info["id"])

    @property
    def path(self) -> str:
        return str(self.info["path_with_namespace"])

    @property
    def repo(self) -> GitRepo:
        return GitRepo(self.repo_dir)

    def branch_sha(self, branch: str) -> str | None:
        return self.repo.branch_sha(branch)

    def read(self, ref: str, path: str) -> str | None:
        return self.repo.show(ref, path)

    def commit(
        self, branch: str, files: Mapping[str, str], *, message: str = "update\n", base: str | None = None
    ) -> str:
        return commit_to_branch(self.repo_dir, branch, files, message=message, base=base)


@pytest.fixture
def git_identity_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pinned git identity and dates, HOME in tmp and no system/global git config."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", PINNED_IDENT.name)
        monkeypatch.setenv(f"GIT_{role}_EMAIL", PINNED_IDENT.email)
        monkeypatch.setenv(f"GIT_{role}_DATE", str(PINNED_IDENT.date))


@pytest.fixture
def gitlab_api(git_identity_env: None) -> Iterator[GitLabContractServer]:
    """A started GitLab contract server on 127.0.0.1 (random port), stopped after the test."""
    with GitLabContractServer() as server:
        yield server


@pytest.fixture
def gitlab_token(gitlab_api: GitLabContractServer) -> str:
    """A personal access token with scope ``api`` for the user ``ci-bot``."""
    gitlab_api.add_token(TOKEN, username="ci-bot", scopes=("api",))
    return TOKEN


@pytest.fixture
def gitlab_project(gitlab_api: GitLabContractServer, tmp_path: Path) -> Callable[..., GitLabProject]:
    """Factory: ``gitlab_project("group/sub/app", files={...}, has_pipelines=True, ...)``.

    Creates ``tmp_path/repos/<path>.git`` with ``files`` on ``default_branch`` and registers it;
    other keyword arguments go to :meth:`GitLabContractServer.add_project`.
    """

    def create(
        path: str = "group/sub/app",
        files: Mapping[str, str] | None = None,
        *,
        default_branch: str = "main",
        **options: Any,
    ) -> GitLabProject:
        repo_dir = tmp_path / "repos" / f"{path}.git"
        make_bare_repo_with_files(repo_dir, files or {"README.md": "# manifests\n"}, default_branch)
        info = gitlab_api.add_project(path, repo_dir, default_branch=default_branch, **options)
        return GitLabProject(info, repo_dir)

    return create
