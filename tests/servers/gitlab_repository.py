"""GitLab's Repository Files, Commits, Tree and merge-base endpoints for the contract server, backed by the
project's real bare repository.

Sources: docs.gitlab.com api/repository_files.md, api/commits.md ("Create a commit with multiple files and
actions"), api/repositories.md (tree, merge_base), api/rest/_index.md (URL-encoded paths), and the code paths
they document: lib/api/files.rb, lib/api/commits.rb, app/services/files/multi_service.rb,
app/services/commits/create_service.rb and Gitaly's UserCommitFiles (internal/gitaly/service/operations/
commit_files.go). Where the docs are silent the comment says which source the behaviour comes from.

The commit endpoint runs without the server's state lock, as GitLab runs concurrent requests: it reads the
branch head first (Rails' `target_sha`), checks `last_commit_id` per file, reads the whole tree and writes the
trees on the changed paths and the commit (as Gitaly does), and moves the branch with a compare-and-swap
(`git update-ref NEW OLD`), so two POSTs that read the same head really race and one loses with Gitaly's
message.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from collections.abc import Callable
from typing import Any

from servers import housekeeping
from servers.gitlab_git import GitRepo
from servers.gitlab_model import Project
from servers.gitlab_state import ApiError, as_bool

# Gitaly >= 16.2 (updateref.Error "reference update: " + MismatchingStateError); older Gitaly said
# "Could not update refs/heads/<branch>. Please refresh and try again." The "9:" is gRPC's FailedPrecondition
# code that Rails' CommandError keeps (lib/gitlab/git/base_error.rb).
BRANCH_RACE = "9:reference update: reference does not point to expected object."
LEGACY_BRANCH_RACE = "9:Could not update refs/heads/{branch}. Please refresh and try again.."
ZERO = "0" * 40
# what _commit_entity reads, unit-separated: SHA, parents, author, its date, committer, its date, message
_COMMIT_FIELDS = "%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%cn%x1f%ce%x1f%cI%x1f%B"


class DropAnswer(Exception):
    """Close the connection without an answer (the request was applied): a lost answer."""


class RepositoryFaults:
    """Knobs for tests: the next N commit POSTs fail with a status before doing anything, or succeed and
    lose their answer; `before_ref_update` runs between the checks and the compare-and-swap, and
    `before_file_read` / `after_file_read` around a Files API read, given its path (another job landing
    between two reads, or between a read and a commit)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fail_statuses: list[int] = []
        self.lose_answers = 0
        self.legacy_race_message = False
        self.before_ref_update: Callable[[], None] | None = None
        self.before_file_read: Callable[[str], None] | None = None
        self.after_file_read: Callable[[str], None] | None = None
        self.commit_posts = 0

    def take_failure(self) -> int | None:
        with self.lock:
            self.commit_posts += 1
            return self.fail_statuses.pop(0) if self.fail_statuses else None

    def take_lost_answer(self) -> bool:
        with self.lock:
            if self.lose_answers:
                self.lose_answers -= 1
                return True
            return False


def get_file(project: Project, file_path: str, params: dict[str, Any]) -> dict[str, Any]:
    """GET /projects/:id/repository/files/:file_path?ref= (files.rb `blob_data` + base64 `content`)."""
    ref = str(params.get("ref") or "")
    if not ref:
        raise ApiError(400, {"error": "ref is missing"})  # Grape's validation message (docs: ref required)
    repo = project.repo
    commit = _resolve(repo, ref)
    if commit is None:
        raise ApiError(404, {"message": "404 Commit Not Found"})
    blob = repo.run(
        "rev-parse", "--verify", "--quiet", f"{commit}:{file_path}", ok=(0, 1, 128)
    ).stdout.strip()
    kind = repo.run("cat-file", "-t", blob, ok=(0, 128)).stdout.strip() if blob else ""
    if kind != "blob":
        raise ApiError(404, {"message": "404 File Not Found"})
    data = repo.run("cat-file", "blob", blob).stdout.encode()
    return {
        "file_name": file_path.rsplit("/", 1)[-1],
        "file_path": file_path,
        "size": len(data),
        "encoding": "base64",
        "content": base64.b64encode(data).decode(),
        "content_sha256": hashlib.sha256(data).hexdigest(),
        "ref": ref,
        "blob_id": blob,
        "commit_id": commit,
        "last_commit_id": _last_commit(repo, commit, file_path),
        "execute_filemode": False,
    }


