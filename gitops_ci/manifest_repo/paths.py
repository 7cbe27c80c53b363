"""Paths inside a manifest repo. Its content is untrusted: a symlink or a `..` in it must never make
gitops-ci read or write a file outside it.

`resolve` is pure: it follows the repo's symlinks (given as a map, read from disk or from a git tree) within
the repo, the way the kernel would, and says None when the path leaves it. `writable_file` and
`readable_file` apply the same rule on disk; a write additionally refuses any symlink on the way, since
writing through one changes another file than the one committed.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Mapping
from pathlib import Path

from gitops_ci.errors import UnsafePathError

MAX_LINK_HOPS = 40  # as Linux's ELOOP


def resolve(path: str, links: Mapping[str, str]) -> str | None:
    """The repo-relative path `path` names after following `links` (repo path → link target), or None when
    it leaves the repo (`..` past the root, an absolute link target, a link loop)."""
    pending = [p for p in path.split("/") if p not in ("", ".")]
    pending.reverse()
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop()
        if part == "..":
            if not resolved:
                return None
            resolved.pop()
            continue
        candidate = "/".join([*resolved, part])
        target = links.get(candidate)
        if target is None:
            resolved.append(part)
            continue
        hops += 1
        if hops > MAX_LINK_HOPS or target.startswith("/") or not target:
            return None
        pending.extend(reversed([p for p in target.split("/") if p not in ("", ".")]))
    return "/".join(resolved) or "."


def relative_inside(root: Path, path: Path) -> str:
    """`path` (absolute or relative to the working directory) as a path relative to `root`, lexically."""
    relative = os.path.relpath(_lexical(path), _lexical(root))
    posix = relative.replace(os.sep, "/")
    if posix == ".." or posix.startswith("../") or Path(relative).is_absolute():
        raise UnsafePathError(f"{path} is outside the manifest repo {root}")
    return posix


def work_tree_of(path: Path) -> Path:
    """The git work tree `path` is in (the nearest parent with a `.git`), else `path` itself."""
    start = Path(_lexical(path))
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    return start


def writable_file(root: Path, relative: str) -> Path:
    """`root/relative` for writing: no component may be a symlink, none may be `..`."""
    parts = relative.split("/")
    if ".." in parts or relative.startswith("/"):
        raise UnsafePathError(f"{relative} leaves the manifest repo; nothing was written")
    if inside_git(relative):
        raise UnsafePathError(f"{relative} is inside .git, not the repo's content; nothing was written")
    current = root
    for part in parts:
        if part in ("", "."):
            continue
        current = current / part
        if current.is_symlink():
            shown = posixpath.relpath(current.as_posix(), root.as_posix())
            raise UnsafePathError(
                f"{shown} is a symlink (to {current.readlink()}); gitops-ci writes only regular files of "
                "the manifest repo, nothing was written: replace the link with the file"
            )
    return current


def _lexical(path: Path) -> str:
    """Absolute and normalised without following symlinks (resolve() would hide the ones we look for)."""
    return os.path.normpath(path.absolute())


def readable_file(root: Path, relative: str) -> Path:
    """`root/relative` for reading, when it resolves inside `root` (symlinks within the repo are fine)."""
    real_root = root.resolve()
    target = (root / relative).resolve()
    if target != real_root and real_root not in target.parents:
        raise UnsafePathError(
            f"{relative} resolves outside the manifest repo (to {target}); refusing to read it"
        )
    return root / relative


def inside_git(path: str) -> bool:
    """Whether a repo-relative path lies in `.git` (in any case, as git refuses it): git's, not the repo's."""
    return any(part.lower() == ".git" for part in path.split("/"))


def checked_repo_path(path: str) -> str:
    """A repo-relative path for an adapter without a work tree: refused when absolute or climbing out."""
    if path.startswith("/") or ".." in path.split("/"):
        raise UnsafePathError(f"{path}: leaves the manifest repo; use a path inside it")
    if inside_git(path):
        raise UnsafePathError(f"{path}: inside .git, not the repo's content; use a path outside it")
    return path
