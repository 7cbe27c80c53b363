"""State and merge-request rules behind the GitLab REST contract server.

Everything here runs under ``GitLabState.lock`` (the HTTP layer holds it for each request).
Branches and SHAs always come from the real bare repository on disk, so a push through a
git server that serves the same directory is seen by the next API call.
"""

from __future__ import annotations

import threading
from typing import Any

from servers import housekeeping
from servers.gitlab_git import GitError, Ident
from servers.gitlab_model import RUNNING, MergeRequest, Note, Pipeline, Project, Token, User, now_iso


class ApiError(Exception):
    """An HTTP error answer: status, JSON body and extra headers."""

    def __init__(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {body}")
        self.status, self.body, self.headers = status, body, headers or {}


def as_bool(value: Any) -> bool:
    return value is True or str(value).lower() in {"true", "1", "yes"}


def as_list(value: Any) -> list[str]:
    items = value if isinstance(value, list) else str(value or "").split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def as_ints(value: Any) -> list[int]:
    items = value if isinstance(value, list) else as_list(value)
    return [int(item) for item in items if str(item).strip().lstrip("-").isdigit() and int(item) > 0]


def unprocessable(*messages: str) -> ApiError:
    return ApiError(422, {"message": list(messages)})


def labels_match(wanted: list[str], labels: list[str]) -> bool:
    have = {label.lower() for label in labels}
    if [w.lower() for w in wanted] == ["none"]:
        return not have
    if [w.lower() for w in wanted] == ["any"]:
        return bool(have)
    return all(label.lower() in have for label in wanted)


def not_allowed() -> ApiError:
    return ApiError(405, {"message": "405 Method Not Allowed"})


class GitLabState:
    """Users, tokens, projects, merge requests, notes and pipelines; guarded by ``lock``."""

    def __init__(self, *, checking_polls: int = 1, conflict_merge_status: int = 405) -> None:
        self.lock = threading.RLock()
        self.base_url = "http://127.0.0.1"
        self.checking_polls = checking_polls
        self.conflict_merge_status = conflict_merge_status  # 405 today; GitLab <= 15.x answered 406
        self.users: dict[int, User] = {}
        self.tokens: dict[str, Token] = {}
        self.projects: dict[int, Project] = {}
        self._counters: dict[str, int] = {}

    def next_id(self, kind: str) -> int:
        self._counters[kind] = self._counters.get(kind, 0) + 1
        return self._counters[kind]

    # ----- registry -------------------------------------------------------------------------
    def user_named(self, username: str) -> User | None:
        return next((u for u in self.users.values() if u.username == username), None)

    def add_user(self, username: str, *, name: str | None = None, email: str | None = None) -> User:
        user = self.user_named(username)
        if user is None:
            user = User(self.next_id("user"), username, name or username, email or f"{username}@example.com")
            self.users[user.id] = user
        return user

    def find_project(self, ident: str | int) -> Project | None:
        if str(ident).isdigit():
            return self.projects.get(int(ident))
        return next((p for p in self.projects.values() if p.path_with_namespace == str(ident)), None)

    def project_or_404(self, ident: str | int) -> Project:
        project = self.find_project(ident)
        if project is None:
            raise ApiError(404, {"message": "404 Project Not Found"})
        return project

    @staticmethod
    def mr_or_404(project: Project, iid: str | int) -> MergeRequest:
        mr = project.merge_requests.get(int(iid))
        if mr is None:
            raise ApiError(404, {"message": "404 Not found"})  # ActiveRecord::RecordNotFound
        return mr

    def find_mrs(self, project: Project, params: dict[str, Any]) -> list[MergeRequest]:
        """``GET /projects/:id/merge_requests`` filters and order (default: newest first)."""
        labels, iids = as_list(params.get("labels")), set(as_ints(params.get("iids")))
        chosen: list[MergeRequest] = []
        for mr in project.merge_requests.values():
            self.sync(project, mr)
            if (
                params.get("state", "all") in ("all", mr.state)
                and params.get("source_branch", mr.source_branch) == mr.source_branch
                and params.get("target_branch", mr.target_branch) == mr.target_branch
                and (not iids or mr.iid in iids)
                and labels_match(labels, mr.labels)
            ):
                chosen.append(mr)
        order = str(params.get("order_by") or "created_at")
        order = order if order in {"updated_at", "title"} else "created_at"
        chosen.sort(key=lambda m: (getattr(m, order), m.id), reverse=params.get("sort", "desc") != "asc")
        return chosen

    # ----- simulation: mergeability checks and pipelines ------------------------------------
    def _start_checks(self, project: Project, mr: MergeRequest) -> None:
        mr.checks_left, mr.polled, mr.merge_error = self.checking_polls, False, None
        if project.has_pipelines and mr.sha not in project.pipelines:
            done = project.pipeline_polls <= 0
            stamp = now_iso()
            project.pipelines[mr.sha] = Pipeline(
                self.next_id("pipeline"),
                mr.sha,
                mr.source_branch,
                project.pipeline_final_status if done else "running",
                project.pipeline_polls,
                project.pipeline_final_status,
                stamp,
                stamp,
            )

    def sync(self, project: Project, mr: MergeRequest) -> None:
        """Follow the source branch in the bare repo: a moved head restarts checks and CI."""
        if mr.state != "opened":
            return
        head = project.repo.branch_sha(mr.source_branch)
        mr.source_missing = head is None
        if head is not None and head != mr.sha:
            mr.sha, mr.updated_at = head, now_iso()
            self._start_checks(project, mr)

    def poll(self, project: Project, mr: MergeRequest) -> None:
        """One GET of the merge request has been answered: advance checks, CI and auto-merge."""
        if mr.state != "opened":
            return
        mr.checks_left, mr.polled = max(0, mr.checks_left - 1), True
        pipeline = project.pipelines.get(mr.sha)
        if pipeline is not None:
            pipeline.tick()
        if not mr.auto_merge:
            return
        status = self.detailed_status(project, mr)
        if status == "mergeable":
            try:
                self._merge(project, mr, mr.merge_user or mr.author, mr.merge_params)
            except ApiError:
                mr.auto_merge, mr.merge_error = False, "Branch cannot be merged"
        elif status in {"conflict", "ci_must_pass", "need_rebase", "commits_status"}:
            mr.auto_merge, mr.merge_error = False, f"Auto-merge aborted: {status}"

    def has_conflict(self, project: Project, mr: MergeRequest) -> bool:
        target = project.repo.branch_sha(mr.target_branch)
        if target is None:
            return True
        key = (target, mr.sha)
        if key not in project.conflicts:
            project.conflicts[key] = project.repo.merge_trees(target, mr.sha) is None
        return project.conflicts[key]

    def detailed_status(self, project: Project, mr: MergeRequest) -> str:
        if mr.state != "opened":
            return "not_open"
        if mr.source_missing:
            return "commits_status"
        if mr.checks_left > 0:
            return "checking"
        if mr.draft:
            return "draft_status"
        if self.has_conflict(project, mr):
            return "conflict"
        target = project.repo.branch_sha(mr.target_branch) or ""
        if project.merge_method != "merge" and not project.repo.is_ancestor(target, mr.sha):
            return "need_rebase"
        if project.has_pipelines and project.only_allow_merge_if_pipeline_succeeds:
            pipeline = project.pipelines.get(mr.sha)
            if pipeline is not None and pipeline.status in RUNNING:
                return "ci_still_running"
            if pipeline is None or pipeline.status != "success":
                return "ci_must_pass"
        return "mergeable"

    def merge_status(self, project: Project, mr: MergeRequest) -> str:
        """The deprecated ``merge_status``; ``has_conflicts`` is true only for ``cannot_be_merged``."""
        if mr.state == "opened" and mr.checks_left > 0:
            return "checking" if mr.polled else "unchecked"
        if mr.state == "opened" and not mr.source_missing and self.has_conflict(project, mr):
            return "cannot_be_merged"
        return "can_be_merged"

    def squash_on_merge(self, project: Project, mr: MergeRequest) -> bool:
        return {"always": True, "never": False}.get(project.squash_option, mr.squash)

    # ----- merge requests -------------------------------------------------------------------
    def _open_duplicate(self, project: Project, src: str, tgt: str, skip: int = 0) -> MergeRequest | None:
        return next(
            (
                m
                for m in project.merge_requests.values()
                if m.state == "opened" and m.iid != skip and (m.source_branch, m.target_branch) == (src, tgt)
            ),
            None,
        )

    def _users(self, ids: list[int]) -> list[User]:
        return [self.users[i] for i in ids if i in self.users]

    def create_mr(self, project: Project, author: User, params: dict[str, Any]) -> MergeRequest:
        missing = [k for k in ("title", "source_branch", "target_branch") if not params.get(k)]
        if missing:
            raise ApiError(400, {"error": ", ".join(f"{k} is missing" for k in missing)})
        src, tgt = str(params["source_branch"]), str(params["target_branch"])
        if src == tgt:
            raise unprocessable("You must select different branches")
        sha = project.repo.branch_sha(src)
        if sha is None:
            raise unprocessable(f'Source branch "{src}" does not exist')
        if project.repo.branch_sha(tgt) is None:
            raise unprocessable(f'Target branch "{tgt}" does not exist')
        duplicate = self._open_duplicate(project, src, tgt)
        if duplicate is not None:
            raise ApiError(
                409,
                {
                    "message": [
                        f"Another open merge request already exists for this source branch: !{duplicate.iid}"
                    ]
                },
            )
        stamp = now_iso()
        mr = MergeRequest(
            self.next_id("merge_request"),
            project.next_iid,
            project.id,
            str(params["title"]),
            str(params.get("description") or ""),
            src,
            tgt,
            author,
            sha,
            stamp,
            stamp,
            labels=as_list(params.get("labels")),
            assignees=self._users(as_ints(params.get("assignee_ids")) or as_ints(params.get("assignee_id"))),
            reviewers=self._users(as_ints(params.get("reviewer_ids"))),
            squash=as_bool(params["squash"])
            if "squash" in params
            else project.squash_option in {"always", "default_on"},
            force_remove_source_branch=as_bool(params["remove_source_branch"])
            if "remove_source_branch" in params
            else project.remove_source_branch_after_merge,
        )
        project.next_iid += 1
        project.merge_requests[mr.iid] = mr
        self._start_checks(project, mr)
        return mr

    UPDATABLE = (
        "title",
        "description",
        "labels",
        "add_labels",
        "remove_labels",
        "assignee_id",
        "assignee_ids",
        "reviewer_ids",
        "remove_source_branch",
        "squash",
        "state_event",
        "target_branch",
        "discussion_locked",
        "milestone_id",
        "allow_collaboration",
    )

    def update_mr(self, project: Project, mr: MergeRequest, user: User, params: dict[str, Any]) -> None:
        if not any(key in params for key in self.UPDATABLE):
            raise ApiError(
                400,
                {
                    "error": f"{', '.join(self.UPDATABLE)} are missing, "
                    "at least one parameter must be provided"
                },
            )
        for key in ("title", "target_branch"):
            if key in params and not params[key]:
                raise ApiError(400, {"error": f"{key} is empty"})
        event = params.get("state_event")
        if event is not None and event not in {"close", "reopen"}:
            raise ApiError(400, {"error": "state_event does not have a valid value"})
        target = str(params.get("target_branch") or mr.target_branch)
        if target != mr.target_branch and project.repo.branch_sha(target) is None:
            raise unprocessable(f'Target branch "{target}" does not exist')
        reopening = event == "reopen" and mr.state == "closed"
        if (target != mr.target_branch and mr.state == "opened") or reopening:
            duplicate = self._open_duplicate(project, mr.source_branch, target, skip=mr.iid)
            if duplicate is not None:
                message = (
                    f"Another open merge request already exists for this source branch: !{duplicate.iid}"
                )
                raise ApiError(409, {"message": [message]})
        mr.title = str(params.get("title") or mr.title)
        mr.description = str(params.get("description", mr.description) or "")
        mr.target_branch = target
        if "labels" in params:
            mr.labels = as_list(params["labels"])
        mr.labels += [label for label in as_list(params.get("add_labels")) if label not in mr.labels]
        mr.labels = [label for label in mr.labels if label not in as_list(params.get("remove_labels"))]
        if "assignee_ids" in params or "assignee_id" in params:
            mr.assignees = self._users(as_ints(params.get("assignee_ids", params.get("assignee_id"))))
        if "reviewer_ids" in params:
            mr.reviewers = self._users(as_ints(params["reviewer_ids"]))
        if "remove_source_branch" in params:
            mr.force_remove_source_branch = as_bool(params["remove_source_branch"])
        if "squash" in params:
            mr.squash = as_bool(params["squash"])
        if "discussion_locked" in params:
            mr.discussion_locked = as_bool(params["discussion_locked"])
        if event == "close" and mr.state == "opened":
            mr.state, mr.closed_at, mr.closed_by, mr.auto_merge = "closed", now_iso(), user, False
        elif reopening:
            mr.state, mr.closed_at, mr.closed_by = "opened", None, None
            self.sync(project, mr)
            self._start_checks(project, mr)
        mr.updated_at = now_iso()

    def accept_mr(self, project: Project, mr: MergeRequest, user: User, params: dict[str, Any]) -> None:
        """``PUT .../merge``: merge now, or set auto-merge while checks or CI are still running."""
        if mr.state != "opened":
            raise not_allowed()
        self.sync(project, mr)
        if params.get("sha") and params["sha"] != mr.sha:
            raise ApiError(409, {"message": f"SHA does not match HEAD of source branch: {mr.sha}"})
        if as_bool(params.get("squash")):
            mr.squash = True
        options = {k: params[k] for k in ("merge_commit_message", "squash_commit_message") if params.get(k)}
        if "should_remove_source_branch" in params:
            options["should_remove_source_branch"] = as_bool(params["should_remove_source_branch"])
        auto = as_bool(params.get("auto_merge")) or as_bool(params.get("merge_when_pipeline_succeeds"))
        status = self.detailed_status(project, mr)
        if auto and status in {"checking", "ci_still_running"}:
            mr.auto_merge, mr.merge_user, mr.merge_params = True, user, options
            mr.should_remove_source_branch = options.get("should_remove_source_branch")
            mr.updated_at = now_iso()
            return
        if status == "conflict" and self.conflict_merge_status != 405:
            raise ApiError(self.conflict_merge_status, {"message": "Branch cannot be merged"})
        if status != "mergeable":
            raise not_allowed()
        self._merge(project, mr, user, options)

    def _merge(self, project: Project, mr: MergeRequest, user: User, options: dict[str, Any]) -> None:
        """Really merge in the bare repo: merge (or squash) commit, then a guarded ``update-ref``."""
        repo, ident = project.repo, Ident(user.name, user.email)
        target, head = repo.branch_sha(mr.target_branch), mr.sha
        failed = ApiError(422, {"message": "Branch cannot be merged"})
        if target is None:
            raise failed
        try:
            squash_sha = merge_sha = None
            if self.squash_on_merge(project, mr):
                base = repo.merge_base(target, head)
                message = options.get("squash_commit_message") or mr.title
                head = squash_sha = repo.commit_tree(repo.tree(head), [base] if base else [], message, ident)
            if project.merge_method == "ff":
                if not repo.is_ancestor(target, head):
                    raise failed
                new_target = head
            else:
                tree = repo.merge_trees(target, head)
                if tree is None:
                    raise failed
                message = options.get("merge_commit_message") or (
                    f"Merge branch '{mr.source_branch}' into '{mr.target_branch}'\n\n{mr.title}\n\n"
                    f"See merge request {project.path_with_namespace}!{mr.iid}"
                )
                new_target = merge_sha = repo.commit_tree(tree, [target, head], message, ident)
            if not repo.update_ref(f"refs/heads/{mr.target_branch}", new_target, target):
                raise failed
            housekeeping.pushed(repo.path)
        except GitError as exc:
            raise failed from exc
        mr.state, mr.merged_at, mr.updated_at, mr.merge_user = "merged", now_iso(), now_iso(), user
        mr.merge_commit_sha, mr.squash_commit_sha, mr.merge_error = merge_sha, squash_sha, None
        remove = options.get("should_remove_source_branch")
        mr.should_remove_source_branch = remove
        if remove if remove is not None else mr.force_remove_source_branch:
            repo.delete_ref(f"refs/heads/{mr.source_branch}", mr.sha)

    # ----- notes ----------------------------------------------------------------------------
    def add_note(self, mr: MergeRequest, author: User, params: dict[str, Any]) -> Note:
        if not params.get("body"):
            raise ApiError(400, {"error": "body is missing"})
        stamp = now_iso()
        note = Note(self.next_id("note"), str(params["body"]), author, mr.id, mr.iid, stamp, stamp)
        mr.notes.append(note)
        return note

    @staticmethod
    def note_or_404(mr: MergeRequest, note_id: str | int) -> Note:
        note = next((n for n in mr.notes if n.id == int(note_id)), None)
        if note is None:
            raise ApiError(404, {"message": "404 Not found"})  # ActiveRecord::RecordNotFound
        return note

    @staticmethod
    def sorted_notes(mr: MergeRequest, params: dict[str, Any]) -> list[Note]:
        """Documented default order: ``created_at`` descending."""
        key = "updated_at" if params.get("order_by") == "updated_at" else "created_at"
        return sorted(mr.notes, key=lambda n: (getattr(n, key), n.id), reverse=params.get("sort") != "asc")

    @staticmethod
    def update_note(note: Note, user: User, params: dict[str, Any]) -> None:
        if not params.get("body"):
            raise ApiError(400, {"error": "body is missing"})
        if note.author.id != user.id:
            raise ApiError(403, {"message": "403 Forbidden"})
        note.body, note.updated_at = str(params["body"]), now_iso()