def get_tree(project: Project, params: dict[str, Any]) -> list[dict[str, Any]]:
    """GET /projects/:id/repository/tree?path=&ref= (repositories.md); the caller paginates."""
    repo = project.repo
    commit = _resolve(repo, str(params.get("ref") or project.default_branch))
    if commit is None:
        raise ApiError(404, {"message": "404 Tree Not Found"})
    path = str(params.get("path") or "").strip("/")
    spec = f"{commit}:{path}" if path else f"{commit}^{{tree}}"
    listing = repo.run("ls-tree", "-z", spec, ok=(0, 128))
    if listing.returncode != 0:
        raise ApiError(404, {"message": "404 Tree Not Found"})
    entries = []
    for record in filter(None, listing.stdout.split("\0")):
        meta, name = record.split("\t", 1)
        mode, kind, sha = meta.split()
        full = f"{path}/{name}" if path else name
        entries.append({"id": sha, "name": name, "type": kind, "path": full, "mode": mode})
    return entries


def list_commits(project: Project, params: dict[str, Any]) -> list[dict[str, Any]]:
    """GET /projects/:id/repository/commits?ref_name=&path= (commits.md "List repository commits"): newest
    first (git log's order: Gitaly's FindCommits), Entities::Commit; the caller paginates. The docs are silent
    on an unknown ref_name: Gitaly's FindCommits finds no commits, so the list is empty."""
    repo = project.repo
    commit = _resolve(repo, str(params.get("ref_name") or project.default_branch))
    if commit is None:
        return []
    path = str(params.get("path") or "")
    out = repo.run(
        "log", "-z", f"--format={_COMMIT_FIELDS}", commit, *(["--", f":(literal){path}"] if path else [])
    )
    return [_commit_entity(project, record.split("\x1f")) for record in filter(None, out.stdout.split("\0"))]


def _commit_entity(project: Project, fields: list[str]) -> dict[str, Any]:
    """Entities::Commit from git's `_COMMIT_FIELDS`."""
    full, parents, an, ae, ad, cn, ce, cd, body = fields[:9]
    return {
        "id": full,
        "short_id": full[:8],
        "created_at": cd,
        "parent_ids": parents.split(),
        "title": body.split("\n", 1)[0],
        "message": body,
        "author_name": an,
        "author_email": ae,
        "authored_date": ad,
        "committer_name": cn,
        "committer_email": ce,
        "committed_date": cd,
        "trailers": {},
        "extended_trailers": {},
        "web_url": f"{project.web_url}/-/commit/{full}",
    }


def merge_base(project: Project, refs: list[str]) -> dict[str, Any]:
    """GET /projects/:id/repository/merge_base?refs[]=A&refs[]=B (repositories.md): the common ancestor."""
    if len(refs) < 2:
        raise ApiError(400, {"message": "Provide at least 2 refs"})  # lib/api/repositories.rb
    repo = project.repo
    commits = [_resolve(repo, ref) for ref in refs]
    for ref, commit in zip(refs, commits, strict=True):
        if commit is None:
            raise ApiError(404, {"message": f"Could not find ref: {ref}"})  # lib/api/repositories.rb
    base = repo.merge_base(commits[0] or "", commits[1] or "")
    if base is None:
        raise ApiError(404, {"message": "404 Merge Base Not Found"})
    return {"id": base, "short_id": base[:8]}


