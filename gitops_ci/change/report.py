"""How a deploy result reads: on stdout (text or JSON) and in the dotenv report."""

from __future__ import annotations

from typing import Any

from gitops_ci.change.model import DeployResult, MergeRequestResult
from gitops_ci.dotenv import env_key
from gitops_ci.images.describe import describe_change, image_of, unified_diff


def deploy_json(result: DeployResult) -> dict[str, Any]:
    return {
        "status": result.status,
        "repo_url": result.repo_url,
        "branch": result.branch,
        "commit": result.commit,
        "base_commit": result.base_commit,
        "attempts": result.attempts,
        "changed_files": result.changed_files,
        "merge_requests": [
            {
                "app": mr.app,
                "environment": mr.environment,
                "source_branch": mr.source_branch,
                "action": mr.action,
                "iid": mr.iid,
                "web_url": mr.web_url,
                "commit": mr.commit,
            }
            for mr in result.merge_requests
        ],
        "environments": {
            change.environment: {
                "app": change.app,
                "path": change.path,
                "changed": change.edit.changed,
                "images": [
                    {
                        "name": c.name,
                        "before": image_of(c.name, c.before) if c.before is not None else None,
                        "after": image_of(c.name, c.after),
                    }
                    for c in change.edit.changes
                ],
                **({"diff": unified_diff(change.edit, change.file)} if result.status == "dry-run" else {}),
            }
            for change in result.changes
        },
    }


def deploy_text(result: DeployResult) -> str:
    if result.status == "merge-requests":
        return "".join(_merge_request_line(mr) for mr in result.merge_requests)
    if result.status == "up-to-date":
        return f"{result.branch} already up to date at {result.base_commit[:12]}: nothing to commit\n"
    if result.status == "dry-run":
        return "".join(unified_diff(c.edit, c.file) for c in result.changes if c.edit.changed)
    lines = [f"pushed {result.commit} to {result.branch} of {result.repo_url}\n"]
    for change in result.changes:
        lines.extend(f"  {change.environment}: {describe_change(c)}\n" for c in change.edit.changes)
    return "".join(lines)


def _merge_request_line(mr: MergeRequestResult) -> str:
    where = f" !{mr.iid} {mr.web_url}" if mr.iid is not None else ""
    return f"{mr.app} {mr.environment}: {mr.action}{where} ({mr.source_branch})\n"


def deploy_dotenv(result: DeployResult) -> tuple[dict[str, str], dict[str, str]]:
    """The variables later jobs always get, and the per-environment ones that come after them (within
    GitLab's 5 KB). One app: `GITOPS_IMAGE_<ENV>`, `GITOPS_MR_URL_<ENV>` …; several apps (promote
    --all-apps): `GITOPS_IMAGE_<APP>_<ENV>` … so that no app's value hides another's."""
    required = {
        "GITOPS_STATUS": result.status,
        "GITOPS_COMMIT_SHA": result.commit or result.base_commit,
        "GITOPS_BASE_COMMIT_SHA": result.base_commit,
        "GITOPS_BRANCH": result.branch,
        "GITOPS_REPO_URL": result.repo_url,
        "GITOPS_CHANGED": "true" if result.changed_files else "false",
        "GITOPS_ENVIRONMENTS": " ".join(dict.fromkeys(c.environment for c in result.changes)),
    }
    if result.defaults.app_name_template is not None:  # the repo's gitops-ci.yaml: for later sync and wait
        required["GITOPS_PATH_TEMPLATE"] = result.defaults.path_template
        required["GITOPS_ARGOCD_APP_NAME_TEMPLATE"] = result.defaults.app_name_template
    apps = list(dict.fromkeys([*(c.app for c in result.changes), *(m.app for m in result.merge_requests)]))

    def key(prefix: str, app: str, environment: str) -> str:
        scope = f"{env_key(app)}_" if len(apps) > 1 else ""
        return f"GITOPS_{prefix}_{scope}{env_key(environment)}"

    optional = {"GITOPS_APPS": " ".join(apps), "GITOPS_CHANGED_FILES": " ".join(result.changed_files)}
    for change in result.changes:
        if change.edit.changes:
            last = change.edit.changes[-1]
            optional[key("IMAGE", change.app, change.environment)] = image_of(last.name, last.after)
    for mr in result.merge_requests:
        if mr.iid is not None and mr.web_url:
            optional[key("MR_URL", mr.app, mr.environment)] = mr.web_url
            optional[key("MR_IID", mr.app, mr.environment)] = str(mr.iid)
            optional[key("MR_ACTION", mr.app, mr.environment)] = mr.action
    return required, optional
