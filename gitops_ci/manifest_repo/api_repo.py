"""The ManifestRepo port through GitLab's API: no clone and no git on the runner.

A deploy reads the repo's gitops-ci.yaml and the overlay's kustomization.yaml (Files; the overlay is listed
with Tree only when that name is absent), then commits every file in one POST (Commits) with each file's
`last_commit_id`: 3 requests, whatever the repo's size. The overlays where the change expects them are read
together with gitops-ci.yaml, on connections of their own, so the wait is one answer's. GitLab
refuses a POST whose file changed since it was read ("The file has changed since you started editing it")
and one whose branch moved between its read and its update (Gitaly's compare-and-swap). After a branch race
the cached reads stay valid and the runner's retry is one more POST; after a file change that file is read
again. A POST whose answer was lost is looked up in the branch's history (api_history.py).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from gitops_ci.errors import (
    ConfigurationError,
    KustomizationError,
    OperationalError,
    PushRejectedError,
    UnsafePathError,
)
from gitops_ci.images.text_io import MAX_FILE_BYTES
from gitops_ci.manifest_repo.api_history import find_landed
from gitops_ci.manifest_repo.gitlab_answers import Answer, NotGitLabError, message_of, not_found
from gitops_ci.manifest_repo.gitlab_rest import Get, GitLabRest
from gitops_ci.manifest_repo.paths import checked_repo_path
from gitops_ci.manifest_repo.port import Identity, Listing, kustomization_by_listing

MAX_READ_AHEAD = 3  # overlays read with the first file: a connection each
MAX_TREE_PAGES = 100  # 10,000 entries in one directory: the apps directory of a very large repo
_FILE_CHANGED = (  # since it was read: another job changed, created or deleted it
    "The file has changed since you started editing it",
    "A file with this name already exists",
    "A file with this name doesn't exist",
)
_BRANCH_RACE = ("reference does not point to expected object", "Please refresh and try again")
_NO_BRANCH = "You can only create or edit files when you are on a branch"
Failure = Literal["none", "branch-race", "file-changed", "unknown"]


@dataclass(frozen=True)
class _Read:
    """A file as read from the branch: the commit it was read at, and the last commit that changed it."""

    text: str
    commit_id: str
    last_commit_id: str


@dataclass(frozen=True)
class _Pending:
    """A commit to make when published: GitLab makes it."""

    files: Mapping[str, str]
    message: str
    author: Identity


class GitLabApiRepo:
    """`overlays`: those the change edits; their kustomization.yaml goes out with the first read."""

    def __init__(self, rest: GitLabRest, url: str, branch: str, overlays: Sequence[str] = ()) -> None:
        self.rest, self.url, self.branch = rest, url, branch
        self._ahead = [f"{o}/kustomization.yaml" for o in overlays[:MAX_READ_AHEAD]]
        self._base: str | None = None
        self._reads: dict[str, _Read | None] = {}
        self._listings: dict[str, Listing | None] = {}
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._failure: Failure = "none"
        self._sent: dict[str, _Read | None] = {}
        self._symlinks: set[str] = set()

    def base(self) -> str:
        if self._base is None:
            self._base = self.branch_tip(self.branch) or ""
        return self._base

    def include(self, paths: Sequence[str]) -> None:
        """Every path is readable already."""

    def read(self, path: str) -> str | None:
        checked_repo_path(path)
        if path in self._symlinks:
            raise UnsafePathError(
                f"{path} is a symbolic link in the manifest repo; gitops-ci never follows one"
            )
        if path not in self._reads:
            self._read_with_ahead(path)
        found = self._reads[path]
        return found.text if found else None

    def listing(self, path: str) -> Listing | None:
        checked_repo_path(path)
        if path not in self._listings:
            self._listings[path] = self._tree(path.strip("/").removeprefix("."), self._base or self.branch)
        return self._listings[path]

    def kustomization(self, overlay: str) -> tuple[str, str] | None:
        """The usual name read at once (one request); a listing only when it is absent. Unlike the git
        adapter this does not see a second kustomization file beside it: kustomize refuses that overlay at
        build time, and validate and review report it."""
        usual = f"{overlay}/kustomization.yaml"
        text = self.read(usual)
        if text is not None and "\n" not in text and ":" not in text:  # what a symlink's blob holds
            self.listing(overlay)  # marks the symlinks in it: read refuses one
            self.read(usual)
        return (usual, text) if text is not None else kustomization_by_listing(self, overlay)

    def commit(self, files: Mapping[str, str], message: str, author: Identity, committer: Identity) -> str:
        """GitLab makes the commit when it is published (as the token's user, who is the committer)."""
        placeholder = f"pending-{next(self._ids)}"
        self._pending[placeholder] = _Pending(dict(files), message, author)
        return placeholder

    def publish(self, commit: str, branch: str, *, lease: str | None = None) -> str:
        pending = self._pending[commit]
        body: dict[str, object] = {
            "branch": branch,
            "commit_message": pending.message,
            "actions": [self._action(path, text) for path, text in pending.files.items()],
            "author_name": pending.author.name,
            "author_email": pending.author.email,
        }
        if branch != self.branch:  # a merge request's branch: one commit on the target's tip, replacing it
            body |= {"start_branch": self.branch, "force": True}
        if lease is not None and (self.branch_tip(branch) or "") != lease:
            # GitLab's force has no compare-and-swap: the lease is checked just before (one GET), so only a
            # push in the moment between the two is replaced
            raise PushRejectedError(f"{branch} moved since it was read: another push is on it")
        self._failure = "unknown"
        self._sent = {path: self._reads.get(path) for path in pending.files}
        answer = self.rest.post("/repository/commits", body, what=f"committing to {branch}")
        if answer.status == 400:
            raise self._refused(message_of(answer.body), branch)
        # read before the outcome is settled: an answer without them leaves it for the branch to tell
        sha, parents = answer.value("id", kind=str), answer.value("parent_ids", kind=list)
        self._failure = "none"
        if branch == self.branch and parents:
            self._base = str(parents[0])  # what GitLab built on: the tip it committed onto
        self._pending[sha] = pending
        return sha

    def refresh(self) -> str:
        """After a branch race the reads stay valid (GitLab checks each file again); after a lost answer the
        branch is read to see what landed."""
        if self._failure == "branch-race":
            return ""
        self._base = None
        if self._failure == "unknown":
            self._reads.clear()
            return self.base()
        return ""

    def landed(self, commit: str, tip: str) -> str | None:
        if self._failure != "unknown" or commit not in self._pending:
            return None
        ours = self._pending[commit]
        since = {path: read.last_commit_id if read else None for path, read in self._sent.items()}
        found = find_landed(self.rest, self.branch, ours.files, ours.message, since, self._text_at)
        if found:
            self._failure = "none"
        return found

    def contains(self, ancestor: str, descendant: str) -> bool:
        if ancestor == descendant:
            return True
        answer = self.rest.get(
            "/repository/merge_base", {"refs[]": [ancestor, descendant]}, what="merge base"
        )
        return answer.status == 200 and answer.value("id", kind=str) == ancestor

    def branch_tip(self, branch: str) -> str | None:
        answer = self.rest.get(
            f"/repository/branches/{self.rest.quote(branch)}", what=f"reading branch {branch}"
        )
        found = not not_found(answer, self.rest.connection, f"reading branch {branch}")
        return answer.value("commit", "id", kind=str) if found else None

    def read_branch(self, branch: str, path: str, back: int = 0) -> str | None:
        ref: str | None = branch
        if back:
            answer = self.rest.get(
                f"/repository/branches/{self.rest.quote(branch)}", what=f"reading {branch}"
            )
            there = not not_found(answer, self.rest.connection, f"reading {branch}")
            parents = answer.value("commit", "parent_ids", kind=list) if there else []
            ref = parents[0] if len(parents) >= back else None
        found = self._get_file(path, ref) if ref else None
        return found.text if found else None

    def _action(self, path: str, text: str) -> dict[str, str]:
        read = self._reads.get(path)
        if read is None:
            return {"action": "create", "file_path": path, "content": text}
        return {"action": "update", "file_path": path, "content": text, "last_commit_id": read.last_commit_id}

    def _refused(self, message: str, branch: str) -> Exception:
        if message.startswith(_FILE_CHANGED):
            self._failure = "file-changed"
            for path in self._sent:  # the message names one; read every file of the commit again
                self._reads.pop(path, None)
            return PushRejectedError(f"{branch}: {message}")
        if any(text in message for text in _BRANCH_RACE):
            self._failure = "branch-race"
            return PushRejectedError(f"{branch} moved while GitLab committed ({message})")
        self._failure = "none"
        if message == _NO_BRANCH:
            return ConfigurationError(f"branch {self.branch} does not exist in {self.url}; check --branch")
        return OperationalError(f"GitLab refused the commit to {branch}: {message}")

    def _read_with_ahead(self, path: str) -> None:
        """`path`, with (on the first read) the files read ahead: at once, at the commit the first of them
        was read at. What a read ahead cannot show to be of that commit (an answer at a later one: the branch
        moved between them; a 404, which names none), or would be an error, or was not answered, is read
        again, at that commit, if it is asked for."""
        ahead = [p for p in self._ahead if p != path and p not in self._reads]
        self._ahead = []
        ref = self._base or self.branch
        first, answers = self.rest.get_together(
            self._file_get(path, ref), [self._file_get(p, ref) for p in ahead]
        )
        self._reads[path] = self._file_of(path, ref, first)
        for other, answer in zip(ahead, answers, strict=True):
            if answer is None or answer.status == 404:
                continue
            with contextlib.suppress(KustomizationError, NotGitLabError):
                read = self._file_of(other, ref, answer)
                if read is not None and read.commit_id == self._base:
                    self._reads[other] = read

    def _text_at(self, path: str, ref: str) -> str | None:
        found = self._get_file(path, ref)
        return found.text if found else None

    def _file_get(self, path: str, ref: str) -> Get:
        return f"/repository/files/{self.rest.quote(path)}", {"ref": ref}, f"reading {path}"

    def _get_file(self, path: str, ref: str) -> _Read | None:
        where, params, what = self._file_get(path, ref)
        return self._file_of(path, ref, self.rest.get(where, params, what=what))

    def _file_of(self, path: str, ref: str, answer: Answer) -> _Read | None:
        if not_found(answer, self.rest.connection, f"reading {path}"):
            if ref == self.branch and message_of(answer.body) == "404 Commit Not Found":
                raise ConfigurationError(f"branch {ref} does not exist in {self.url}; check --branch")
            return None
        commit, last = answer.value("commit_id", kind=str), answer.value("last_commit_id", kind=str)
        if self._base is None and ref == self.branch:
            self._base = commit  # the first read pins the base the others read at
        if answer.value("size", kind=int) > MAX_FILE_BYTES:
            raise KustomizationError(
                f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB; gitops-ci edits up to that"
            )
        try:
            text = base64.b64decode(answer.value("content", kind=str), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise KustomizationError(f"{path}: not UTF-8; kustomize needs UTF-8") from None
        return _Read(text, commit, last)

    def _tree(self, path: str, ref: str) -> Listing | None:
        files: list[str] = []
        dirs: list[str] = []
        for page in range(1, MAX_TREE_PAGES + 1):
            params = {"path": path, "ref": ref, "per_page": 100, "page": page}
            answer = self.rest.get("/repository/tree", params, what=f"listing {path or '/'}")
            if not_found(answer, self.rest.connection, f"listing {path or '/'}"):
                return None
            for entry in answer.records("type", "name", "path"):
                (dirs if entry["type"] == "tree" else files).append(str(entry["name"]))
                if entry.get("mode") == "120000":
                    self._symlinks.add(str(entry["path"]))
            if not answer.headers.get("X-Next-Page"):
                return Listing(tuple(sorted(files)), tuple(sorted(dirs)))
        raise OperationalError(
            f"listing {path or '/'}: more than {MAX_TREE_PAGES * 100} entries; GitLab kept paging"
        )
