"""`gitops-ci sync` and `gitops-ci wait` against the Argo CD contract server (webhook and API)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from conftest import CliResult, CliRunner
from servers.argo_status import BranchHeads, Scenario
from servers.argocd_api import ArgoApp, ArgoCDServer

if TYPE_CHECKING:
    from servers.sync_fixtures import TLSMaterial

pytest_plugins = ["servers.sync_fixtures"]
pytestmark = pytest.mark.integration

REPO = "https://gitlab.example.com/platform/manifests"
PUSHED = "4f1c2e3d4b5a69788796a5b4c3d2e1f0a9b8c7d6"
OLD = "1111111111111111111111111111111111111111"
FAST = ("--interval", "0.01")


def overlay_app(name: str, app: str, env: str, **kwargs: Any) -> ArgoApp:
    """An app on the manifest repo's main branch that only refreshes when its own overlay changes."""
    return ArgoApp(
        name,
        REPO + ".git",
        "main",
        f"kustomize/{app}/overlays/{env}",
        manifest_generate_paths=".",
        initial_revision=OLD,
        **kwargs,
    )


@pytest.fixture
def webhook_env(argocd_server: ArgoCDServer, monkeypatch: pytest.MonkeyPatch) -> str:
    assert argocd_server.webhook_secret
    monkeypatch.setenv("GITOPS_WEBHOOK_SECRET", argocd_server.webhook_secret)
    monkeypatch.setenv("GITOPS_BACKOFF_SECONDS", "0.01")
    return argocd_server.webhook_secret


def webhook(gitops: CliRunner, server: ArgoCDServer, *args: str) -> CliResult:
    return gitops(
        "sync",
        "--argocd-webhook",
        f"{server.url}/api/webhook",
        "--repo-url",
        f"{REPO}.git",
        "--branch",
        "main",
        "--revision",
        PUSHED,
        "--app",
        "web",
        "--env",
        "dev",
        *args,
    )


def webhook_calls(server: ArgoCDServer) -> list[int]:
    return [c.status for c in server.calls if c.path == "/api/webhook"]


# --------------------------------------------------------------------------- webhook


def test_webhook_refreshes_exactly_the_deployed_app(
    gitops: CliRunner, argocd_server: ArgoCDServer, branch_heads: BranchHeads, webhook_env: str
) -> None:
    for app in (
        overlay_app("web-dev", "web", "dev"),
        overlay_app("web-prod", "web", "prod"),
        overlay_app("db-dev", "db", "dev"),
        ArgoApp("web-release", REPO, "release"),
        ArgoApp("other-repo", "https://gitlab.example.com/platform/other", "main"),
    ):
        argocd_server.add_app(app)
    branch_heads["main"] = PUSHED

    result = webhook(gitops, argocd_server, "--before", OLD)

    assert result.code == 0, result.err
    assert argocd_server.refreshed == ["argocd/web-dev"]
    call = argocd_server.calls[-1]
    assert call.headers["X-Gitlab-Event"] == "Push Hook"
    assert (call.body["ref"], call.body["before"], call.body["after"]) == ("refs/heads/main", OLD, PUSHED)
    assert call.body["project"]["web_url"] == REPO
    assert call.body["commits"][0]["modified"] == ["kustomize/web/overlays/dev/kustomization.yaml"]
    assert result.out == f"argocd-webhook: {REPO} main at {PUSHED[:12]}: sent\n"
    assert webhook_env not in result.out + result.err


