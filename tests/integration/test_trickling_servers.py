"""Servers that trickle their answer, a byte at a time, faster than any read timeout: every HTTP client of
gitops-ci (its own GitLab API transport, python-gitlab, requests for Argo CD and Flux, the kubernetes client)
gives up once the whole answer has taken --network-timeout (or the wait's deadline), not never. And one that
floods: an answer is read up to a bound, not into memory whatever its size; and a kubeconfig credential
plugin that never finishes is given up on like a request."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import CliRunner
from manifests import manifest_files
from servers.git_repos import make_bare_repo
from servers.gitserver import GitHttpServer
from servers.hostile import HttpPeer, kubeconfig
from servers.tls import TlsMaterial

pytest_plugins = ["servers.git_fixtures"]
pytestmark = pytest.mark.integration

SHA = "4f1c2e3d4b5a69788796a5b4c3d2e1f0a9b8c7d6"
IMAGE = "registry.example.com/shop/app0:2.0.0"


@pytest.fixture
def trickler(tls_material: TlsMaterial) -> Iterator[HttpPeer]:
    with HttpPeer(tls_material, trickle=0.1) as peer:
        yield peer


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITOPS_BACKOFF_SECONDS", "0.05")
    monkeypatch.setenv("GITOPS_TOKEN", "glpat-trickled")
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", "argocd-token")
    monkeypatch.setenv("GITOPS_WEBHOOK_SECRET", "webhook-secret")


def timed(gitops: CliRunner, *args: str | Path) -> tuple[int, str, float]:
    started = time.monotonic()
    result = gitops(*args)
    return result.code, result.err, time.monotonic() - started


def test_the_api_transport_gives_up_on_a_trickled_answer(
    gitops: CliRunner, trickler: HttpPeer, tls_material: TlsMaterial
) -> None:
    code, err, elapsed = timed(
        gitops, "deploy", "--transport", "api", "--repo-url", f"{trickler.url}/group/manifests.git",
        "--branch", "main", "--app", "app0", "--env", "dev", "--image", IMAGE, "--ca-file",
        tls_material.ca_file, "--network-timeout", "1s", "--max-attempts", "2",
    )  # fmt: skip
    assert code == 1 and "did not answer in full within 1s" in err, err
    # gitops-ci.yaml and the overlay read together, then gitops-ci.yaml alone: one bound per attempt
    assert len(trickler.seen) == 3 and elapsed < 6, elapsed


def test_merge_requests_give_up_on_a_trickled_answer(
    gitops: CliRunner, git_server: GitHttpServer, trickler: HttpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_bare_repo(git_server.root, "group/manifests.git", manifest_files(["app0"]))
    monkeypatch.setenv("GITOPS_TOKEN", git_server.token)
    code, err, elapsed = timed(
        gitops, "deploy", "--mode", "merge-request", "--repo-url", git_server.url_for("group/manifests.git"),
        "--gitlab-url", trickler.url, "--app", "app0", "--env", "dev", "--image", IMAGE, "--ca-file",
        git_server.ca_file, "--network-timeout", "1s", "--max-attempts", "2",
    )  # fmt: skip
    assert code == 1 and "did not answer in full within 1s" in err, err
    assert 1 <= len(trickler.seen) <= 4 and elapsed < 12, elapsed


@pytest.mark.parametrize("target", ["--argocd-server", "--argocd-webhook"])
def test_argocd_sync_gives_up_on_a_trickled_answer(
    gitops: CliRunner, trickler: HttpPeer, tls_material: TlsMaterial, target: str
) -> None:
    url = trickler.url + ("/api/webhook" if target == "--argocd-webhook" else "")
    code, err, elapsed = timed(
        gitops, "sync", target, url, "--repo-url", "https://gitlab.example.com/group/manifests.git",
        "--branch", "main", "--revision", SHA, "--app", "web", "--env", "dev", "--ca-file",
        tls_material.ca_file, "--network-timeout", "1s", "--max-attempts", "2",
    )  # fmt: skip
    assert code == 1 and "did not answer in full within 1s" in err, err
    assert len(trickler.seen) == 2 and elapsed < 6, elapsed


def test_wait_returns_at_its_deadline_while_argocd_trickles(
    gitops: CliRunner, trickler: HttpPeer, tls_material: TlsMaterial
) -> None:
    code, err, elapsed = timed(
        gitops, "wait", "--argocd-server", trickler.url, "--app", "web", "--env", "dev", "--revision", SHA,
        "--timeout", "3s", "--interval", "1s", "--ca-file", tls_material.ca_file,
    )  # fmt: skip
    assert code == 1 and "within 3s" in err, err
    assert elapsed < 6, elapsed


def test_the_kubernetes_client_gives_up_on_a_trickled_answer(
    gitops: CliRunner, trickler: HttpPeer, tls_material: TlsMaterial, tmp_path: Path
) -> None:
    config = kubeconfig(tmp_path / "kubeconfig", trickler.url, tls_material.ca_file, {"token": "kube-token"})
    code, err, elapsed = timed(
        gitops, "sync", "--flux-kustomization", "flux-system/apps", "--kubeconfig", config,
        "--network-timeout", "1s", "--max-attempts", "2",
    )  # fmt: skip
    assert code == 1 and "did not answer in full within 1s" in err, err
    assert 1 <= len(trickler.seen) <= 2 and elapsed < 6, elapsed


def test_argocd_answers_are_read_up_to_a_bound(gitops: CliRunner, tls_material: TlsMaterial) -> None:
    with HttpPeer(tls_material, flood=17 << 20) as flooder:
        code, err, _ = timed(
            gitops, "sync", "--argocd-server", flooder.url, "--repo-url",
            "https://gitlab.example.com/group/manifests.git", "--branch", "main", "--revision", SHA, "--app",
            "web", "--env", "dev", "--ca-file", tls_material.ca_file, "--max-attempts", "1",
        )  # fmt: skip
    assert code == 1 and "answered more than 16 MiB" in err, err


def test_a_credential_plugin_that_never_finishes_is_given_up_on(
    gitops: CliRunner, trickler: HttpPeer, tls_material: TlsMaterial, tmp_path: Path
) -> None:
    plugin = {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": "sleep", "args": ["20"]}
    config = kubeconfig(tmp_path / "kubeconfig", trickler.url, tls_material.ca_file, {"exec": plugin})
    code, err, elapsed = timed(
        gitops, "sync", "--flux-kustomization", "flux-system/apps", "--kubeconfig", config,
        "--network-timeout", "1s", "--max-attempts", "2",
    )  # fmt: skip
    assert code == 1 and "credential plugin of kubeconfig" in err and "within 1s" in err, err
    assert trickler.seen == [] and elapsed < 5, elapsed
