"""`gitops-ci deploy --sync --wait`: the real git server, then the Argo CD contract server, in one command."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CliResult, CliRunner
from manifests import manifest_files
from servers.argo_status import Scenario
from servers.argocd_api import ArgoApp, ArgoCDServer
from servers.git_repos import make_bare_repo, rev_parse
from servers.gitserver import GitHttpServer

pytest_plugins = ["servers.git_fixtures"]
pytestmark = pytest.mark.integration
REPO = "group/manifests.git"


@pytest.fixture
def repo(git_server: GitHttpServer) -> Path:
    return make_bare_repo(git_server.root, REPO, manifest_files(["app0"]))


@pytest.fixture
def argocd(repo: Path, git_server: GitHttpServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ArgoCDServer]:
    """Argo CD watching the manifest repo; the head of a branch is read from the real bare repository."""
    with ArgoCDServer(
        head=lambda branch: rev_parse(repo, branch),
        webhook_secret=secrets.token_hex(16),
        admin_token=secrets.token_hex(16),
    ) as server:
        for env in ("dev", "prod"):
            server.add_app(
                ArgoApp(
                    f"app0-{env}",
                    git_server.url_for(REPO),
                    "main",
                    f"kustomize/app0/overlays/{env}",
                    manifest_generate_paths=".",
                    auto_sync=True,
                )
            )
        assert server.webhook_secret and server.admin_token
        monkeypatch.setenv("GITOPS_WEBHOOK_SECRET", server.webhook_secret)
        monkeypatch.setenv("ARGOCD_AUTH_TOKEN", server.admin_token)
        yield server


def deploy(gitops: CliRunner, git_server: GitHttpServer, argocd: ArgoCDServer, *args: str) -> CliResult:
    return gitops(
        "deploy",
        "--repo-url",
        git_server.url_for(REPO),
        "--ca-file",
        git_server.ca_file,
        "--app",
        "app0",
        "--env",
        "prod",
        "--image",
        "registry.example.com/shop/app0:2.0",
        "--sync",
        "--argocd-webhook",
        f"{argocd.url}/api/webhook",
        "--wait",
        "--argocd-server",
        argocd.url,
        "--interval",
        "0.01",
        "--timeout",
        "20s",
        "--format",
        "json",
        *args,
    )


@pytest.fixture(autouse=True)
def token(git_server: GitHttpServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITOPS_TOKEN", git_server.token)


def test_push_then_webhook_then_wait_until_healthy(
    gitops: CliRunner, git_server: GitHttpServer, argocd: ArgoCDServer, repo: Path
) -> None:
    result = deploy(gitops, git_server, argocd)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    pushed = rev_parse(repo, "main")
    assert data["commit"] == pushed
    assert argocd.refreshed == ["argocd/app0-prod"]  # only the deployed environment's app
    assert data["wait"]["status"] == "ready" and data["wait"]["revision"] == pushed
    assert [(t["name"], t["state"]) for t in data["wait"]["targets"]] == [("app0-prod", "ready")]
    assert data["sync"]["revision"] == pushed


def test_degraded_app_fails_after_reporting_the_landed_commit(
    gitops: CliRunner, git_server: GitHttpServer, argocd: ArgoCDServer, repo: Path
) -> None:
    argocd.set_scenario("app0-prod", Scenario.DEGRADED)
    result = deploy(gitops, git_server, argocd)
    assert result.code == 1
    assert json.loads(result.out)["commit"] == rev_parse(repo, "main")  # the deploy is still reported
    assert "Degraded" in result.err


def test_bad_follow_up_options_fail_before_pushing(
    gitops: CliRunner, git_server: GitHttpServer, argocd: ArgoCDServer, repo: Path
) -> None:
    head = rev_parse(repo, "main")
    result = gitops(
        "deploy",
        "--repo-url",
        git_server.url_for(REPO),
        "--ca-file",
        git_server.ca_file,
        "--app",
        "app0",
        "--env",
        "prod",
        "--image",
        "registry.example.com/shop/app0:2.0",
        "--wait",
    )
    assert result.code == 2
    assert "--wait reads the status from one of" in result.err
    assert rev_parse(repo, "main") == head
