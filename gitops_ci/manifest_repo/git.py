"""The git adapter of the ManifestRepo port (GitPython), and the clone-less history checks of follow-ups.

Clones are shallow, blob-filtered and sparse, so their cost follows the overlays we edit, not the history
or the size of the repo. Files are read and written through `paths.writable_file`: nothing outside the
clone, and no symlink on the way.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from gitops_ci import logs
from gitops_ci.errors import ConfigurationError, GitError, GitopsCiError
from gitops_ci.images.text_io import read_text, write_files
from gitops_ci.manifest_repo.git_process import GitFailure, run_git
from gitops_ci.manifest_repo.paths import writable_file
from gitops_ci.manifest_repo.port import Identity, Listing, kustomization_by_listing

if TYPE_CHECKING:
    from gitops_ci.manifest_repo.signing import Signer

log = logs.get_logger(__name__)


@dataclass(frozen=True)
class Remote:
    """Where the manifest repo lives and how to reach it (`env` carries credentials; never log it)."""

    url: str
    env: Mapping[str, str]
    token_variable: str | None = None
    timeout: float = 600.0  # wall-clock bound of one git call; a call killed at it is a retryable failure


class GitManifestRepo:
    """The ManifestRepo port over a sparse, shallow, blob-less clone of one branch."""

    def __init__(self, root: Path, remote: Remote, branch: str, signer: Signer | None = None) -> None:
        self._root = root
        self.remote = remote
        self.url = remote.url
        self.branch = branch
        self._signer = signer
        self._base = ""
        self._checked_out = ""  # the commit HEAD is at, as this object moved it (saves a rev-parse per step)
        self._cone: tuple[str, ...] = ()  # the directories checked out

    @property
    def root(self) -> Path:
        return self._root

    @classmethod
    def clone(
        cls,
        remote: Remote,
        directory: Path,
        branch: str | None,
        sparse_paths: Sequence[str],
        *,
        signer: Signer | None = None,
    ) -> GitManifestRepo:
        # --no-checkout: the sparse patterns are set before anything is checked out, so git never writes
        # (and then rewrites) a full index of every file in the repo: ~250 ms less on 3,000 apps.
        options = [
            "--depth=1",
            "--filter=blob:none",
            "--sparse",
            "--no-checkout",
            "--no-tags",
            "--single-branch",
            "--template=",  # no hooks or other files from a template directory: less to write and remove
            *([f"--branch={branch}"] if branch else []),
        ]
        _empty(directory)  # a failed attempt may have left a partial clone behind
        try:
            run_git(["clone", "-q", *options, "--", remote.url, str(directory)], env=remote.env,
                    timeout=remote.timeout)  # fmt: skip
        except GitFailure as err:
            raise classify(err, "clone", remote) from None
        clone = cls(directory, remote, branch or _checked_out_branch(directory), signer)
        try:
            clone._base = clone._checked_out = clone._head()
        except GitError:
            raise ConfigurationError(
                f"{remote.url} has no commits yet; push the manifests (kustomize/<app>/overlays/<env>) first"
            ) from None
        # A sparse index keeps only the checked-out directories in .git/index: add, commit and reset stay
        # cheap on a repo of thousands of apps (git >= 2.32).
        clone._git("sparse-checkout", "set", "--cone", "--sparse-index", "--", *sparse_paths)
        clone._git("reset", "--hard", "-q", action="checkout")  # fetches the blobs under sparse_paths
        clone._cone = tuple(sparse_paths)
        return clone

    def base(self) -> str:
        return self._base

    def include(self, paths: Sequence[str]) -> None:
        missing = [p for p in paths if not any(_under(p, c) for c in self._cone)]
        if missing:  # the planner found the repo's layout elsewhere than the clone guessed (gitops-ci.yaml)
            self._git("sparse-checkout", "add", "--", *missing, action="checkout")
            self._cone += tuple(missing)

    def read(self, path: str) -> str | None:
        file = writable_file(self.root, path)
        return read_text(file) if file.is_file() else None

    def listing(self, path: str) -> Listing | None:
        directory = writable_file(self.root, path)
        if not directory.is_dir():
            return None
        children = sorted(directory.iterdir())
        files = tuple(p.name for p in children if p.is_file() or p.is_symlink())
        return Listing(files, tuple(p.name for p in children if p.is_dir() and not p.is_symlink()))

    def kustomization(self, overlay: str) -> tuple[str, str] | None:
        return kustomization_by_listing(self, overlay)

    def commit(self, files: Mapping[str, str], message: str, author: Identity, committer: Identity) -> str:
        if self._checked_out != self._base:
            self._git("checkout", "-q", "-f", "--detach", self._base)
            self._checked_out = self._base
        targets = {path: writable_file(self.root, path) for path in files}
        new = [path for path, target in targets.items() if not target.exists()]
        write_files({targets[path]: text for path, text in files.items()})
        if new:  # onboarding creates files; --include below stages only files git already tracks
            self._git("add", "--sparse", "--", *new)
        env = {
            "GIT_AUTHOR_NAME": author.name,
            "GIT_AUTHOR_EMAIL": author.email,
            "GIT_COMMITTER_NAME": committer.name,
            "GIT_COMMITTER_EMAIL": committer.email,
            **(self._signer.commit_env(self.remote.env) if self._signer else {}),
        }
        # --include stages the paths into the sparse index and commits it; the default (--only) would build
        # a temporary full index of every path in the repo instead: 5x slower with thousands of apps.
        sign = "--gpg-sign" if self._signer else "--no-gpg-sign"
        self._git(
            "commit", "-q", "--include", "--no-verify", sign, "-m", message, "--", *files, extra_env=env
        )
        self._checked_out = self._head()
        return self._checked_out

    def publish(self, commit: str, branch: str, *, lease: str | None = None) -> str:
        args = ["push", "--porcelain", "--no-verify", "origin", f"{commit}:refs/heads/{branch}"]
        if lease is not None:
            args.insert(1, f"--force-with-lease=refs/heads/{branch}:{lease}")
        # When the branch moved, git would lazily fetch the remote tip's every tree to see whether the push
        # fast-forwards; without lazy fetches it answers "fetch first" at once, and we re-apply anyway.
        self._git(*args, action="push", extra_env={"GIT_NO_LAZY_FETCH": "1"})
        return commit

    def landed(self, commit: str, tip: str) -> str | None:
        return commit if self.contains(commit, tip) else None

    def refresh(self) -> str:
        # No --depth: the clone is shallow already, and deepening from it makes the server send the new tip's
        # whole tree set again instead of the few trees that changed.
        ref = f"refs/remotes/origin/{self.branch}"
        self._git("fetch", "--filter=blob:none", "--no-tags", "origin", f"+refs/heads/{self.branch}:{ref}",
                  action="fetch")  # fmt: skip
        self._git("reset", "--hard", "-q", ref)
        self._base = self._checked_out = self._head()
        return self._base

    def contains(self, ancestor: str, descendant: str) -> bool:
        """The clone's history answers when it holds `descendant` (after a refresh it holds the tip down to
        our base); a commit it never fetched, such as what a cluster runs, is looked up on the server."""
        try:
            self._git("merge-base", "--is-ancestor", "--end-of-options", ancestor, descendant)
            return True
        except GitError:
            pass
        try:
            self._git("cat-file", "-e", "--end-of-options", f"{descendant}^{{commit}}")
            return False
        except GitError:
            with tempfile.TemporaryDirectory(prefix="gitops-ci-history-") as history:
                return contains_commit(self.remote, self.branch, ancestor, descendant, Path(history))

    def branch_tip(self, branch: str) -> str | None:
        out = self._git("ls-remote", "--heads", "origin", f"refs/heads/{branch}", action="ls-remote")
        return out.split()[0] if out.strip() else None

    def read_branch(self, branch: str, path: str, back: int = 0) -> str | None:
        ref = f"refs/remotes/origin/{branch}"
        self._git("fetch", f"--depth={back + 1}", "--filter=blob:none", "--no-tags", "origin",
                  f"+refs/heads/{branch}:{ref}", action="fetch")  # fmt: skip
        try:
            return run_git(["show", f"{ref}~{back}:{path}"], env=self.remote.env, cwd=self._root,
                           timeout=self.remote.timeout, strip=False)  # fmt: skip
        except GitFailure:
            return None

    def _head(self) -> str:
        """HEAD's commit as git wrote it (a detached HEAD, or the loose ref of the branch it is on): a git
        process less per clone and per commit. `rev-parse` for anything else (packed refs, reftable)."""
        git_dir = self._root / ".git"
        try:
            head = (git_dir / "HEAD").read_text(encoding="ascii").strip()
            if head.startswith("ref: refs/heads/") and ".." not in head:
                head = (git_dir / head.removeprefix("ref: ")).read_text(encoding="ascii").strip()
        except (OSError, UnicodeDecodeError):
            head = ""
        if len(head) in (40, 64) and all(c in "0123456789abcdef" for c in head):
            return head
        return str(self._git("rev-parse", "--verify", "HEAD^{commit}"))

    def _git(self, *args: str, action: str | None = None, extra_env: Mapping[str, str] | None = None) -> str:
        env = {**self.remote.env, **(extra_env or {})}
        log.debug("git %s", " ".join(args))
        try:
            return run_git(args, env=env, cwd=self._root, timeout=self.remote.timeout)
        except GitFailure as err:
            raise classify(err, action or args[0], self.remote) from None


def _under(path: str, directory: str) -> bool:
    return directory == "." or path == directory or path.startswith(f"{directory}/")


def _checked_out_branch(directory: Path) -> str:
    """The branch a fresh clone checked out (its HEAD file names it), without starting git."""
    head = (directory / ".git" / "HEAD").read_text(encoding="utf-8").strip()
    return head.removeprefix("ref: refs/heads/")


def _empty(directory: Path) -> None:
    if directory.is_symlink() or directory.is_file():
        raise ConfigurationError(f"{directory} is not a directory; give --workdir a new or empty directory")
    if directory.is_dir():
        for child in directory.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


def contains_commit(remote: Remote, branch: str, ancestor: str, descendant: str, directory: Path) -> bool:
    """Whether `descendant` contains `ancestor`; fetches only the commits of `branch` (no trees, no blobs)."""
    env, git_dir = dict(remote.env), f"--git-dir={directory}"
    try:
        run_git(["init", "-q", "--bare", "--template=", str(directory)], env=env, timeout=remote.timeout)
        refspec = f"+refs/heads/{branch}:refs/remotes/origin/{branch}"
        fetch = [git_dir, "fetch", "--filter=tree:0", "--no-tags", "--", remote.url, refspec]
        run_git(fetch, env=env, timeout=remote.timeout)
    except GitFailure as err:
        raise classify(err, "fetch", remote) from None
    try:
        run_git([git_dir, "merge-base", "--is-ancestor", "--end-of-options", ancestor, descendant], env=env,
                timeout=remote.timeout)  # fmt: skip
    except GitFailure as err:
        if err.status in (1, 128):  # 1: not an ancestor; 128: not a commit of that branch
            return False
        raise classify(err, "merge-base", remote) from None
    return True


def classify(err: GitFailure, action: str, remote: Remote) -> GitopsCiError:
    """git's failure as our error; its patterns are compiled only when a command fails."""
    from gitops_ci.manifest_repo.git_errors import classify as to_error

    return to_error(err, action, remote)
