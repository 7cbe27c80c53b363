"""Merge-request mode for changes that write whole files (onboarding): one branch with one commit on the
target's tip, and one merge request. A re-run whose branch already proposes the same files changes nothing."""

from __future__ import annotations

from dataclasses import replace
from functools import partial

from gitops_ci import logs
from gitops_ci.change import steps
from gitops_ci.change.merge_request import gitlab_client_for, until_proposed
from gitops_ci.change.model import MergeRequestAction, MergeRequestResult
from gitops_ci.change.runner import FilesPlanner, FilesResult
from gitops_ci.change.settings import RepoSettings
from gitops_ci.logs import one_line
from gitops_ci.manifest_repo.port import ManifestRepo
from gitops_ci.retry import SYSTEM_CLOCK, Clock
from gitops_ci.review.markdown import check_note, code

log = logs.get_logger(__name__)


def propose_files(
    repo: ManifestRepo,
    plan: FilesPlanner,
    message: str,
    settings: RepoSettings,
    source: str,
    clock: Clock = SYSTEM_CLOCK,
) -> FilesResult:
    """Planned again after a lost race or a transient failure, as every merge request (`until_proposed`)."""
    propose = partial(_propose_files, repo, plan, message, settings, source)
    return until_proposed(repo, settings, source, propose, clock)


def _propose_files(
    repo: ManifestRepo, plan: FilesPlanner, message: str, settings: RepoSettings, source: str
) -> FilesResult:
    files = plan(repo)
    base = repo.base()
    result = FilesResult(status="merge-requests", repo_url=repo.url, branch=repo.branch, commit=None,
                         base_commit=base, files=tuple(files))  # fmt: skip
    if not files or settings.dry_run:
        return replace(result, status="dry-run" if files else "up-to-date")
    client = gitlab_client_for(settings)
    existing = client.find_open_merge_request(source, repo.branch)
    remote_sha = repo.branch_tip(source)
    action: MergeRequestAction = "unchanged"
    sha = remote_sha
    if not (existing and remote_sha and all(repo.read_branch(source, p) == t for p, t in files.items())):
        commit = steps.commit_files(repo, files, message, settings)
        sha = repo.publish(commit, source, lease=remote_sha or "")
        action = "updated" if existing else "created"
    fields = {
        "source_branch": source,
        "target_branch": repo.branch,
        "title": one_line(message, limit=255),
        "description": _describe(files),
        "remove_source_branch": True,
    }
    mr = (
        existing
        if action == "unchanged" and existing
        else (
            client.update_merge_request(existing.iid, fields)
            if existing
            else client.create_merge_request(fields)
        )
    )
    log.info("merge request !%d %s: %s", mr.iid, action, mr.web_url)
    proposal = MergeRequestResult(app="", environment="", source_branch=source, action=action, iid=mr.iid,
                                  web_url=mr.web_url, commit=sha)  # fmt: skip
    return replace(result, commit=sha, merge_request=proposal)


def _describe(files: dict[str, str]) -> str:
    rows = [f"- {code(path)}" for path in files]
    return check_note("\n".join(["gitops-ci adds these files:", "", *rows, ""]))
