"""Merge requests and notes through python-gitlab (made, bounded and its errors converted: gitlab_session).

Creating is never repeated blindly: a merge request or note whose POST lost its answer is looked up first.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gitops_ci import logs
from gitops_ci.errors import ConfigurationError, GitLabError, RetryableError
from gitops_ci.manifest_repo.gitlab_connection import GitLabConnection
from gitops_ci.manifest_repo.gitlab_session import gitlab_errors
from gitops_ci.retry import sleep_before_retry

log = logs.get_logger(__name__)


@dataclass(frozen=True)
class MergeRequestInfo:
    iid: int
    web_url: str
    state: str
    sha: str | None
    detailed_merge_status: str
    has_conflicts: bool
    title: str
    description: str
    labels: tuple[str, ...]
    head_pipeline_status: str | None = None


@dataclass(frozen=True)
class Note:
    id: int
    body: str
    author_id: int | None


class GitLabClient:
    """One manifest-repo project on one GitLab server."""

    def __init__(self, connection: GitLabConnection) -> None:
        from gitops_ci.manifest_repo.gitlab_session import bounded_gitlab

        self.connection = connection
        self._gl = bounded_gitlab(connection)
        self._project: Any = None

    @property
    def project(self) -> Any:
        if self._project is None:
            with gitlab_errors(self.connection, f"reading project {self.connection.project_path}"):
                self._project = self._gl.projects.get(self.connection.project_path)
        return self._project

    def find_open_merge_request(self, source_branch: str, target_branch: str) -> MergeRequestInfo | None:
        with gitlab_errors(self.connection, "listing merge requests"):
            found = self.project.mergerequests.list(
                state="opened", source_branch=source_branch, target_branch=target_branch, get_all=False
            )
            return self.get_merge_request(found[0].iid) if found else None

    def get_merge_request(self, iid: int) -> MergeRequestInfo:
        with gitlab_errors(self.connection, f"reading merge request !{iid}"):
            return _info(self.project.mergerequests.get(iid))

    def create_merge_request(self, fields: Mapping[str, Any]) -> MergeRequestInfo:
        """Create it once: after a 409 (a concurrent job's is open) or a lost answer, update the open one."""
        for attempt in itertools.count(1):
            try:
                with gitlab_errors(self.connection, "creating a merge request"):
                    return _info(self.project.mergerequests.create(dict(fields)))
            except RetryableError as err:  # it may have been created all the same
                reason: GitLabError | RetryableError = err
            except GitLabError as err:
                if getattr(err.__cause__, "response_code", None) != 409:
                    raise
                reason = err
            existing = self.find_open_merge_request(fields["source_branch"], fields["target_branch"])
            if existing is not None:
                return self.update_merge_request(existing.iid, fields)
            if isinstance(reason, GitLabError):
                raise GitLabError(
                    "GitLab answered 409 to creating a merge request but none is open; retry the job"
                )
            if attempt >= self.connection.max_attempts:
                raise reason
            sleep_before_retry(attempt, self.connection.backoff_seconds, str(reason))
        raise AssertionError("unreachable")

    def update_merge_request(self, iid: int, fields: Mapping[str, Any]) -> MergeRequestInfo:
        with gitlab_errors(self.connection, f"updating merge request !{iid}"):
            mr = self.project.mergerequests.get(iid)
            for key, value in fields.items():
                if key not in ("source_branch", "target_branch"):
                    setattr(mr, key, value)
            mr.save()
            return _info(self.project.mergerequests.get(iid))

    def merge(
        self, iid: int, *, auto: bool, sha: str | None, remove_source_branch: bool, squash: bool
    ) -> None:
        options: dict[str, Any] = {"should_remove_source_branch": remove_source_branch, "squash": squash}
        if sha:
            options["sha"] = sha
        if auto:
            options["auto_merge"] = True
            options["merge_when_pipeline_succeeds"] = True  # GitLab < 17.11 knows only this name
        with gitlab_errors(self.connection, f"merging merge request !{iid}"):
            self.project.mergerequests.get(iid, lazy=True).merge(**options)

    def user_ids(self, usernames: Sequence[str]) -> list[int]:
        ids = []
        for username in usernames:
            with gitlab_errors(self.connection, f"looking up user {username}"):
                users = [int(user.id) for user in self._gl.users.list(username=username, get_all=False)]
            if not users:
                raise ConfigurationError(f"GitLab user {username!r} not found; check --assignee/--reviewer")
            ids.append(users[0])
        return ids

    def merge_request_notes(self, iid: int) -> list[Note]:
        with gitlab_errors(self.connection, f"reading notes of merge request !{iid}"):
            notes = self.project.mergerequests.get(iid, lazy=True).notes.list(get_all=True)
            return [Note(int(n.id), str(n.body), (getattr(n, "author", None) or {}).get("id")) for n in notes]

    def current_user_id(self) -> int:
        """The user the token belongs to (a bot user for project and group access tokens)."""
        with gitlab_errors(self.connection, "reading the token's user (GET /user)"):
            self._gl.auth()
            assert self._gl.user is not None
            return int(self._gl.user.id)

    def upsert_note(self, iid: int, body: str, note_id: int | None) -> int:
        if note_id is None:
            return self._create_note(iid, body)
        with gitlab_errors(self.connection, f"writing a note on merge request !{iid}"):
            note = self.project.mergerequests.get(iid, lazy=True).notes.get(note_id)
            note.body = body
            note.save()
            return note_id

    def _create_note(self, iid: int, body: str) -> int:
        """Post it once: after a lost answer, a note of ours with this body means it landed. It is looked
        for after the backoff, so that a POST GitLab was still working on when the answer was lost is seen."""
        for attempt in itertools.count(1):
            try:
                with gitlab_errors(self.connection, f"writing a note on merge request !{iid}"):
                    return int(self.project.mergerequests.get(iid, lazy=True).notes.create({"body": body}).id)
            except RetryableError as err:
                sleep_before_retry(attempt, self.connection.backoff_seconds, str(err))
                if landed := self._our_note(iid, body):
                    return landed
                if attempt >= self.connection.max_attempts:
                    raise
        raise AssertionError("unreachable")

    def _our_note(self, iid: int, body: str) -> int | None:
        me = self.current_user_id()
        ours = [
            n.id
            for n in self.merge_request_notes(iid)
            if n.author_id == me and n.body.strip() == body.strip()
        ]
        return min(ours, default=None)


def _info(mr: Any) -> MergeRequestInfo:
    pipeline = getattr(mr, "head_pipeline", None) or {}
    return MergeRequestInfo(
        iid=int(mr.iid),
        web_url=str(mr.web_url),
        state=str(mr.state),
        sha=getattr(mr, "sha", None),
        detailed_merge_status=str(
            getattr(mr, "detailed_merge_status", None) or getattr(mr, "merge_status", "")
        ),
        has_conflicts=bool(getattr(mr, "has_conflicts", False)),
        title=str(mr.title),
        description=str(getattr(mr, "description", "") or ""),
        labels=tuple(getattr(mr, "labels", ()) or ()),
        head_pipeline_status=pipeline.get("status") if isinstance(pipeline, dict) else None,
    )
