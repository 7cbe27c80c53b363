"""Merge-request mode: one branch and one merge request per app and environment.

Each branch is rebuilt from the current target tip (never rebased) and force-pushed with a lease on the
tip we saw; a re-run that would propose the same file content changes nothing.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Sequence

from gitops_ci import logs
from gitops_ci.change.deploy import (
    DeployResult,
    EnvironmentChange,
    MergeRequestResult,
    MessageFor,
    Planner,
    Target,
    edit_targets,
)
from gitops_ci.change.settings import MergeRequestOptions, RepoSettings, with_trailers
from gitops_ci.errors import GitLabError, OperationalError, PushRejectedError
from gitops_ci.images.describe import image_of
from gitops_ci.manifest_repo.credentials import resolve_credentials
from gitops_ci.manifest_repo.git import ManifestClone
from gitops_ci.manifest_repo.gitlab import GitLabClient, MergeRequestInfo, connection_for
from gitops_ci.naming import check_ref_name, render
from gitops_ci.retry import sleep_before_retry
from gitops_ci.review.markdown import check_note, code, one_line

log = logs.get_logger(__name__)
_STILL_CHECKING = {"checking", "unchecked", "preparing", "approvals_syncing", "cannot_be_merged_recheck"}
_WAIT_FOR_PIPELINE = {"ci_still_running", "ci_must_pass"}


def open_merge_requests(
    repo: RepoSettings, clone: ManifestClone, planner: Planner, message_for: MessageFor
) -> DeployResult:
    base = clone.head()
    targets = planner(clone.root)
    client = None if repo.dry_run else _client(repo)
    results: list[MergeRequestResult] = []
    changes: list[EnvironmentChange] = []
    for target in targets:
        deadline = time.monotonic() + repo.push_timeout_seconds
        for attempt in itertools.count(1):
            try:
                change, result = _one(repo, clone, client, target, base, message_for)
                break
            except PushRejectedError as err:  # another job pushed the same branch: look again
                if time.monotonic() >= deadline:
                    raise OperationalError(
                        f"{target.app}/{target.environment}: {err}, for {repo.push_timeout_seconds:g}s; "
                        "raise --push-timeout or look for another job that pushes this branch"
                    ) from None
                sleep_before_retry(attempt, repo.backoff_seconds, str(err))
        changes.append(change)
        results.append(result)
    return DeployResult(
        "merge-requests", clone.remote.url, clone.branch, None, base, tuple(changes), 1, tuple(results)
    )


def _client(repo: RepoSettings) -> GitLabClient:
    credentials = resolve_credentials()
    return GitLabClient(
        connection_for(
            repo.repo_url,
            repo.merge_request.gitlab_url,
            credentials.token if credentials else None,
            credentials.variable if credentials else None,
            repo.ca_file,
            repo.network_timeout_seconds,
        )
    )


def _one(
    repo: RepoSettings,
    clone: ManifestClone,
    client: GitLabClient | None,
    target: Target,
    base: str,
    message_for: MessageFor,
) -> tuple[EnvironmentChange, MergeRequestResult]:
    options = repo.merge_request
    source = check_ref_name(
        render(options.branch_template, "--mr-branch", app=target.app, env=target.environment), "--mr-branch"
    )
    clone.start_branch(source, base)
    (change,) = edit_targets(clone.root, [target], dry_run=repo.dry_run)

    def result(
        action: str, mr: MergeRequestInfo | None = None, commit: str | None = None
    ) -> MergeRequestResult:
        return MergeRequestResult(
            target.app,
            target.environment,
            source,
            action,
            mr.iid if mr else None,
            mr.web_url if mr else None,
            commit,
        )

    if not change.edit.changed:
        log.info("%s already holds the images in %s: no merge request needed", clone.branch, target.path)
        return change, result("up-to-date")
    if client is None:
        return change, result("dry-run")
    fields = _fields(options, client, target, change, source, clone.branch)
    existing = client.find_open_merge_request(source, clone.branch)
    remote_sha = clone.remote_branch_sha(source)
    if existing and remote_sha and not existing.has_conflicts and _still_current(clone, source, change):
        mr = _update_if_changed(client, existing, fields)
        return change, _maybe_merge(client, options, result("unchanged" if mr is existing else "updated", mr))
    message = with_trailers(message_for([change]), repo.trailers)
    commit = clone.commit([change.file], message, repo.author or repo.committer, repo.committer)
    with logs.section(f"mr_{target.environment}", f"Pushing {commit[:12]} to {source}"):
        clone.push(source, force_with_lease=remote_sha or "")
    if existing:
        mr = client.update_merge_request(existing.iid, fields)
        action = "updated"
    else:
        mr = client.create_merge_request(fields)
        action = "created"
    log.info("merge request !%d %s: %s", mr.iid, action, mr.web_url)
    return change, _maybe_merge(client, options, result(action, mr, commit))


def _still_current(clone: ManifestClone, source: str, change: EnvironmentChange) -> bool:
    """The branch proposes exactly our edit, on a base whose file equals the target's: it merges cleanly."""
    clone.fetch_branch(source, depth=2)
    ref = f"refs/remotes/origin/{source}"
    return (
        clone.read(change.file, ref) == change.edit.after
        and clone.read(change.file, f"{ref}~1") == change.edit.before
    )


