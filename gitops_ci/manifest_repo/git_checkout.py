"""The clone a review job runs in: what the MR changed, and the tree it started from.

Nothing here moves HEAD, touches the index or writes to the working tree: the base tree is written to a
temporary directory through a throwaway index (`GIT_INDEX_FILE`), with `read-tree` and `checkout-index`,
which is faster than `git archive | tar` and leaves no worktree metadata behind.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import git

from gitops_ci import logs
from gitops_ci.errors import ConfigurationError, GitError
from gitops_ci.manifest_repo.git_errors import local_failure

log = logs.get_logger(__name__)


class ReviewCheckout:
    """A local clone of the manifest repo, checked out at the MR's head, seen from `path`: the directory
    whose overlays are reviewed (the whole clone by default). Paths in and out are relative to it."""

    def __init__(self, path: Path) -> None:
        try:
            self._repo = git.Repo(path, search_parent_directories=True)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise ConfigurationError(
                f"{path} is not inside a git clone; run review in the manifest repo's checkout"
            ) from None
        if self._repo.working_tree_dir is None:
            raise ConfigurationError(f"{path} is a bare repository; review needs a checkout")
        top = Path(str(self._repo.working_tree_dir)).resolve()
        self.root = path.resolve()
        scope = self.root.relative_to(top).as_posix()
        self._scope = "" if scope == "." else scope

    def commit(self, rev: str) -> str:
        """The commit `rev` names, fetched from origin first when a shallow CI clone lacks it."""
        sha = self._try("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
        if sha is None and self._repo.remotes:
            log.info("%s is not in the clone; fetching it from origin", rev)
            self._try("fetch", "--quiet", "--no-tags", "--depth=1", "--end-of-options", "origin", rev)
            sha = self._try("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
        if sha is None:
            raise ConfigurationError(
                f"{rev!r} is not a commit in this clone; fetch it (GIT_DEPTH: 0, or git fetch origin {rev}) "
                "or check --base"
            )
        return sha

    def merge_base(self, base: str, head: str) -> str:
        """Where the MR branched off; `base` itself when a shallow clone cannot tell (GitLab's
        CI_MERGE_REQUEST_DIFF_BASE_SHA already is the merge base)."""
        found = self._try("merge-base", base, head)
        if found is None:
            log.info(
                "no merge base of %s and %s in this clone; comparing with %s", base[:12], head[:12], base[:12]
            )
        return found or base

    def changed_paths(self, base: str) -> list[str]:
        """Tracked paths that differ between `base` and the working tree (a rename is a delete and an add)."""
        relative = [f"--relative={self._scope}"] if self._scope else []
        out = self._git("diff", "--name-only", "--no-renames", "-z", *relative, base, "--")
        return [p for p in out.split("\0") if p]

    def list_files(self, rev: str) -> tuple[set[str], dict[str, str]]:
        """Every file path in the tree of `rev`, and its symbolic links (path -> target as stored: only those
        blobs are read); none when the directory is absent there."""
        if self._try("rev-parse", "--verify", "--quiet", self._tree(rev)) is None:
            return set(), {}
        files, links = set(), {}
        for record in filter(None, self._git("ls-tree", "-r", "-z", self._tree(rev)).split("\0")):
            meta, path = record.split("\t", 1)
            files.add(path)
            mode, _, sha = meta.split()
            if mode == "120000":
                links[path] = self._blob(sha)
        return files, links

    def holds(self, rev: str, path: str) -> bool:
        """Whether `rev` has a file (or link) at `path`, as committed: not what the working tree holds."""
        name = f"{self._tree(rev)}/{path}" if self._scope else f"{rev}:{path}"
        return self._try("rev-parse", "--verify", "--quiet", "--end-of-options", name) is not None

    def read_file(self, rev: str, path: str) -> str:
        return self._blob(f"{self._tree(rev)}/{path}" if self._scope else f"{rev}:{path}")

    def _blob(self, name: str) -> str:
        """A blob through GitPython's one long-lived `git cat-file --batch` (a review may read thousands of
        changed files and links: no process each). Its protocol is a UTF-8 name per line, and git strips a
        carriage return before the line's end, so a name that is not plain printable text (a hostile file
        name) gets a process of its own."""
        if not (name.isprintable() and _encodable(name)):
            return self._git("cat-file", "blob", "--end-of-options", name)
        try:
            _, kind, _, data = self._repo.git.get_object_data(name)
        except (ValueError, OSError) as err:  # no such object, or the batch process is gone
            shown = logs.mask(name)[:300]
            raise GitError(
                f"git cat-file --batch could not read {shown}: {logs.mask(str(err))[:200]}"
            ) from None
        kind_name = kind.decode() if isinstance(kind, bytes) else kind  # GitPython 3.1 says str, gives bytes
        if kind_name != "blob":
            raise GitError(f"git cat-file failed: {logs.mask(name)[:300]} is a {kind_name[:20]}, not a file")
        return data.decode("utf-8", "surrogateescape")

    def _tree(self, rev: str) -> str:
        return f"{rev}:{self._scope}"

    def export(self, rev: str, destination: Path, paths: Iterable[str] | None = None) -> None:
        """Write the files of `rev` (all, or those in `paths`) under `destination`, like a checkout."""
        destination.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="gitops-ci-index-") as scratch:
            env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            self._git("read-tree", self._tree(rev), env=env)
            if paths is None:
                self._git("checkout-index", "--all", "--force", f"--prefix={destination}/", env=env)
                return
            listing = Path(scratch) / "paths"
            # a path git gave as undecodable bytes goes back as those bytes
            listing.write_text("".join(f"{p}\0" for p in paths), encoding="utf-8", errors="surrogateescape")
            with listing.open("rb") as stdin:
                self._git(
                    "checkout-index",
                    "--force",
                    "--stdin",
                    "-z",
                    f"--prefix={destination}/",
                    env=env,
                    stdin=stdin,
                )

    def _try(self, *args: str) -> str | None:
        try:
            return self._git(*args).strip() or None
        except GitError:
            return None

    def _git(self, *args: str, env: dict[str, str] | None = None, stdin: BinaryIO | None = None) -> str:
        log.debug("git %s", " ".join(args))
        try:
            return str(
                self._repo.git.execute(["git", *args], env=env, istream=stdin, strip_newline_in_stdout=False)
            )
        except git.GitCommandError as err:
            raise local_failure(err, args[0]) from None


def _encodable(name: str) -> bool:
    """A name as the batch protocol sends it (UTF-8): not one git gave us as undecodable bytes."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