def test_webhook_settings_from_the_deploy_dotenv_variables(
    gitops: CliRunner, argocd_server: ArgoCDServer, webhook_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for env in ("dev", "staging", "prod"):
        argocd_server.add_app(overlay_app(f"web-{env}", "web", env))
    for name, value in {
        "GITOPS_REPO_URL": REPO + ".git",
        "GITOPS_BRANCH": "main",
        "GITOPS_COMMIT_SHA": PUSHED,
        "GITOPS_APP_NAME": "web",
        "GITOPS_ENVIRONMENTS": "dev prod",
    }.items():
        monkeypatch.setenv(name, value)

    result = gitops("sync", "--argocd-webhook", f"{argocd_server.url}/api/webhook", "--format", "json")

    assert result.code == 0, result.err
    assert sorted(argocd_server.refreshed) == ["argocd/web-dev", "argocd/web-prod"]
    action = json.loads(result.out)["actions"][0]
    assert action["outcome"] == "sent"
    assert action["request"]["headers"]["X-Gitlab-Token"] == "[MASKED]"


def test_wrong_webhook_secret_names_the_variable_and_is_not_retried(
    gitops: CliRunner, argocd_server: ArgoCDServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    argocd_server.add_app(overlay_app("web-dev", "web", "dev"))
    monkeypatch.setenv("GITOPS_WEBHOOK_SECRET", "not-the-webhook-secret")

    result = webhook(gitops, argocd_server)

    assert result.code == 1
    assert "GITOPS_WEBHOOK_SECRET was rejected by" in result.err
    assert "X-Gitlab-Token validation failed" in result.err
    assert "not-the-webhook-secret" not in result.out + result.err
    assert webhook_calls(argocd_server) == [400]
    assert argocd_server.refreshed == []


def test_queue_full_503_is_retried_with_backoff(
    gitops: CliRunner, argocd_server: ArgoCDServer, webhook_env: str
) -> None:
    argocd_server.add_app(overlay_app("web-dev", "web", "dev"))
    argocd_server.fail_next_webhooks(2)

    result = webhook(gitops, argocd_server)

    assert result.code == 0, result.err
    assert webhook_calls(argocd_server) == [503, 503, 200]
    assert "Queue is full" in result.err and "retrying" in result.err
    assert argocd_server.refreshed == ["argocd/web-dev"]


def test_retries_are_bounded(gitops: CliRunner, argocd_server: ArgoCDServer, webhook_env: str) -> None:
    argocd_server.fail_next_webhooks(10)

    result = webhook(gitops, argocd_server, "--max-attempts", "3")

    assert result.code == 1
    assert "failed after 3 attempts" in result.err and "503" in result.err
    assert webhook_calls(argocd_server) == [503, 503, 503]


def test_dry_run_prints_the_request_with_the_secret_masked_and_sends_nothing(
    gitops: CliRunner, argocd_server: ArgoCDServer, webhook_env: str
) -> None:
    result = webhook(gitops, argocd_server, "--dry-run")

    assert result.code == 0, result.err
    assert argocd_server.calls == []
    assert f"POST {argocd_server.url}/api/webhook" in result.out
    assert "X-Gitlab-Token: [MASKED]" in result.out
    assert '"modified": [' in result.out and "would send" in result.out
    assert webhook_env not in result.out + result.err


def test_bad_input_exits_2(gitops: CliRunner, argocd_server: ArgoCDServer) -> None:
    no_target = gitops("sync", "--revision", PUSHED)
    two_targets = webhook(gitops, argocd_server, "--argocd-server", argocd_server.url)
    not_a_sha = gitops("sync", "--argocd-webhook", argocd_server.url, "--revision", "main")
    local_repo = gitops(
        "sync", "--argocd-webhook", argocd_server.url, "--repo-url", "/srv/manifests.git",
        "--branch", "main", "--revision", PUSHED,
    )  # fmt: skip

    assert [r.code for r in (no_target, two_targets, not_a_sha, local_repo)] == [2, 2, 2, 2]
    assert "choose one sync target" in no_target.err
    assert "is not a commit SHA" in not_a_sha.err
    assert "must be the repo's https URL" in local_repo.err
    assert argocd_server.calls == []


def test_webhook_over_tls_needs_the_ca_file(
    gitops: CliRunner, branch_heads: BranchHeads, loopback_tls: TLSMaterial, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITOPS_BACKOFF_SECONDS", "0.01")
    with ArgoCDServer(head=branch_heads, ssl_context=loopback_tls.server_context()) as server:
        server.add_app(overlay_app("web-dev", "web", "dev"))
        untrusted = webhook(gitops, server, "--max-attempts", "1")
        trusted = webhook(gitops, server, "--ca-file", str(loopback_tls.ca_file))

    assert untrusted.code == 1
    assert "TLS verification" in untrusted.err and "--ca-file" in untrusted.err
    assert trusted.code == 0, trusted.err
    assert server.refreshed == ["argocd/web-dev"]


# --------------------------------------------------------------------------- API sync and wait


def api(gitops: CliRunner, server: ArgoCDServer, command: str, *args: str) -> CliResult:
    extra = FAST if command == "wait" else ()
    return gitops(
        command, "--argocd-server", server.url, "--app", "web", "--env", "dev", "--revision", PUSHED,
        *extra, *args,
    )  # fmt: skip


@pytest.fixture
def shop_token(argocd_server: ArgoCDServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A project-role token for web-dev only: what the README tells teams to create."""
    token = argocd_server.add_project_token("shop", "ci", apps=["web-dev"])
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", token)
    return token


def test_api_sync_with_a_project_token_then_wait_until_synced_and_healthy(
    gitops: CliRunner, argocd_server: ArgoCDServer, branch_heads: BranchHeads, shop_token: str
) -> None:
    argocd_server.add_app(overlay_app("web-dev", "web", "dev", project="shop"))
    branch_heads["main"] = PUSHED

    synced = api(gitops, argocd_server, "sync", "--prune")
    waited = api(gitops, argocd_server, "wait", "--format", "json")

    assert synced.code == 0, synced.err
    assert synced.out == "argocd-api: web-dev: sync started\n"
    sync_call = next(c for c in argocd_server.calls if c.path.endswith("/sync"))
    assert sync_call.body == {"name": "web-dev", "prune": True, "revision": PUSHED}
    assert sync_call.principal == "proj:shop:ci"
    assert waited.code == 0, waited.err
    data = json.loads(waited.out)
    assert data["status"] == "ready"
    assert data["targets"] == [
        {
            "name": "web-dev",
            "kind": "argocd-application",
            "state": "ready",
            "revision": PUSHED,
            "short_revision": PUSHED[:12],
            "status": "Synced, Healthy, operation Succeeded",
            "messages": [],
        }
    ]
    progress = [line for line in waited.err.splitlines() if line.startswith("web-dev: ")]
    assert progress == [
        f"web-dev: OutOfSync, Progressing, operation Running at {PUSHED[:12]}",
        f"web-dev: Synced, Progressing, operation Succeeded at {PUSHED[:12]}",
        f"web-dev: Synced, Healthy, operation Succeeded at {PUSHED[:12]}",
    ]
    assert shop_token not in synced.out + synced.err + waited.out + waited.err


def test_wait_polls_quietly_while_nothing_changes(
    gitops: CliRunner, branch_heads: BranchHeads, shop_token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ArgoCDServer(head=branch_heads, polls_per_step=4) as server:
        server.add_app(overlay_app("web-dev", "web", "dev", project="shop"))
        token = server.add_project_token("shop", "ci", apps=["web-dev"])
        monkeypatch.setenv("ARGOCD_AUTH_TOKEN", token)
        branch_heads["main"] = PUSHED
        assert api(gitops, server, "sync").code == 0
        waited = api(gitops, server, "wait")
        gets = [c for c in server.calls if c.method == "GET"]

    assert waited.code == 0, waited.err
    assert len(gets) >= 10
    assert len([line for line in waited.err.splitlines() if line.startswith("web-dev: ")]) == 4
    assert waited.out == f"web-dev: Synced, Healthy, operation Succeeded at {PUSHED[:12]}: ready\n"


def test_auto_sync_app_refuses_a_pinned_sync_so_it_is_refreshed_instead(
    gitops: CliRunner, argocd_server: ArgoCDServer, branch_heads: BranchHeads, shop_token: str
) -> None:
    argocd_server.add_app(overlay_app("web-dev", "web", "dev", project="shop", auto_sync=True))
    branch_heads["main"] = PUSHED

    synced = api(gitops, argocd_server, "sync")
    waited = api(gitops, argocd_server, "wait")

    assert synced.code == 0, synced.err
    assert synced.out == "argocd-api: web-dev: refresh requested (auto-sync)\n"
    assert waited.code == 0, waited.err
    final = argocd_server.application("web-dev")["status"]
    assert final["operationState"]["operation"]["initiatedBy"] == {"automated": True}


def test_token_without_sync_permission_names_the_variable_and_the_grant(
    gitops: CliRunner, argocd_server: ArgoCDServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    argocd_server.add_app(overlay_app("web-dev", "web", "dev", project="shop"))
    reader = argocd_server.add_project_token("shop", "reader", apps=["web-dev"], actions=["get"])
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", reader)

    result = api(gitops, argocd_server, "sync")

    assert result.code == 1
    assert "ARGOCD_AUTH_TOKEN may not sync application web-dev" in result.err
    assert "applications, sync, <project>/web-dev, allow" in result.err
    assert reader not in result.err + result.out
    assert len([c for c in argocd_server.calls if c.path.endswith("/sync")]) == 1, (
        "auth errors are not retried"
    )


def test_invalid_or_missing_token(
    gitops: CliRunner, argocd_server: ArgoCDServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    argocd_server.add_app(overlay_app("web-dev", "web", "dev"))
    missing = api(gitops, argocd_server, "wait")
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", "forged-token-value")
    forged = api(gitops, argocd_server, "wait")

    assert missing.code == 2 and "ARGOCD_AUTH_TOKEN" in missing.err
    assert forged.code == 1 and "ARGOCD_AUTH_TOKEN was rejected" in forged.err
    assert "forged-token-value" not in forged.err


@pytest.mark.parametrize(
    ("scenario", "reason"),
    [
        (
            Scenario.DEGRADED,
            'Deployment default/web-dev: Degraded: Deployment "web-dev" exceeded its progress',
        ),
        (Scenario.SYNC_FAILED, "operation Failed: one or more objects failed to apply"),
    ],
)
def test_wait_fails_fast_with_the_reason(
    gitops: CliRunner,
    argocd_server: ArgoCDServer,
    branch_heads: BranchHeads,
    shop_token: str,
    scenario: Scenario,
    reason: str,
) -> None:
    argocd_server.add_app(overlay_app("web-dev", "web", "dev", project="shop", scenario=scenario))
    branch_heads["main"] = PUSHED
    assert api(gitops, argocd_server, "sync").code == 0

    result = api(gitops, argocd_server, "wait", "--timeout", "1m", "--format", "json")

    assert result.code == 1
    assert "gitops-ci: error: web-dev failed: " in result.err
    assert reason in result.err
    data = json.loads(result.out)
    assert data["status"] == "failed" and data["elapsed_seconds"] < 5
    assert any(reason in message for message in data["targets"][0]["messages"])


def test_wait_times_out_with_the_last_status(
    gitops: CliRunner, argocd_server: ArgoCDServer, shop_token: str
) -> None:
    argocd_server.add_app(overlay_app("web-dev", "web", "dev", project="shop"))

    result = api(gitops, argocd_server, "wait", "--timeout", "0.3", "--interval", "0.05")

    assert result.code == 1
    assert f"web-dev was not synced and healthy at {PUSHED[:12]} within 0.3s" in result.err
    assert f"last status: Synced, Healthy at {OLD[:12]}" in result.err
    assert result.out == f"web-dev: Synced, Healthy at {OLD[:12]}: waiting\n"
