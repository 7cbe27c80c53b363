"""git's environment: credentials only in headers scoped to the server, no redirects, bounded stalls."""

from __future__ import annotations

import pytest

from gitops_ci.errors import ConfigurationError
from gitops_ci.manifest_repo.credentials import (
    Credentials,
    check_repo_url,
    git_environment,
    resolve_credentials,
)


def settings_of(env: dict[str, str]) -> dict[str, str]:
    count = int(env["GIT_CONFIG_COUNT"])
    return {env[f"GIT_CONFIG_KEY_{i}"]: env[f"GIT_CONFIG_VALUE_{i}"] for i in range(count)}


def test_the_token_is_a_header_for_that_server_only_and_never_in_the_url() -> None:
    credentials = Credentials("oauth2", "glpat-secret-token", "GITOPS_TOKEN")
    env = git_environment(
        "https://gitlab.example.com/g/m.git", credentials, "/ca.pem", base={}, stall_seconds=20
    )
    config = settings_of(env)
    header = config["http.https://gitlab.example.com/.extraHeader"]
    assert header.startswith("Authorization: Basic ") and "glpat-secret-token" not in header
    assert config["http.followRedirects"] == "false" and config["credential.helper"] == ""
    assert config["http.lowSpeedTime"] == "20" and config["protocol.allow"] == "never"
    assert env["GIT_SSL_CAINFO"] == "/ca.pem" and env["GIT_SSL_CAPATH"] == "" and env["LC_ALL"] == "C"
    assert not any("glpat-secret-token" in value for value in env.values())


def test_credentials_come_from_the_documented_variables_in_order() -> None:
    assert resolve_credentials({}) is None
    seed = resolve_credentials({"GITOPS_USERNAME": "deployer", "GITOPS_PASSWORD": "pw-1234"})
    assert seed is not None and (seed.username, seed.variable) == ("deployer", "GITOPS_PASSWORD")
    token = resolve_credentials(
        {"GITOPS_TOKEN": "tok-1234", "GITOPS_PASSWORD": "pw-1234", "CI_JOB_TOKEN": "job"}
    )
    assert token is not None and token.variable == "GITOPS_TOKEN"
    job = resolve_credentials({"CI_JOB_TOKEN": "job-1234"})
    assert job is not None and (job.username, job.variable) == ("gitlab-ci-token", "CI_JOB_TOKEN")


@pytest.mark.parametrize(
    "url",
    [
        "ext::sh -c id",
        "--upload-pack=id",
        "https://user:tok@gitlab.example.com/g/m.git",
        "fd::17",
        "https://x/ y",
    ],
)
def test_urls_git_would_read_as_something_else_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        check_repo_url(url)
