"""The port every change to the manifest repo goes through: one branch, read at a base, committed on top of
it, published. Adapters: `git.GitManifestRepo` (a sparse clone) and `memory.InMemoryManifestRepo` (tests).

Paths are repo-relative POSIX strings. An adapter refuses a path that leaves the repo (UnsafePathError), and
raises PushRejectedError from `publish` when the branch moved (a lost race: plan again on `refresh()`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Identity:
    name: str
    email: str


class ManifestRepo(Protocol):
    url: str
    branch: str  # the branch changes are made for (the target of merge requests)

    def base(self) -> str:
        """The commit that reads see and that the next commit builds on."""
        ...

    def read(self, path: str) -> str | None:
        """A file's text at the base, exactly as stored; None when absent."""
        ...

    def is_dir(self, path: str) -> bool: ...

    def list_dirs(self, path: str) -> list[str]:
        """Names of the directories directly in `path` at the base (sorted)."""
        ...

    def commit(self, files: Mapping[str, str], message: str, author: Identity, committer: Identity) -> str:
        """A new commit on the base that sets `files` (path → text); returns its SHA."""
        ...

    def publish(self, commit: str, branch: str, *, lease: str | None = None) -> None:
        """Make `branch` point at `commit`: a fast-forward (lease None), or replacing exactly `lease` (a SHA;
        "" for a branch that must not exist yet). PushRejectedError when the branch moved."""
        ...

    def refresh(self) -> str:
        """Make the target branch's current tip the base; returns it."""
        ...

    def contains(self, ancestor: str, descendant: str) -> bool:
        """Whether `descendant`'s history holds `ancestor` (did a commit land under later ones)."""
        ...

    def branch_tip(self, branch: str) -> str | None:
        """The branch's commit on the server now, None when it does not exist."""
        ...

    def read_branch(self, branch: str, path: str, back: int = 0) -> str | None:
        """A file at the `back`-th first parent of the server's `branch` tip (None when absent)."""
        ...
