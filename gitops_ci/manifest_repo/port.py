"""The port every change to the manifest repo goes through: one branch, read at a base, committed on top of
it, published. Adapters: `git.GitManifestRepo` (a sparse clone) and `memory.InMemoryManifestRepo` (tests).

Paths are repo-relative POSIX strings. An adapter refuses a path that leaves the repo (UnsafePathError), and
raises PushRejectedError from `publish` when the branch moved (a lost race: plan again on `refresh()`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from gitops_ci.errors import KustomizationError


@dataclass(frozen=True)
class Identity:
    """A git author or committer."""

    name: str
    email: str


@dataclass(frozen=True)
class Listing:
    """What a directory holds directly: file and directory names, sorted."""

    files: tuple[str, ...]
    dirs: tuple[str, ...]


class ManifestRepo(Protocol):
    url: str
    branch: str  # the branch changes are made for (the target of merge requests)

    def base(self) -> str:
        """The commit that reads see and that the next commit builds on."""
        ...

    def include(self, paths: Sequence[str]) -> None:
        """Make the directories `paths` readable (a sparse clone checks them out; others read anything)."""
        ...

    def read(self, path: str) -> str | None:
        """A file's text at the base, exactly as stored; None when absent."""
        ...

    def listing(self, path: str) -> Listing | None:
        """The directory `path` at the base; None when there is no such directory."""
        ...

    def kustomization(self, overlay: str) -> tuple[str, str] | None:
        """The path and text of the overlay's kustomization file (kustomize's one of three names); None when
        there is no such directory. Adapters with a local tree use `kustomization_by_listing`."""
        ...

    def commit(self, files: Mapping[str, str], message: str, author: Identity, committer: Identity) -> str:
        """A commit on the base that sets `files` (path → text), ready to publish; returns its id (an adapter
        whose server makes the commit returns a placeholder until `publish`)."""
        ...

    def publish(self, commit: str, branch: str, *, lease: str | None = None) -> str:
        """Make `branch` hold `commit`: a fast-forward (lease None), or replacing `lease` (a SHA; "" for a
        branch that must not exist yet). Returns the SHA that landed. PushRejectedError when the branch or a
        file moved (a lost race); RetryableError when the answer is unknown (it may have landed)."""
        ...

    def landed(self, commit: str, tip: str) -> str | None:
        """After a publish whose answer was lost: the SHA under `tip` that holds `commit`, or None."""
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


def kustomization_by_listing(repo: ManifestRepo, overlay: str) -> tuple[str, str] | None:
    """The overlay's one kustomization file, as kustomize requires: two of its names in one directory fail."""
    from gitops_ci.images.editor import kustomization_name

    listing = repo.listing(overlay)
    if listing is None:
        return None
    path = f"{overlay}/{kustomization_name(listing.files, overlay)}"
    text = repo.read(path)
    if text is None:  # listed, but not a file (a dangling symlink)
        raise KustomizationError(f"{path}: cannot be read as a file")
    return path, text