def _fields(
    options: MergeRequestOptions,
    client: GitLabClient,
    target: Target,
    change: EnvironmentChange,
    source: str,
    branch: str,
) -> dict[str, object]:
    images = ", ".join(image_of(c.name, c.after) for c in change.edit.changes)
    values = {"app": target.app, "env": target.environment}
    fields: dict[str, object] = {
        "source_branch": source,
        "target_branch": branch,
        "title": one_line(render(options.title_template, "--mr-title", **values, image=images), limit=255),
        "description": describe(target, change),
        "remove_source_branch": options.remove_source_branch,
        "squash": options.squash,
    }
    if options.labels:
        fields["labels"] = ",".join(options.labels)
    if options.assignees:
        fields["assignee_ids"] = client.user_ids(options.assignees)
    if options.reviewers:
        fields["reviewer_ids"] = client.user_ids(options.reviewers)
    return fields


def describe(target: Target, change: EnvironmentChange) -> str:
    """The MR description: what changes, and where it comes from."""
    rows = [
        f"| {code(target.app, cell=True)} | {code(target.environment, cell=True)} | "
        f"{code(image_of(c.name, c.before), cell=True) if c.before else '(new)'} | "
        f"{code(image_of(c.name, c.after), cell=True)} |"
        for c in change.edit.changes
    ]
    lines = ["| App | Environment | Before | After |", "| --- | --- | --- | --- |", *rows, ""]
    project, sha, pipeline = (
        os.environ.get(v) for v in ("CI_PROJECT_URL", "CI_COMMIT_SHA", "CI_PIPELINE_URL")
    )
    links = []
    if project:
        links.append(f"source project: {project}")
        if sha:
            links.append(f"commit: [{sha[:8]}]({project}/-/commit/{sha})")
    if pipeline:
        links.append(f"pipeline: {pipeline}")
    if links:
        lines.append(" · ".join(links))
    lines.append(f"\n<!-- gitops-ci: app={target.app} env={target.environment} file={change.file} -->")
    return check_note("\n".join(lines))


def _update_if_changed(
    client: GitLabClient, mr: MergeRequestInfo, fields: dict[str, object]
) -> MergeRequestInfo:
    labels = fields.get("labels")
    same = mr.title == fields["title"] and mr.description == fields["description"]
    if same and (labels is None or sorted(str(labels).split(",")) == sorted(mr.labels)):
        return mr
    return client.update_merge_request(mr.iid, fields)


def _maybe_merge(
    client: GitLabClient, options: MergeRequestOptions, result: MergeRequestResult
) -> MergeRequestResult:
    if not options.auto_merge or result.iid is None:
        return result
    deadline = time.monotonic() + options.merge_timeout
    mr = client.get_merge_request(result.iid)
    while (
        mr.state == "opened" and mr.detailed_merge_status in _STILL_CHECKING and time.monotonic() < deadline
    ):
        time.sleep(options.poll_interval)
        mr = client.get_merge_request(result.iid)
    if mr.state == "merged":
        return _with_action(result, "merged")
    status = mr.detailed_merge_status
    if status == "mergeable" or status in _WAIT_FOR_PIPELINE:
        try:
            client.merge(
                result.iid,
                auto=status != "mergeable",
                sha=mr.sha,
                remove_source_branch=options.remove_source_branch,
                squash=options.squash,
            )
        except GitLabError as err:
            log.warning("merge request !%d stays open: %s", result.iid, err)
            return result
        return _with_action(result, "merged" if status == "mergeable" else "auto-merge")
    log.warning("merge request !%d stays open: GitLab reports %s", result.iid, status or "no merge status")
    return result


def _with_action(result: MergeRequestResult, action: str) -> MergeRequestResult:
    return MergeRequestResult(
        result.app,
        result.environment,
        result.source_branch,
        action,
        result.iid,
        result.web_url,
        result.commit,
    )


__all__: Sequence[str] = ["describe", "open_merge_requests"]
