"""Where GitLab's REST API is for the manifest repo, and the token to reach it: shared by the python-gitlab
client (gitlab.py) and the plain-HTTP one of the API transport (gitlab_rest.py), which must not import the
former's dependencies."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from gitops_ci.errors import ConfigurationError
from gitops_ci.naming import check_http_url, check_project_path

GITLAB_URL_OPTION = "--gitlab-url (or CI_SERVER_URL)"
SCOPES_HINT = "a project or group access token with the api and write_repository scopes"


@dataclass(frozen=True)
class GitLabConnection:
    """GitLab's URL, the project, the token (never in repr) and the bounds of each exchange."""

    url: str
    project_path: str
    token: str = field(repr=False)
    token_variable: str
    ca_file: str | None = None
    timeout: float = 30.0
    max_attempts: int = 5  # of a GET, PUT or DELETE on 429, 5xx or no answer (a POST is sent once)
    backoff_seconds: float = 0.5


def connection_for(
    repo_url: str,
    gitlab_url: str | None,
    token: str | None,
    token_variable: str | None,
    ca_file: str | None,
    timeout: float = 30.0,
) -> GitLabConnection:
    """GitLab from --gitlab-url / CI_SERVER_URL, else the repo URL's host; project from the repo URL."""
    if token is None or token_variable is None:
        raise ConfigurationError(f"no GitLab token: set GITOPS_TOKEN to {SCOPES_HINT}")
    if token_variable == "CI_JOB_TOKEN":
        raise ConfigurationError(
            f"CI_JOB_TOKEN cannot create merge requests in another project; set GITOPS_TOKEN to {SCOPES_HINT}"
        )
    repo = urlsplit(repo_url)
    given = gitlab_url or os.environ.get("CI_SERVER_URL")
    base = check_http_url(given, GITLAB_URL_OPTION) if given else f"{repo.scheme}://{repo.netloc}"
    base = base.rstrip("/")
    prefix = urlsplit(base).path.rstrip("/")
    path = repo.path.removeprefix(prefix).strip("/").removesuffix(".git")
    if not path or "/" not in path:
        raise ConfigurationError(
            f"cannot tell the GitLab project from --repo-url {repo_url!r}; use group/project"
        )
    check_project_path(path, "the project of --repo-url")
    return GitLabConnection(base, path, token, token_variable, ca_file, timeout)
