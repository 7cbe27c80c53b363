"""An in-memory ManifestRepo: commits as dictionaries, for unit tests of every step of a change.

It behaves like a server with one client: `publish` is a compare-and-swap on the branch, and `on_publish`
lets a test move the branch first (another job's landing) or fail the call (a lost answer after landing).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from gitops_ci.errors import PushRejectedError
from gitops_ci.manifest_repo.paths import checked_repo_path
from gitops_ci.manifest_repo.port import Identity, Listing, kustomization_by_listing


@dataclass(frozen=True)
class Commit:
    parent: str | None
    files: Mapping[str, str]
    message: str
    author: Identity


@dataclass
class InMemoryManifestRepo:
    files: dict[str, str]
    url: str = "memory://manifests"
    branch: str = "main"
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    on_publish: Callable[[InMemoryManifestRepo, str, str], object] | None = None
    published: list[tuple[str, str]] = field(default_factory=list)
    _base: str = ""

    def __post_init__(self) -> None:
        root = self._store(None, dict(self.files), "initial", Identity("test", "test@example.invalid"))
        self.branches[self.branch] = self._base = root

    def base(self) -> str:
        return self._base

    def include(self, paths: Sequence[str]) -> None:
        """Every path is readable already."""

    def read(self, path: str) -> str | None:
        return self.commits[self._base].files.get(checked_repo_path(path))

    def listing(self, path: str) -> Listing | None:
        prefix = "" if path in ("", ".") else checked_repo_path(path).rstrip("/") + "/"
        below = [name[len(prefix) :] for name in self.commits[self._base].files if name.startswith(prefix)]
        if not below:
            return None
        files = sorted(name for name in below if "/" not in name)
        return Listing(tuple(files), tuple(sorted({name.split("/")[0] for name in below if "/" in name})))

    def kustomization(self, overlay: str) -> tuple[str, str] | None:
        return kustomization_by_listing(self, overlay)

    def commit(self, files: Mapping[str, str], message: str, author: Identity, committer: Identity) -> str:
        tree = {**self.commits[self._base].files, **{checked_repo_path(p): t for p, t in files.items()}}
        return self._store(self._base, tree, message, author)

    def publish(self, commit: str, branch: str, *, lease: str | None = None) -> str:
        if self.on_publish is not None:
            self.on_publish(self, commit, branch)  # may move the branch, or raise after landing
        current = self.branches.get(branch)
        expected = self.commits[commit].parent if lease is None else (lease or None)
        if current != expected and not (lease is None and current is None):
            raise PushRejectedError(f"{branch} moved to {current} (expected {expected})")
        self.branches[branch] = commit
        self.published.append((branch, commit))
        return commit

    def landed(self, commit: str, tip: str) -> str | None:
        return commit if self.contains(commit, tip) else None

    def refresh(self) -> str:
        self._base = self.branches[self.branch]
        return self._base

    def contains(self, ancestor: str, descendant: str) -> bool:
        current: str | None = descendant
        while current is not None:
            if current == ancestor:
                return True
            current = self.commits[current].parent
        return False

    def branch_tip(self, branch: str) -> str | None:
        return self.branches.get(branch)

    def read_branch(self, branch: str, path: str, back: int = 0) -> str | None:
        sha: str | None = self.branches.get(branch)
        for _ in range(back):
            sha = self.commits[sha].parent if sha else None
        return self.commits[sha].files.get(path) if sha else None

    def land(self, files: Mapping[str, str], message: str = "another job") -> str:
        """Another job's commit on the branch tip (what a concurrent deploy does)."""
        tip = self.branches[self.branch]
        tree = {**self.commits[tip].files, **files}
        self.branches[self.branch] = sha = self._store(
            tip, tree, message, Identity("other", "o@example.invalid")
        )
        return sha

    def history(self, branch: str | None = None) -> list[Commit]:
        """The branch's commits, newest first."""
        out, sha = [], self.branches.get(branch or self.branch)
        while sha is not None:
            out.append(self.commits[sha])
            sha = self.commits[sha].parent
        return out

    def _store(self, parent: str | None, files: dict[str, str], message: str, author: Identity) -> str:
        digest = hashlib.sha1(f"{parent}{sorted(files.items())}{message}{len(self.commits)}".encode())
        sha = digest.hexdigest()
        self.commits[sha] = Commit(parent, files, message, author)
        return sha
