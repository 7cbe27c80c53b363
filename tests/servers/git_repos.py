"""git plumbing on bare test repositories (no worktrees): create, commit, read, install hooks.

Everything runs the real ``git`` binary with a hermetic environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

__all__ = [
    "GIT",
    "ZERO_OID",
    "GitError",
    "Symlink",
    "commit_count",
    "commit_files",
    "git_env",
    "install_hook",
    "log_messages",
    "make_bare_repo",
    "read_blob",
    "rev_parse",
]


def _find_git() -> str:
    found = shutil.which("git")
    if found is None:
        raise RuntimeError("git executable not found on PATH")
    return found


# Resolved once at import, so that PATH wrappers installed by tests (argv recorders) never
# see the helpers' own git calls or the server's http-backend processes.
GIT: Final[str] = _find_git()

ZERO_OID: Final[str] = "0" * 40


@dataclass(frozen=True)
class Symlink:
    """A file content for ``commit_files``: a symbolic link to ``target`` (mode 120000)."""

    target: str


_IDENTITY: Final[Mapping[str, str]] = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.invalid",
}

_BARE_REPO_CONFIG: Final[tuple[tuple[str, str], ...]] = (
    ("http.receivepack", "true"),
    ("uploadpack.allowFilter", "true"),
    ("uploadpack.allowAnySHA1InWant", "true"),
)


Content = str | bytes | Symlink


class GitError(RuntimeError):
    """A git helper command failed; the message includes git's stderr."""


def git_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """A hermetic environment for helper git commands: no inherited ``GIT_*``, no user config."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("GIT_")}
    env.update(_IDENTITY)
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    if extra:
        env.update(extra)
    return env


def _git(
    git_dir: Path | None,
    *args: str,
    stdin: bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> bytes:
    argv = [GIT, *(["--git-dir", str(git_dir)] if git_dir is not None else []), *args]
    result = subprocess.run(argv, input=stdin, capture_output=True, env=git_env(env), check=False)
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise GitError(f"{' '.join(argv)} failed with exit code {result.returncode}: {stderr}")
    return result.stdout


def _git_text(git_dir: Path | None, *args: str, stdin: bytes | None = None) -> str:
    return _git(git_dir, *args, stdin=stdin).decode().strip()


def make_bare_repo(
    root: Path | str,
    name: str,
    files: Mapping[str, Content],
    branch: str = "main",
    message: str = "initial",
) -> Path:
    """Create ``<root>/<name>`` (``name`` may contain slashes) as a servable bare repo with one commit."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"repository name must be a relative path without '..': {name!r}")
    bare = Path(root) / relative
    bare.parent.mkdir(parents=True, exist_ok=True)
    _git(None, "init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare))
    for key, value in _BARE_REPO_CONFIG:
        _git(bare, "config", key, value)
    commit_files(bare, branch, files, message)
    return bare


def commit_files(
    bare: Path | str,
    branch: str,
    files: Mapping[str, Content | None],
    message: str,
) -> str:
    """Commit ``files`` on top of ``branch`` in a bare repo with plumbing; return the new commit sha.

    Paths may be nested (``overlays/prod/kustomization.yaml``); a ``None`` value deletes the path, a
    ``Symlink`` makes a symbolic link.
    Files not mentioned are kept from the parent commit. The branch is created if it does not
    exist. The ref update is a compare-and-swap, so a concurrent update makes this raise GitError.
    """
    git_dir = Path(bare)
    ref = f"refs/heads/{branch}"
    parent = _resolve_or_none(git_dir, ref)
    tree = _write_tree(git_dir, parent, files)
    parent_args = ["-p", parent] if parent else []
    commit = _git_text(git_dir, "commit-tree", tree, *parent_args, "-F", "-", stdin=message.encode())
    _git(git_dir, "update-ref", "-m", "commit_files", ref, commit, parent or ZERO_OID)
    return commit


def _resolve_or_none(git_dir: Path, ref: str) -> str | None:
    try:
        return _git_text(git_dir, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    except GitError:
        return None


def _write_tree(git_dir: Path, parent: str | None, files: Mapping[str, Content | None]) -> str:
    with tempfile.TemporaryDirectory(prefix="gitserver-") as scratch_dir:
        scratch = Path(scratch_dir)
        index_env = {"GIT_INDEX_FILE": str(scratch / "index")}
        if parent:
            _git(git_dir, "read-tree", parent, env=index_env)
        contents = [c.target if isinstance(c, Symlink) else c for c in files.values() if c is not None]
        blobs = _hash_blobs(git_dir, scratch, contents)
        entries = [
            f"0 {ZERO_OID}\t{path}\0"
            if content is None
            else f"{'120000' if isinstance(content, Symlink) else '100644'} {next(blobs)}\t{path}\0"
            for path, content in files.items()
        ]
        _git(git_dir, "update-index", "-z", "--index-info", stdin="".join(entries).encode(), env=index_env)
        return _git(git_dir, "write-tree", env=index_env).decode().strip()


def _hash_blobs(git_dir: Path, scratch: Path, contents: list[str | bytes]) -> Iterator[str]:
    """Write all blobs with a single ``git hash-object`` process; yield their ids in order."""
    paths = []
    for number, content in enumerate(contents):
        path = scratch / f"blob-{number}"
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        paths.append(str(path))
    if not paths:
        return iter(())
    out = _git(git_dir, "hash-object", "-w", "--no-filters", "--stdin-paths", stdin="\n".join(paths).encode())
    return iter(out.decode().split())


def read_blob(bare: Path | str, ref: str, path: str) -> str:
    """Return the UTF-8 content of ``path`` at ``ref`` (raises GitError if it does not exist)."""
    return _git(Path(bare), "cat-file", "blob", f"{ref}:{path}").decode()


def rev_parse(bare: Path | str, ref: str) -> str:
    """Resolve ``ref`` (any rev-parse syntax, e.g. ``main~1``) to a full object id."""
    return _git_text(Path(bare), "rev-parse", "--verify", "--end-of-options", ref)


def log_messages(bare: Path | str, ref: str) -> list[str]:
    """Full commit messages reachable from ``ref``, newest first, without the trailing newline."""
    raw = _git(Path(bare), "log", "-z", "--format=%B", ref, "--").decode()
    return [message.rstrip("\n") for message in raw.split("\0") if message]


def commit_count(bare: Path | str, ref: str) -> int:
    """Number of commits reachable from ``ref``."""
    return int(_git_text(Path(bare), "rev-list", "--count", ref, "--"))


def install_hook(bare: Path | str, name: str, script: str) -> Path:
    """Install an executable hook (``pre-receive``, ...) in a bare repo; ``script`` is its whole text."""
    hook = Path(bare) / "hooks" / name
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(script)
    hook.chmod(0o755)
    return hook