def create_commit(
    project: Project, user: Any, params: dict[str, Any], faults: RepositoryFaults
) -> dict[str, Any]:
    """POST /projects/:id/repository/commits (commits.md; Commits::CreateService, Files::MultiService)."""
    branch, message, actions = params.get("branch"), params.get("commit_message"), params.get("actions")
    for name, value in (("branch", branch), ("commit_message", message), ("actions", actions)):
        if not value:
            raise ApiError(400, {"error": f"{name} is missing"})  # Grape: requires ... allow_blank: false
    if not isinstance(actions, list):
        raise ApiError(400, {"error": "actions is invalid"})
    status = faults.take_failure()
    if status is not None:
        raise ApiError(status, {"message": f"{status} Internal Server Error"})
    repo, branch = project.repo, str(branch)
    start = str(params.get("start_branch") or branch)
    force = as_bool(params.get("force"))
    checked_on = repo.branch_sha(start)  # Files::MultiService's checks run on the head Rails sees first
    if checked_on is None:
        raise ApiError(400, {"message": "You can only create or edit files when you are on a branch"})
    if start != branch and repo.branch_sha(branch) is not None and not force:
        switch = "Switch to that branch in order to make changes"
        raise ApiError(400, {"message": f"A branch called '{branch}' already exists. {switch}"})
    files = {str(a.get("file_path")): _checked_action(repo, checked_on, a) for a in actions}
    # Repository#commit_files reads the branch (target_sha, the compare-and-swap's old value) just before the
    # Gitaly call, which resolves the parent itself: a move in between makes the swap fail.
    target_sha = repo.branch_sha(branch)
    parent = repo.branch_sha(start) or checked_on
    tree = _rewritten_tree(repo, repo.tree(parent), files)
    sha = _commit(repo, tree, parent, str(message), user, params)
    if (hook := faults.before_ref_update) is not None:  # read once: the hook may clear it
        hook()
    if not repo.update_ref(f"refs/heads/{branch}", sha, target_sha or ZERO):
        text = LEGACY_BRANCH_RACE.format(branch=branch) if faults.legacy_race_message else BRANCH_RACE
        raise ApiError(400, {"message": text})
    housekeeping.pushed(repo.path)
    detail = _commit_detail(project, repo, sha)
    if faults.take_lost_answer():
        raise DropAnswer()
    return detail


def _checked_action(repo: GitRepo, parent: str, action: dict[str, Any]) -> str:
    kind, path = action.get("action"), str(action.get("file_path") or "")
    if kind not in ("create", "update"):
        # The contract server implements the two actions gitops-ci sends; GitLab also has move, delete, chmod.
        raise ApiError(400, {"error": "actions[action] does not have a valid value"})
    if not path:
        raise ApiError(400, {"message": "You must provide a file path"})
    exists = repo.show(parent, path) is not None
    if kind == "create" and exists:
        raise ApiError(400, {"message": "A file with this name already exists"})
    if kind == "update" and not exists:
        raise ApiError(400, {"message": "A file with this name doesn't exist"})
    last = action.get("last_commit_id")
    if kind == "update" and last and _file_has_changed(repo, parent, path, str(last)):
        raise ApiError(400, {"message": f"The file has changed since you started editing it: {path}"})
    content = action.get("content")
    if content is None and kind == "update":
        raise ApiError(400, {"error": "actions[content] is missing"})
    if action.get("encoding") == "base64":
        return base64.b64decode(str(content)).decode()
    return str(content or "")


