"""`gitops-ci sync` / `wait` through the kubernetes API (Flux Kustomizations, Argo CD Applications) and
the Flux receiver, against the kube-apiserver and notification-controller contract servers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from conftest import CliResult, CliRunner
from servers.argo_status import BranchHeads
from servers.flux_receiver import REQUESTED_AT_ANNOTATION, FluxReceiverServer
from servers.kube_api import KubeAPIServer

if TYPE_CHECKING:
    from servers.sync_fixtures import TLSMaterial

pytest_plugins = ["servers.sync_fixtures"]
pytestmark = pytest.mark.integration

REPO = "https://gitlab.example.com/platform/manifests"
PUSHED = "4f1c2e3d4b5a69788796a5b4c3d2e1f0a9b8c7d6"
OLD = "1111111111111111111111111111111111111111"
AGENT_CONTEXT = "platform/agents:prod"  # what the GitLab agent's CI tunnel names its context
FAST = ("--interval", "0.01")


def write_kubeconfig(
    path: Path, server: str, token: str, ca_file: Path | None, *, decoy_token: str = "decoy"
) -> Path:
    """Two contexts: the GitLab agent's (right token) and a current-context with a token that fails."""
    cluster: dict[str, Any] = {"server": server}
    if ca_file is not None:
        cluster["certificate-authority"] = str(ca_file)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "gitlab", "cluster": cluster}],
        "users": [
            {"name": "agent", "user": {"token": token}},
            {"name": "decoy", "user": {"token": decoy_token}},
        ],
        "contexts": [
            {"name": AGENT_CONTEXT, "context": {"cluster": "gitlab", "user": "agent"}},
            {"name": "decoy", "context": {"cluster": "gitlab", "user": "decoy"}},
        ],
        "current-context": "decoy",
    }
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


@pytest.fixture
def kubeconfig(kube_api: KubeAPIServer, loopback_tls: TLSMaterial, tmp_path: Path) -> Path:
    return write_kubeconfig(tmp_path / "kubeconfig", kube_api.url, kube_api.token, loopback_tls.ca_file)


