"""Merge-request mode: one branch and one merge request per app and environment.

Each branch is rebuilt from the current target tip (never rebased) and force-pushed with a lease on the
tip we saw; a re-run that would propose the same file content changes nothing.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import TypeVar

from gitops_ci import logs
from gitops_ci.change import steps
from gitops_ci.change.model import (
    BUILT_IN_DEFAULTS,
    Change,
    DeployResult,
    EnvironmentChange,
    MergeRequestAction,
    MergeRequestResult,
    RepoDefaults,
    Target,
)
from gitops_ci.change.settings import MergeRequestOptions, RepoSettings
from gitops_ci.errors import GitLabError, OperationalError, PushRejectedError, RetryableError
from gitops_ci.images.describe import image_of
from gitops_ci.logs import one_line
from gitops_ci.manifest_repo.gitlab import GitLabClient, MergeRequestInfo
from gitops_ci.manifest_repo.open import gitlab_connection
from gitops_ci.manifest_repo.port import ManifestRepo
from gitops_ci.naming import check_ref_name, render
from gitops_ci.retry import SYSTEM_CLOCK, Clock, sleep_before_retry
from gitops_ci.review.markdown import check_note, code

log = logs.get_logger(__name__)
_STILL_CHECKING = {"checking", "unchecked", "preparing", "approvals_syncing", "cannot_be_merged_recheck"}
_WAIT_FOR_PIPELINE = {"ci_still_running", "ci_must_pass"}
R = TypeVar("R")


def open_merge_requests(
    repo: ManifestRepo,
    change: Change,
    clock: Clock = SYSTEM_CLOCK,
    *,
    defaults: RepoDefaults = BUILT_IN_DEFAULTS,
) -> DeployResult:
    """One branch and merge request per target, each built on the target branch's tip we read."""
    settings = change.settings
    targets = settings.retried(lambda: change.planner(repo, defaults), "reading the manifest repo", clock)
    base = repo.base()
    client = None if settings.dry_run else gitlab_client_for(settings)
    results: list[MergeRequestResult] = []
    changes: list[EnvironmentChange] = []
    for target in targets:
        propose = partial(_propose, repo, change, client, target)
        where = f"{target.app}/{target.environment}"
        planned, result = until_proposed(repo, settings, where, propose, clock)
        changes.append(planned)
        results.append(result)
    return DeployResult(status="merge-requests", repo_url=repo.url, branch=repo.branch, commit=None,
                        base_commit=base, changes=tuple(changes), merge_requests=tuple(results),
                        defaults=defaults)  # fmt: skip


def until_proposed(
    repo: ManifestRepo, settings: RepoSettings, what: str, propose: Callable[[], R], clock: Clock
) -> R:
    """`propose` until it is done: after another job's push to the branch (or, through GitLab's API, a
    change of the file on the target) planned again on the target's new tip, until --push-timeout; after a
    transient failure tried again, --max-attempts in all."""
    deadline = clock.monotonic() + settings.push_timeout_seconds
    failures = 0
    for attempt in itertools.count(1):
        try:
            return propose()
        except PushRejectedError as err:
            if clock.monotonic() >= deadline:
                raise OperationalError(
                    f"{what}: {err}, for {settings.push_timeout_seconds:g}s; raise --push-timeout or look "
                    "for another job that pushes this branch"
                ) from None
            reason = str(err)
        except RetryableError as err:
            failures += 1
            if failures == settings.max_attempts:
                raise OperationalError(
                    f"{what}: failed {failures} times: {err}; raise --max-attempts if the server is only slow"
                ) from None
            reason = str(err)
        sleep_before_retry(attempt, settings.backoff_seconds, reason, clock=clock)
        settings.retried(repo.refresh, "fetch", clock)
    raise AssertionError("unreachable")


def gitlab_client_for(settings: RepoSettings) -> GitLabClient:
    return GitLabClient(gitlab_connection(settings))


def _propose(
    repo: ManifestRepo, change: Change, client: GitLabClient | None, target: Target
) -> tuple[EnvironmentChange, MergeRequestResult]:
    settings, options = change.settings, change.settings.merge_request
    source = check_ref_name(
        render(options.branch_template, "--mr-branch", app=target.app, env=target.environment), "--mr-branch"
    )
    (planned,) = steps.plan(repo, [target])
    result = MergeRequestResult(app=target.app, environment=target.environment, source_branch=source,
                                action="up-to-date")  # fmt: skip
    if not planned.edit.changed:
        log.info("%s already holds the images in %s: no merge request needed", repo.branch, target.path)
        return planned, result
    if client is None:
        return planned, result.with_action("dry-run")
    fields = _fields(options, client, target, planned, source, repo.branch)
    existing = client.find_open_merge_request(source, repo.branch)
    remote_sha = repo.branch_tip(source)
    if existing and remote_sha and not existing.has_conflicts and _still_current(repo, source, planned):
        mr = _update_if_changed(client, existing, fields)
        found = replace(
            result, action="unchanged" if mr is existing else "updated", iid=mr.iid, web_url=mr.web_url
        )
        return planned, _maybe_merge(client, options, found)
    sha = steps.commit(repo, [planned], settings, change.message_for)
    with logs.section(f"mr_{target.environment}", f"Pushing {sha[:12]} to {source}"):
        sha = repo.publish(sha, source, lease=remote_sha or "")
    mr = (
        client.update_merge_request(existing.iid, fields) if existing else client.create_merge_request(fields)
    )
    action: MergeRequestAction = "updated" if existing else "created"
    log.info("merge request !%d %s: %s", mr.iid, action, mr.web_url)
    made = replace(result, action=action, iid=mr.iid, web_url=mr.web_url, commit=sha)
    return planned, _maybe_merge(client, options, made)


def _still_current(repo: ManifestRepo, source: str, planned: EnvironmentChange) -> bool:
    """The branch proposes exactly our edit, on a base whose file equals the target's: it merges cleanly."""
    return (
        repo.read_branch(source, planned.file) == planned.edit.after
        and repo.read_branch(source, planned.file, back=1) == planned.edit.before
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
        return result.with_action("merged")
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
            if _merged(client, result.iid):  # a retried merge whose first try landed
                return result.with_action("merged")
            log.warning("merge request !%d stays open: %s", result.iid, err)
            return result
        return result.with_action("merged" if status == "mergeable" else "auto-merge")
    log.warning("merge request !%d stays open: GitLab reports %s", result.iid, status or "no merge status")
    return result


def _merged(client: GitLabClient, iid: int) -> bool:
    try:
        return client.get_merge_request(iid).state == "merged"
    except (GitLabError, OperationalError):  # the warning that follows says the merge request stays open
        return False


__all__: Sequence[str] = ["describe", "open_merge_requests", "until_proposed"]