def _rewritten_tree(repo: GitRepo, root: str, files: dict[str, str]) -> str:
    """`root` with `files` (path -> text) written over it, as Gitaly's userCommitFilesGit builds it: the whole
    tree read with one `ls-tree -z -r -t` (localrepo.ReadTree WithRecursive), then only the trees on the
    changed paths written again, deepest first (TreeEntry.Write; `--missing`: Gitaly's hash-object of a tree
    does not look its entries up either). On a 3,000-app repo the read is most of the commit's cost, on GitLab
    as here."""
    blobs = {
        path: repo.run("hash-object", "-w", "--stdin", stdin=text).stdout.strip()
        for path, text in files.items()
    }
    trees: dict[str, dict[str, str]] = {"": {}}
    for path in blobs:
        parts = path.split("/")
        trees.update(("/".join(parts[:depth]), {}) for depth in range(1, len(parts)))
    for record in filter(None, repo.run("ls-tree", "-z", "-r", "-t", root).stdout.split("\0")):
        meta, _, path = record.partition("\t")
        directory, _, name = path.rpartition("/")
        if (entries := trees.get(directory)) is not None:
            entries[name] = meta
    for path, blob in blobs.items():
        directory, _, name = path.rpartition("/")
        trees[directory][name] = f"100644 blob {blob}"
    written = ""
    for directory in sorted(trees, key=lambda d: d.count("/") + bool(d), reverse=True):
        listing = "".join(f"{meta}\t{name}\0" for name, meta in sorted(trees[directory].items()))
        written = repo.run("mktree", "-z", "--missing", stdin=listing).stdout.strip()
        if directory:
            parent, _, name = directory.rpartition("/")
            trees[parent][name] = f"040000 tree {written}"
    return written


def _file_has_changed(repo: GitRepo, branch_head: str, path: str, commit_id: str) -> bool:
    """Files::BaseService#file_has_changed? (GitLab >= 15): the last commit of `path` on the branch vs as of
    `commit_id`; either one missing (an unknown commit_id included: Gitaly's LastCommitForPath finds none)
    is "not changed"."""
    on_branch = _last_commit(repo, branch_head, path)
    if _resolve(repo, commit_id) is None:
        return False
    at_commit = _last_commit(repo, commit_id, path)
    return bool(on_branch and at_commit and on_branch != at_commit)


def _commit(repo: GitRepo, tree: str, parent: str, message: str, user: Any, params: dict[str, Any]) -> str:
    env = {
        "GIT_AUTHOR_NAME": str(params.get("author_name") or user.name),
        "GIT_AUTHOR_EMAIL": str(params.get("author_email") or user.email),
        "GIT_COMMITTER_NAME": user.name,
        "GIT_COMMITTER_EMAIL": user.email,
    }
    return repo.run("commit-tree", tree, "-p", parent, "-F", "-", stdin=message, env=env).stdout.strip()


def _commit_detail(project: Project, repo: GitRepo, sha: str) -> dict[str, Any]:
    """Entities::CommitDetail (commits.md "Create a commit" response): Entities::Commit and more."""
    shown = repo.run("show", "-s", f"--format={_COMMIT_FIELDS}", sha).stdout
    return _commit_entity(project, shown.split("\x1f")) | {
        "stats": _stats(repo, sha),
        "status": None,
        "project_id": project.id,
        "last_pipeline": None,
    }


def _stats(repo: GitRepo, sha: str) -> dict[str, int]:
    """CommitDetail's `stats` (the API's `stats` parameter defaults to true): Gitaly's CommitStats, a numstat
    diff against the first parent."""
    numstat = repo.run("diff-tree", "-r", "--numstat", "--no-renames", "--no-commit-id", "--root", sha).stdout
    counts = [line.split("\t", 2)[:2] for line in numstat.splitlines()]
    additions = sum(int(a) for a, _ in counts if a.isdigit())
    deletions = sum(int(d) for _, d in counts if d.isdigit())
    return {"additions": additions, "deletions": deletions, "total": additions + deletions}


def _resolve(repo: GitRepo, ref: str) -> str | None:
    out = repo.run(
        "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", ok=(0, 1, 128)
    )
    return out.stdout.strip() or None


def _last_commit(repo: GitRepo, commit: str, path: str) -> str:
    return repo.run("log", "-1", "--format=%H", commit, "--", f":(literal){path}").stdout.strip()
