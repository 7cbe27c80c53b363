"""The GitLab Push Hook that gitops-ci sends on GitLab's behalf, so Argo CD and Flux react to its commit at
once instead of at their next poll. Pure: values in, the JSON body out.

Argo CD (`util/webhook/webhook.go`) matches `project.web_url` against each app's repoURL (scheme, user,
`.git` and case ignored), `ref` against its targetRevision (`HEAD` matches pushes to
`project.default_branch`), and, for apps with `argocd.argoproj.io/manifest-generate-paths`, the files in
`commits[].added/modified/removed` against those paths. Flux receivers only check the token and the event.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from gitops_ci.errors import ConfigurationError

ZERO_SHA = "0" * 40
_SCP_URL = re.compile(r"(?:[^@/]+@)?(?P<host>[^:/]+):(?P<path>[^/].*)")


def project_web_url(repo_url: str) -> tuple[str, str]:
    """(web_url, path_with_namespace) as GitLab reports them, from an https, ssh or scp-style URL."""
    parts = urlsplit(repo_url)
    if parts.scheme in ("http", "https", "ssh") and parts.hostname:
        port = f":{parts.port}" if parts.port and parts.scheme != "ssh" else ""
        scheme, host, path = (
            ("https" if parts.scheme == "ssh" else parts.scheme),
            parts.hostname + port,
            parts.path,
        )
    elif (match := _SCP_URL.fullmatch(repo_url)) and "://" not in repo_url:
        scheme, host, path = "https", match["host"], match["path"]
    else:
        raise ConfigurationError(f"--repo-url {repo_url!r} must be the repo's https URL, as Argo CD knows it")
    path = path.strip("/").removesuffix(".git").strip("/")
    if not path:
        raise ConfigurationError(f"--repo-url {repo_url!r} names no project")
    return f"{scheme}://{host}/{path}", path


def changed_overlay_files(
    path_template: str | None, app: str | None, environments: Sequence[str]
) -> tuple[str, ...]:
    """The files a deploy of `app` to `environments` changes, for callers that do not list them."""
    if not app or not environments:
        return ()
    from gitops_ci.change.settings import DEFAULT_PATH_TEMPLATE, overlay_path  # imports git: only if needed

    template = path_template or DEFAULT_PATH_TEMPLATE
    return tuple(f"{overlay_path(template, app, env)}/kustomization.yaml" for env in environments)


def push_hook_payload(
    *,
    repo_url: str,
    branch: str,
    default_branch: str,
    before: str | None,
    after: str,
    changed_files: Sequence[str],
) -> dict[str, Any]:
    """A push of one commit, `before` → `after`, on `branch`; the files it changed are all "modified"
    (a deploy edits existing overlays; Argo CD treats the three lists alike)."""
    web_url, path = project_web_url(repo_url)
    project = {
        "name": path.rsplit("/", 1)[-1],
        "path_with_namespace": path,
        "web_url": web_url,
        "git_http_url": f"{web_url}.git",
        "default_branch": default_branch,
    }
    commit = {
        "id": after,
        "url": f"{web_url}/-/commit/{after}",
        "added": [],
        "modified": list(changed_files),
        "removed": [],
    }
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": before or ZERO_SHA,
        "after": after,
        "ref": f"refs/heads/{branch}",
        "checkout_sha": after,
        "user_username": "gitops-ci",
        "project": project,
        "repository": {"name": project["name"], "url": project["git_http_url"], "homepage": web_url},
        "commits": [commit],
        "total_commits_count": 1,
    }
