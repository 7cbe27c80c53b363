"""The GitLab contract server's data model and its REST API v4 JSON representations.

Field names follow docs.gitlab.com api/users.md, api/projects.md, api/branches.md,
api/merge_requests.md ("Retrieve a merge request" response table) and api/notes.md.
"""

from __future__ import annotations

import datetime
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from servers.gitlab_git import GitRepo

if TYPE_CHECKING:
    from servers.gitlab_state import GitLabState

RUNNING = frozenset({"created", "pending", "running"})
DRAFT_RE = re.compile(r"^\s*(\[draft\]|\(draft\)|draft:|draft\s+-|\[wip\]|wip:)", re.IGNORECASE)
JSON = dict[str, Any]


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class User:
    id: int
    username: str
    name: str
    email: str


@dataclass
class Token:
    user: User
    scopes: frozenset[str]
    job_project_id: int | None = None  # set for CI job tokens


@dataclass
class Pipeline:
    id: int
    sha: str
    ref: str
    status: str
    polls_left: int
    final_status: str
    created_at: str
    updated_at: str

    def tick(self) -> None:
        if self.status in RUNNING:
            self.polls_left -= 1
            if self.polls_left <= 0:
                self.status, self.updated_at = self.final_status, now_iso()


@dataclass
class Note:
    id: int
    body: str
    author: User
    mr_id: int
    mr_iid: int
    created_at: str
    updated_at: str
    system: bool = False


@dataclass
class MergeRequest:
    id: int
    iid: int
    project_id: int
    title: str
    description: str
    source_branch: str
    target_branch: str
    author: User
    sha: str
    created_at: str
    updated_at: str
    state: str = "opened"
    labels: list[str] = field(default_factory=list)
    assignees: list[User] = field(default_factory=list)
    reviewers: list[User] = field(default_factory=list)
    checks_left: int = 0
    polled: bool = False
    source_missing: bool = False
    squash: bool = False
    force_remove_source_branch: bool = False
    should_remove_source_branch: bool | None = None
    discussion_locked: bool = False
    auto_merge: bool = False
    merge_params: dict[str, Any] = field(default_factory=dict)
    merge_user: User | None = None
    merge_error: str | None = None
    merged_at: str | None = None
    closed_at: str | None = None
    closed_by: User | None = None
    merge_commit_sha: str | None = None
    squash_commit_sha: str | None = None
    notes: list[Note] = field(default_factory=list)

    @property
    def draft(self) -> bool:
        return DRAFT_RE.match(self.title) is not None


