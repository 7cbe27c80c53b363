"""Git plumbing on a bare repository, shared by the GitLab contract server and its fixtures.

Only argument lists are passed to ``git`` (never a shell), and nothing needs a worktree:
commits are built in a throwaway index with ``update-index``/``write-tree``/``commit-tree``
and branches move with ``update-ref <ref> <new> <old>`` so a concurrent push is never lost.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SEP, _REC = "\x1f", "\x1e"
_FIELDS = {
    "ref": "%(refname)",
    "id": "%(objectname)",
    "parents": "%(parent)",
    "title": "%(subject)",
    "author_name": "%(authorname)",
    "author_email": "%(authoremail)",
    "authored_date": "%(authordate:iso-strict)",
    "committer_name": "%(committername)",
    "committer_email": "%(committeremail)",
    "committed_date": "%(committerdate:iso-strict)",
    "message": "%(contents)",
}
_BRANCH_FMT = "%1f".join(_FIELDS.values()) + "%1e"  # for-each-ref turns %xx into that byte
Completed = subprocess.CompletedProcess[str]


class GitError(RuntimeError):
    pass


@dataclass(frozen=True)
class Ident:
    name: str
    email: str
    date: str | None = None  # pinned author/committer date, e.g. "2024-01-01T00:00:00Z"

    def env(self) -> dict[str, str]:
        env = {
            "GIT_AUTHOR_NAME": self.name,
            "GIT_AUTHOR_EMAIL": self.email,
            "GIT_COMMITTER_NAME": self.name,
            "GIT_COMMITTER_EMAIL": self.email,
        }
        if self.date is not None:
            env.update(GIT_AUTHOR_DATE=self.date, GIT_COMMITTER_DATE=self.date)
        return env


@functools.cache
def git_has_merge_tree_write() -> bool:
    """``git merge-tree --write-tree`` exists since git 2.38."""
    out = subprocess.run(["git", "version"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"(\d+)\.(\d+)", out)
    return found is not None and (int(found[1]), int(found[2])) >= (2, 38)


class GitRepo:
    """A bare repository, read and written with plumbing only."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)

    @classmethod
    def init_bare(cls, path: str | Path, branch: str = "main") -> GitRepo:
        Path(path).mkdir(parents=True, exist_ok=True)
        repo = cls(path)
        repo.run("init", "--quiet", "--bare")
        repo.run("symbolic-ref", "HEAD", f"refs/heads/{branch}")
        return repo

    def run(
        self,
        *args: str,
        stdin: str | None = None,
        ident: Ident | None = None,
        env: Mapping[str, str] | None = None,
        ok: tuple[int, ...] = (0,),
    ) -> Completed:
        """Run git on this repository with no inherited ``GIT_*`` variables and no user config."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        full_env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull, LC_ALL="C", **(env or {}))
        if ident is not None:
            full_env.update(ident.env())
        proc = subprocess.run(
            ["git", f"--git-dir={self.path}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=full_env,
            check=False,
        )
        if proc.returncode not in ok:
            raise GitError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def branch_sha(self, branch: str) -> str | None:
        out = self.run("rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", ok=(0, 1))
        return out.stdout.strip() or None

    def branch_info(self, branch: str) -> dict[str, Any] | None:
        """The branch head commit from ``git for-each-ref`` (exact ref name, not a prefix match)."""
        out = self.run("for-each-ref", f"--format={_BRANCH_FMT}", f"refs/heads/{branch}").stdout
        for record in out.split(_REC):
            values = record.lstrip("\n").split(_SEP)
            if len(values) == len(_FIELDS) and values[0] == f"refs/heads/{branch}":
                info: dict[str, Any] = dict(zip(_FIELDS, values, strict=True))
                info["parents"] = info["parents"].split()
                info["author_email"] = info["author_email"].strip("<>")
                info["committer_email"] = info["committer_email"].strip("<>")
                return info
        return None

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        return self.run("merge-base", "--is-ancestor", ancestor, descendant, ok=(0, 1)).returncode == 0

    def merge_base(self, a: str, b: str) -> str | None:
        return self.run("merge-base", a, b, ok=(0, 1)).stdout.strip() or None

    def tree(self, rev: str) -> str:
        return self.run("rev-parse", f"{rev}^{{tree}}").stdout.strip()

    def merge_trees(self, ours: str, theirs: str) -> str | None:
        """The tree a merge of two commits would have, or None when they conflict."""
        if git_has_merge_tree_write():
            proc = self.run("merge-tree", "--write-tree", "--no-messages", ours, theirs, ok=(0, 1))
            return proc.stdout.splitlines()[0] if proc.returncode == 0 else None
        # git < 2.38: a trivial 3-way merge in a throwaway index; any content merge counts as a conflict.
        base = self.merge_base(ours, theirs)
        if base is None:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if self.run(
                "read-tree", "-i", "-m", "--aggressive", base, ours, theirs, env=index, ok=(0, 128)
            ).returncode:
                return None
            proc = self.run("write-tree", env=index, ok=(0, 128))
            return proc.stdout.strip() if proc.returncode == 0 else None

    def commit_tree(self, tree: str, parents: list[str], message: str, ident: Ident) -> str:
        args = ["commit-tree", tree]
        for parent in parents:
            args += ["-p", parent]
        return self.run(*args, "-F", "-", stdin=message, ident=ident).stdout.strip()

    def write_files(self, files: Mapping[str, str], base: str | None = None) -> str:
        """A tree: ``base``'s tree (if any) with ``files`` (path -> text) written over it."""
        with tempfile.TemporaryDirectory() as tmp:
            index = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
            if base is not None:
                self.run("read-tree", base, env=index)
            for path, text in files.items():
                blob = self.run("hash-object", "-w", "--stdin", stdin=text).stdout.strip()
                self.run("update-index", "--add", "--cacheinfo", f"100644,{blob},{path}", env=index)
            return self.run("write-tree", env=index).stdout.strip()

    def commit_files(
        self, branch: str, files: Mapping[str, str], message: str, ident: Ident, base: str | None = None
    ) -> str:
        """Commit ``files`` on top of ``base`` (default: the branch head) and move ``branch`` there."""
        old = self.branch_sha(branch)
        parent = base or old
        sha = self.commit_tree(self.write_files(files, parent), [parent] if parent else [], message, ident)
        if not self.update_ref(f"refs/heads/{branch}", sha, old or "0" * 40):
            raise GitError(f"branch {branch} moved while committing")
        return sha

    def show(self, rev: str, path: str) -> str | None:
        proc = self.run("cat-file", "blob", f"{rev}:{path}", ok=(0, 128))
        return proc.stdout if proc.returncode == 0 else None

    def update_ref(self, ref: str, new: str, old: str) -> bool:
        return self.run("update-ref", ref, new, old, ok=(0, 1, 128)).returncode == 0

    def delete_ref(self, ref: str, old: str) -> bool:
        return self.run("update-ref", "-d", ref, old, ok=(0, 1, 128)).returncode == 0