@pytest.fixture
def kube_env(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """As in a GitLab job with the agent: KUBECONFIG set, the context chosen by variable."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.setenv("GITOPS_KUBE_CONTEXT", AGENT_CONTEXT)
    monkeypatch.setenv("GITOPS_BACKOFF_SECONDS", "0.01")
    return kubeconfig


def flux(gitops: CliRunner, command: str, *args: str, ks: str = "flux-system/apps") -> CliResult:
    extra = ("--revision", PUSHED) if command == "wait" else ()
    return gitops(command, "--flux-kustomization", ks, *FAST, *extra, *args)


def annotation(kube: KubeAPIServer, plural: str, name: str) -> str | None:
    annotations = kube.get_object(plural, "flux-system", name)["metadata"].get("annotations") or {}
    return annotations.get(REQUESTED_AT_ANNOTATION)


# --------------------------------------------------------------------------- Flux Kustomization


def test_reconcile_with_source_then_wait_for_the_applied_revision(
    gitops: CliRunner, kube_api: KubeAPIServer, branch_heads: BranchHeads, kube_env: Path
) -> None:
    kube_api.add_git_repository("flux-system", url=REPO, revision=OLD)
    kube_api.add_kustomization("apps", source="flux-system", revision=OLD)
    branch_heads["main"] = PUSHED

    synced = flux(gitops, "sync", "--with-source")
    waited = flux(gitops, "wait", "--format", "json")

    assert synced.code == 0, synced.err
    requested = annotation(kube_api, "gitrepositories", "flux-system")
    assert requested and annotation(kube_api, "kustomizations", "apps") == requested
    assert synced.out == (
        "flux-kustomization: GitRepository flux-system/flux-system: sent\n"
        "flux-kustomization: Kustomization flux-system/apps: sent\n"
    )
    assert f"GitRepository flux-system/flux-system fetched main@sha1:{PUSHED}" in synced.err
    assert waited.code == 0, waited.err
    target = json.loads(waited.out)["targets"][0]
    assert (target["state"], target["revision"]) == ("ready", f"main@sha1:{PUSHED}")
    assert target["status"] == "Ready=True ReconciliationSucceeded"


def test_reconcile_without_source_and_wait(
    gitops: CliRunner, kube_api: KubeAPIServer, branch_heads: BranchHeads, kube_env: Path
) -> None:
    kube_api.add_kustomization("apps", source="no-such-source", revision=OLD)
    branch_heads["main"] = PUSHED

    synced = flux(gitops, "sync")
    waited = flux(gitops, "wait")

    assert synced.code == 0, synced.err
    assert annotation(kube_api, "kustomizations", "apps")
    assert waited.code == 0, waited.err
    assert (
        waited.out
        == f"flux-system/apps: Ready=True ReconciliationSucceeded at main@sha1:{PUSHED[:12]}: ready\n"
    )
    progress = [line for line in waited.err.splitlines() if line.startswith("flux-system/apps: ")]
    assert progress == [
        f"flux-system/apps: Ready=Unknown Progressing at main@sha1:{OLD[:12]}",
        f"flux-system/apps: Ready=True ReconciliationSucceeded at main@sha1:{PUSHED[:12]}",
    ]


def test_wait_fails_fast_when_the_kustomization_fails_at_the_revision(
    gitops: CliRunner, kube_api: KubeAPIServer, branch_heads: BranchHeads, kube_env: Path
) -> None:
    kube_api.add_git_repository("flux-system", url=REPO, revision=OLD)
    kube_api.add_kustomization("apps", source="flux-system", revision=OLD)
    kube_api.fail_kustomization("apps")
    branch_heads["main"] = PUSHED

    assert flux(gitops, "sync", "--with-source").code == 0
    result = flux(gitops, "wait", "--timeout", "1m")

    assert result.code == 1
    assert "gitops-ci: error: flux-system/apps failed: Ready=False HealthCheckFailed" in result.err
    assert "health check failed after 30s" in result.err
    assert f"at main@sha1:{PUSHED[:12]}" in result.err


def test_wait_timeout_explains_what_the_source_holds(
    gitops: CliRunner, kube_api: KubeAPIServer, branch_heads: BranchHeads, kube_env: Path
) -> None:
    kube_api.add_git_repository("flux-system", url=REPO, revision=OLD)
    kube_api.add_kustomization("apps", source="flux-system", revision=OLD)
    branch_heads["main"] = PUSHED  # nobody asks the source to fetch: it keeps the old artifact

    result = flux(gitops, "wait", "--timeout", "0.2", "--interval", "0.05")

    assert result.code == 1
    assert f"not synced and healthy at {PUSHED[:12]} within 0.2s" in result.err
    assert f"source GitRepository flux-system/flux-system at main@sha1:{OLD[:12]}" in result.err


def test_dry_run_patches_nothing(gitops: CliRunner, kube_api: KubeAPIServer, kube_env: Path) -> None:
    kube_api.add_kustomization("apps")
    before = kube_api.get_object("kustomizations", "flux-system", "apps")["metadata"]["resourceVersion"]

    result = flux(gitops, "sync", "--with-source", "--dry-run")

    assert result.code == 0, result.err
    assert kube_api.calls == []
    assert (
        kube_api.get_object("kustomizations", "flux-system", "apps")["metadata"]["resourceVersion"] == before
    )
    assert (
        "PATCH /apis/kustomize.toolkit.fluxcd.io/v1/namespaces/flux-system/kustomizations/apps" in result.out
    )
    assert REQUESTED_AT_ANNOTATION in result.out and "would send" in result.out


def test_forbidden_patch_names_the_verb_and_the_identity(
    gitops: CliRunner, kube_api: KubeAPIServer, loopback_tls: TLSMaterial, tmp_path: Path
) -> None:
    kube_api.add_kustomization("apps")
    reader = kube_api.add_token("system:serviceaccount:ci:reader", verbs=["get"])
    config = write_kubeconfig(tmp_path / "reader", kube_api.url, reader, loopback_tls.ca_file)

    result = flux(gitops, "sync", "--kubeconfig", str(config), "--kube-context", AGENT_CONTEXT)

    assert result.code == 1
    assert 'User "system:serviceaccount:ci:reader" cannot patch resource "kustomizations"' in result.err
    assert "grant `patch`" in result.err and AGENT_CONTEXT in result.err
    assert reader not in result.err
    assert len(kube_api.calls) == 1, "authorization failures are not retried"


def test_the_kube_context_is_chosen_and_a_rejected_token_is_reported(
    gitops: CliRunner, kube_api: KubeAPIServer, kubeconfig: Path
) -> None:
    kube_api.add_kustomization("apps")

    current_context = flux(gitops, "sync", "--kubeconfig", str(kubeconfig))
    unknown_context = flux(gitops, "sync", "--kubeconfig", str(kubeconfig), "--kube-context", "nope")

    assert current_context.code == 1
    assert "kubernetes API rejected the credentials of kubeconfig" in current_context.err
    assert unknown_context.code == 2 and "nope" in unknown_context.err


def test_ca_file_is_used_when_the_kubeconfig_names_no_ca(
    gitops: CliRunner, kube_api: KubeAPIServer, loopback_tls: TLSMaterial, tmp_path: Path
) -> None:
    kube_api.add_kustomization("apps")
    config = write_kubeconfig(tmp_path / "no-ca", kube_api.url, kube_api.token, None)
    args = ("--kubeconfig", str(config), "--kube-context", AGENT_CONTEXT, "--max-attempts", "1")

    untrusted = flux(gitops, "sync", *args)
    trusted = flux(gitops, "sync", *args, "--ca-file", str(loopback_tls.ca_file))

    assert untrusted.code == 1 and "TLS verification of the kubernetes API failed" in untrusted.err
    assert trusted.code == 0, trusted.err


def test_no_cluster_access_configured_is_bad_input(gitops: CliRunner) -> None:
    result = flux(gitops, "wait")

    assert result.code == 2
    assert "no cluster access: set KUBECONFIG" in result.err


def test_bad_object_reference_is_bad_input(gitops: CliRunner, kube_env: Path) -> None:
    result = flux(gitops, "sync", ks="apps")

    assert result.code == 2 and "NAMESPACE/NAME" in result.err


# --------------------------------------------------------------------------- Argo CD Applications


def test_wait_reads_argocd_application_objects(
    gitops: CliRunner,
    kube_api: KubeAPIServer,
    branch_heads: BranchHeads,
    kube_env: Path,
    loopback_tls: TLSMaterial,
) -> None:
    from kubernetes import client as k8s

    kube_api.add_application("web-dev", repo_url=REPO, revision=OLD)
    kube_api.add_application("web-prod", repo_url=REPO, revision=OLD)
    branch_heads["main"] = PUSHED
    # What Argo CD does after the webhook for an auto-sync app: start a sync operation.
    configuration = k8s.Configuration(
        host=kube_api.url,
        api_key={"authorization": f"Bearer {kube_api.token}"},
        ssl_ca_cert=str(loopback_tls.ca_file),
    )
    with k8s.ApiClient(configuration) as api_client:
        objects = k8s.CustomObjectsApi(api_client)
        for name in ("web-dev", "web-prod"):
            objects.patch_namespaced_custom_object(
                "argoproj.io", "v1alpha1", "argocd", "applications", name,
                {"operation": {"sync": {"revision": PUSHED}, "initiatedBy": {"automated": True}}},
                _content_type="application/merge-patch+json",
            )  # fmt: skip

    result = gitops(
        "wait", "--argocd-kube", "--app", "web", "--env", "dev", "--env", "prod", "--revision", PUSHED, *FAST
    )

    assert result.code == 0, result.err
    assert result.out == "".join(
        f"web-{env}: Synced, Healthy, operation Succeeded at {PUSHED[:12]}: ready\n"
        for env in ("dev", "prod")
    )


# --------------------------------------------------------------------------- Flux receiver


def test_receiver_push_hook_then_wait_for_the_kustomization(
    gitops: CliRunner,
    flux_receiver: FluxReceiverServer,
    kube_api: KubeAPIServer,
    branch_heads: BranchHeads,
    kube_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kube_api.add_git_repository("flux-system", url=REPO, revision=OLD)
    kube_api.add_kustomization("flux-system", revision=OLD)
    flux_receiver.annotate = kube_api.request_reconcile
    branch_heads["main"] = PUSHED
    monkeypatch.setenv("GITOPS_WEBHOOK_SECRET", flux_receiver.receivers[0].token)

    synced = gitops(
        "sync", "--flux-receiver", flux_receiver.webhook_url(), "--repo-url", REPO, "--branch", "main",
        "--revision", PUSHED,
    )  # fmt: skip
    waited = flux(gitops, "wait", ks="flux-system/flux-system")

    assert synced.code == 0, synced.err
    assert [(r.kind, r.name) for r in flux_receiver.reconcile_requests] == [
        ("GitRepository", "flux-system"),
        ("Kustomization", "flux-system"),
    ]
    assert flux_receiver.calls[-1].headers["X-Gitlab-Event"] == "Push Hook"
    assert waited.code == 0, waited.err
    assert f"at main@sha1:{PUSHED[:12]}: ready" in waited.out


def test_receiver_wrong_token_and_wrong_path(
    gitops: CliRunner, flux_receiver: FluxReceiverServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITOPS_WEBHOOK_SECRET", "not-the-receiver-token")
    common = ("--repo-url", REPO, "--branch", "main", "--revision", PUSHED)

    wrong_token = gitops("sync", "--flux-receiver", flux_receiver.webhook_url(), *common)
    wrong_path = gitops("sync", "--flux-receiver", f"{flux_receiver.url}/hook/{'0' * 64}", *common)
    monkeypatch.delenv("GITOPS_WEBHOOK_SECRET")
    no_token = gitops("sync", "--flux-receiver", flux_receiver.webhook_url(), *common)

    assert (
        wrong_token.code == 1 and "GITOPS_WEBHOOK_SECRET was rejected by the Flux receiver" in wrong_token.err
    )
    assert "not-the-receiver-token" not in wrong_token.err
    assert wrong_path.code == 1 and "no Flux receiver at" in wrong_path.err
    assert no_token.code == 2 and "GITOPS_WEBHOOK_SECRET" in no_token.err
    assert flux_receiver.reconcile_requests == []