@dataclass
class Project:
    id: int
    path_with_namespace: str
    repo: GitRepo
    default_branch: str
    web_url: str
    http_url_to_repo: str
    has_pipelines: bool = False
    merge_method: str = "merge"  # merge | rebase_merge | ff
    squash_option: str = "default_off"  # never | always | default_on | default_off
    only_allow_merge_if_pipeline_succeeds: bool = False
    remove_source_branch_after_merge: bool = False
    pipeline_polls: int = 1
    pipeline_final_status: str = "success"
    created_at: str = field(default_factory=now_iso)
    next_iid: int = 1
    merge_requests: dict[int, MergeRequest] = field(default_factory=dict)
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    conflicts: dict[tuple[str, str], bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.merge_method not in {"merge", "rebase_merge", "ff"}:
            raise ValueError(f"unknown merge_method {self.merge_method!r}")
        if self.squash_option not in {"never", "always", "default_on", "default_off"}:
            raise ValueError(f"unknown squash_option {self.squash_option!r}")


def user_json(state: GitLabState, user: User | None, *, full: bool = False) -> JSON | None:
    if user is None:
        return None
    data: JSON = {
        "id": user.id,
        "username": user.username,
        "name": user.name,
        "state": "active",
        "locked": False,
        "avatar_url": None,
        "web_url": f"{state.base_url}/{user.username}",
    }
    if full:  # GET /user adds the private fields
        data.update(
            email=user.email,
            public_email=None,
            bot=False,
            is_admin=False,
            created_at="2024-01-01T00:00:00.000Z",
        )
    return data


def project_json(project: Project) -> JSON:
    path = project.path_with_namespace
    namespace, _, name = path.rpartition("/")
    return {
        "id": project.id,
        "description": None,
        "name": name,
        "path": name,
        "path_with_namespace": path,
        "name_with_namespace": " / ".join(path.split("/")),
        "created_at": project.created_at,
        "default_branch": project.default_branch,
        "visibility": "private",
        "archived": False,
        "web_url": project.web_url,
        "http_url_to_repo": project.http_url_to_repo,
        "ssh_url_to_repo": f"git@127.0.0.1:{path}.git",
        "empty_repo": False,
        "topics": [],
        "tag_list": [],
        "namespace": {
            "name": namespace.rpartition("/")[2],
            "path": namespace.rpartition("/")[2],
            "kind": "group",
            "full_path": namespace,
        },
        "merge_method": project.merge_method,
        "squash_option": project.squash_option,
        "only_allow_merge_if_pipeline_succeeds": project.only_allow_merge_if_pipeline_succeeds,
        "remove_source_branch_after_merge": project.remove_source_branch_after_merge,
        "merge_requests_enabled": True,
        "jobs_enabled": project.has_pipelines,
        "builds_access_level": "enabled" if project.has_pipelines else "disabled",
    }


def branch_json(project: Project, name: str, info: JSON) -> JSON:
    default = project.repo.branch_sha(project.default_branch)
    commit = {key: value for key, value in info.items() if key not in {"ref", "parents"}}
    commit.update(
        short_id=info["id"][:8],
        parent_ids=info["parents"],
        created_at=info["committed_date"],
        trailers={},
        web_url=f"{project.web_url}/-/commit/{info['id']}",
    )
    return {
        "name": name,
        "commit": commit,
        "default": name == project.default_branch,
        "protected": name == project.default_branch,
        "developers_can_push": False,
        "developers_can_merge": False,
        "can_push": True,
        "web_url": f"{project.web_url}/-/tree/{name}",
        "merged": default is not None and project.repo.is_ancestor(info["id"], default),
    }


def pipeline_json(project: Project, pipeline: Pipeline | None) -> JSON | None:
    if pipeline is None:
        return None
    status = pipeline.status
    return {
        "id": pipeline.id,
        "iid": pipeline.id,
        "project_id": project.id,
        "sha": pipeline.sha,
        "ref": pipeline.ref,
        "status": status,
        "source": "push",
        "tag": False,
        "created_at": pipeline.created_at,
        "updated_at": pipeline.updated_at,
        "started_at": pipeline.created_at,
        "finished_at": None if status in RUNNING else pipeline.updated_at,
        "web_url": f"{project.web_url}/-/pipelines/{pipeline.id}",
        "before_sha": "0" * 40,
        "yaml_errors": None,
        "coverage": None,
        "detailed_status": {
            "icon": f"status_{status}",
            "text": status,
            "label": status,
            "group": status,
            "tooltip": status,
            "has_details": True,
            "illustration": None,
            "details_path": f"/{project.path_with_namespace}/-/pipelines/{pipeline.id}",
        },
    }


def mr_json(state: GitLabState, project: Project, mr: MergeRequest, *, full: bool = True) -> JSON:
    """``full`` is the single-MR entity (adds head_pipeline, diff_refs, ...); else the list entity."""
    merge_status = state.merge_status(project, mr)
    reference, merged = f"!{mr.iid}", mr.state == "merged"

    def user(u: User | None) -> JSON | None:
        return user_json(state, u)

    data: JSON = {
        "id": mr.id,
        "iid": mr.iid,
        "project_id": project.id,
        "title": mr.title,
        "description": mr.description,
        "state": mr.state,
        "created_at": mr.created_at,
        "updated_at": mr.updated_at,
        "merged_at": mr.merged_at,
        "closed_at": mr.closed_at,
        "merged_by": user(mr.merge_user) if merged else None,
        "merge_user": user(mr.merge_user),
        "closed_by": user(mr.closed_by),
        "target_branch": mr.target_branch,
        "source_branch": mr.source_branch,
        "source_project_id": project.id,
        "target_project_id": project.id,
        "user_notes_count": sum(not note.system for note in mr.notes),
        "upvotes": 0,
        "downvotes": 0,
        "author": user(mr.author),
        "assignees": [user(u) for u in mr.assignees],
        "assignee": user(mr.assignees[0] if mr.assignees else None),
        "reviewers": [user(u) for u in mr.reviewers],
        "labels": list(mr.labels),
        "draft": mr.draft,
        "work_in_progress": mr.draft,
        "milestone": None,
        "merge_after": None,
        "merge_when_pipeline_succeeds": mr.auto_merge,
        "merge_status": merge_status,
        "detailed_merge_status": state.detailed_status(project, mr),
        "sha": mr.sha,
        "merge_commit_sha": mr.merge_commit_sha,
        "squash_commit_sha": mr.squash_commit_sha,
        "discussion_locked": mr.discussion_locked,
        "has_conflicts": merge_status == "cannot_be_merged",
        "should_remove_source_branch": mr.should_remove_source_branch,
        "force_remove_source_branch": mr.force_remove_source_branch,
        "squash": mr.squash,
        "squash_on_merge": state.squash_on_merge(project, mr),
        "prepared_at": mr.created_at,
        "reference": reference,
        "references": {
            "short": reference,
            "relative": reference,
            "full": f"{project.path_with_namespace}{reference}",
        },
        "web_url": f"{project.web_url}/-/merge_requests/{mr.iid}",
        "time_stats": {
            "time_estimate": 0,
            "total_time_spent": 0,
            "human_time_estimate": None,
            "human_total_time_spent": None,
        },
        "task_completion_status": {"count": 0, "completed_count": 0},
        "blocking_discussions_resolved": True,
        "imported": False,
        "imported_from": "none",
    }
    if full:
        pipeline = pipeline_json(project, project.pipelines.get(mr.sha))
        start = project.repo.branch_sha(mr.target_branch)
        data.update(
            {
                "head_pipeline": pipeline,
                "pipeline": pipeline,
                "merge_error": mr.merge_error,
                "diff_refs": {
                    "base_sha": project.repo.merge_base(start, mr.sha) if start else None,
                    "head_sha": mr.sha,
                    "start_sha": start,
                },
                "subscribed": True,
                "changes_count": None,
                "first_contribution": False,
                "latest_build_started_at": None,
                "latest_build_finished_at": None,
                "first_deployed_to_production_at": None,
                "user": {"can_merge": True},
            }
        )
    return data


def note_json(state: GitLabState, project: Project, note: Note) -> JSON:
    return {
        "id": note.id,
        "type": None,
        "body": note.body,
        "attachment": None,
        "author": user_json(state, note.author),
        "created_at": note.created_at,
        "updated_at": note.updated_at,
        "system": note.system,
        "noteable_id": note.mr_id,
        "noteable_type": "MergeRequest",
        "noteable_iid": note.mr_iid,
        "project_id": project.id,
        "resolvable": False,
        "confidential": False,
        "internal": False,
        "imported": False,
        "imported_from": "none",
    }
