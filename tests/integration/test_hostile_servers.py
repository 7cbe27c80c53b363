"""Servers that misbehave: redirects to another origin, answers that never come or get lost, a push that
is declined for good. No token follows a redirect, nothing hangs past its bound, a change lands once."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from conftest import CliResult, CliRunner
from manifests import manifest_files, overlay
from servers.git_repos import commit_files, install_hook, log_messages, make_bare_repo, read_blob, rev_parse
from servers.gitserver import Fault, GitHttpServer
from servers.hostile import HttpPeer, Listener, kubeconfig
from servers.tls import TlsMaterial, make_unrelated_ca

pytest_plugins = ["servers.git_fixtures"]
pytestmark = pytest.mark.integration

REPO = "group/manifests.git"
SHA = "4f1c2e3d4b5a69788796a5b4c3d2e1f0a9b8c7d6"
TOKEN_USER: dict[str, object] = {"token": "kube-token-stays-home"}
Deploy = Callable[..., CliResult]


@pytest.fixture
def bare(git_server: GitHttpServer) -> Path:
    return make_bare_repo(git_server.root, REPO, manifest_files(["app0", "app1"]))


@pytest.fixture
def deploy(git_server: GitHttpServer, gitops: CliRunner, monkeypatch: pytest.MonkeyPatch) -> Deploy:
    monkeypatch.setenv("GITOPS_TOKEN", git_server.token)
    monkeypatch.setenv("GITOPS_BACKOFF_SECONDS", "0.05")

    def run(*args: str | Path, url: str | None = None) -> CliResult:
        return gitops(
            "deploy",
            "--repo-url",
            url or git_server.url_for(REPO),
            "--ca-file",
            git_server.ca_file,
            "--app",
            "app0",
            "--env",
            "dev",
            "--image",
            "registry.example.com/shop/app0:2.0.0",
            "--format",
            "json",
            *args,
        )

    return run


@pytest.fixture
def elsewhere(tls_material: TlsMaterial) -> Iterator[HttpPeer]:
    """Another origin: whatever reaches it is recorded."""
    with HttpPeer(tls_material) as peer:
        yield peer


@pytest.fixture
def redirector(tls_material: TlsMaterial, elsewhere: HttpPeer) -> Iterator[HttpPeer]:
    with HttpPeer(tls_material, redirect_to=elsewhere.url) as peer:
        yield peer


# --------------------------------------------------------------------------- redirects


def test_git_credentials_follow_no_redirect(
    deploy: Deploy, bare: Path, redirector: HttpPeer, elsewhere: HttpPeer
) -> None:
    result = deploy("--max-attempts", "1", url=f"{redirector.url}/{REPO}")
    assert result.code == 1
    assert redirector.seen and all(r.has_credentials() for r in redirector.seen)
    assert elsewhere.seen == []


def test_the_gitlab_token_follows_no_redirect(
    gitops: CliRunner,
    tmp_path: Path,
    redirector: HttpPeer,
    elsewhere: HttpPeer,
    tls_material: TlsMaterial,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITOPS_TOKEN", "glpat-must-stay-home")
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    result = gitops(
        "review",
        checkout,
        "--base",
        "main",
        "--gitlab-url",
        redirector.url,
        "--project",
        "group/manifests",
        "--mr",
        "1",
        "--ca-file",
        tls_material.ca_file,
    )
    assert result.code != 0  # not a git clone; the token's user is looked up first in any case
    assert elsewhere.seen == []


def test_the_gitlab_token_follows_no_redirect_when_posting(
    gitops: CliRunner,
    repo_checkout: Path,
    redirector: HttpPeer,
    elsewhere: HttpPeer,
    tls_material: TlsMaterial,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITOPS_TOKEN", "glpat-must-stay-home")
    result = gitops(
        "review",
        repo_checkout,
        "--base",
        "HEAD",
        "--gitlab-url",
        redirector.url,
        "--project",
        "group/manifests",
        "--mr",
        "1",
        "--ca-file",
        tls_material.ca_file,
    )
    assert result.code == 1 and "redirect" in result.err
    assert redirector.seen and elsewhere.seen == []


@pytest.fixture
def repo_checkout(tmp_path: Path) -> Path:
    import subprocess

    root = tmp_path / "manifests"
    root.mkdir()
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)
    return root


@pytest.mark.parametrize("target", ["--argocd-server", "--argocd-webhook"])
def test_argocd_secrets_follow_no_redirect(
    gitops: CliRunner,
    redirector: HttpPeer,
    elsewhere: HttpPeer,
    tls_material: TlsMaterial,
    monkeypatch: pytest.MonkeyPatch,
    target: str,
) -> None:
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", "argocd-token-stays-home")
    monkeypatch.setenv("GITOPS_WEBHOOK_SECRET", "webhook-secret-stays-home")
    url = redirector.url + ("/api/webhook" if target == "--argocd-webhook" else "")
    result = gitops(
        "sync",
        target,
        url,
        "--repo-url",
        "https://gitlab.example.com/group/manifests.git",
        "--branch",
        "main",
        "--revision",
        SHA,
        "--app",
        "web",
        "--env",
        "dev",
        "--ca-file",
        tls_material.ca_file,
        "--max-attempts",
        "1",
    )
    assert result.code == 1 and "redirect" in result.err
    assert redirector.seen and all(r.has_credentials() for r in redirector.seen)
    assert elsewhere.seen == []


def test_kubernetes_credentials_follow_no_redirect(
    gitops: CliRunner, redirector: HttpPeer, elsewhere: HttpPeer, tls_material: TlsMaterial, tmp_path: Path
) -> None:
    config = kubeconfig(tmp_path / "kubeconfig", redirector.url, tls_material.ca_file, TOKEN_USER)
    result = gitops(
        "sync", "--flux-kustomization", "flux-system/apps", "--kubeconfig", config, "--max-attempts", "1"
    )
    assert result.code == 1
    assert redirector.seen and elsewhere.seen == []


# --------------------------------------------------------------------------- what no real server answers


NOT_JSON = "with something that is not JSON"  # a proxy's page: the client's JSONDecodeError was exit 3
TOO_LARGE = "with more than 16 MiB"  # the client read an answer whole, success or error, however large


@pytest.mark.parametrize(
    ("command", "status", "flood", "said"),
    [
        ("sync", 200, 4096, NOT_JSON),
        ("wait", 200, 4096, NOT_JSON),
        ("sync", 200, (16 << 20) + 1, TOO_LARGE),
        ("wait", 200, (16 << 20) + 1, TOO_LARGE),
        ("sync", 403, (16 << 20) + 1, TOO_LARGE),
    ],
)
def test_a_kubernetes_api_answering_what_a_kube_apiserver_would_not_fails_with_exit_1(
    gitops: CliRunner, tls_material: TlsMaterial, tmp_path: Path, command: str, status: int, flood: int,
    said: str,
) -> None:  # fmt: skip
    """A page that is not JSON, or more than 16 MiB (GitLab's and Argo CD's answers were bounded already)."""
    with HttpPeer(tls_material, status=status, flood=flood) as peer:
        config = kubeconfig(tmp_path / "kubeconfig", peer.url, tls_material.ca_file, TOKEN_USER)
        timeout = "2s" if said == NOT_JSON else "5s"
        wait = ["--revision", SHA, "--timeout", timeout] if command == "wait" else ["--max-attempts", "1"]
        result = gitops(command, "--flux-kustomization", "flux-system/apps", "--kubeconfig", config, *wait)
    assert result.code == 1, result.err
    assert f"answered Kustomization flux-system/apps {said}" in result.err
    assert "bug" not in result.err


@pytest.mark.parametrize("flood", [None, 4096], ids=["json-without-fields", "not-json"])
def test_a_server_answering_200_in_argo_cds_place_is_no_sync_started(
    gitops: CliRunner, tls_material: TlsMaterial, monkeypatch: pytest.MonkeyPatch, flood: int | None
) -> None:
    """A sign-in page in front of Argo CD answers 200: that started no sync (it printed "sync started")."""
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", "argocd-token")
    with HttpPeer(tls_material, status=200, flood=flood) as peer:
        result = gitops(
            "sync", "--argocd-server", peer.url, "--repo-url", "https://gitlab.example.com/group/manifests.git",
            "--branch", "main", "--revision", SHA, "--app", "web", "--env", "dev", "--ca-file",
            tls_material.ca_file, "--max-attempts", "2", "--backoff", "0.01",
        )  # fmt: skip
        posts = [seen for seen in peer.seen if seen.method == "POST"]
    assert result.code == 1, result.err
    assert f"{peer.url} answered 200 to sync web-dev without an Application" in result.err
    assert (
        "check --argocd-server" in result.err and "bug" not in result.err and "sync started" not in result.out
    )
    assert len(posts) == 2


INJECTED = (
    "denied\x1b[2K\r\x1b[32mDeployed to production\x1b[0m\n"
    "\x1b[0Ksection_start:1:hidden[collapsed=true]\r\x1b[0K"
)


@pytest.mark.parametrize("server", ["argocd", "kubernetes", "gitlab"])
def test_what_a_server_says_reaches_the_log_on_one_line_without_terminal_controls(
    gitops: CliRunner, tls_material: TlsMaterial, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, server: str
) -> None:
    """A server's message is quoted in our error: its escape sequences, carriage returns and line breaks
    could colour, overwrite or fake a line of the job log, or open a collapsed GitLab section."""
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", "argocd-token")
    monkeypatch.setenv("GITOPS_TOKEN", "glpat-x")
    body = json.dumps({"message": INJECTED, "kind": "Status", "code": 403}).encode()
    with HttpPeer(tls_material, status=403, body=body) as peer:
        once = ["--ca-file", str(tls_material.ca_file), "--max-attempts", "1"]
        app = ["--app", "web", "--env", "dev"]
        config = kubeconfig(tmp_path / "kubeconfig", peer.url, tls_material.ca_file, TOKEN_USER)
        argv = {
            "argocd": ["sync", "--argocd-server", peer.url, "--repo-url", f"{peer.url}/g/m.git",
                       "--branch", "main", "--revision", SHA, *app, *once],
            "kubernetes": ["sync", "--flux-kustomization", "flux-system/apps", "--kubeconfig", str(config),
                           "--max-attempts", "1"],
            "gitlab": ["deploy", "--transport", "api", "--repo-url", f"{peer.url}/g/m.git", "--branch",
                       "main", *app, "--image", "registry.example.com/shop/web:2.0.0", *once],
        }[server]  # fmt: skip
        result = gitops(*argv)
    assert result.code == 1, result.err
    error = next(line for line in result.err.splitlines() if line.startswith("gitops-ci: error:"))
    assert "denied\\x1b[2K\\x0d\\x1b[32mDeployed to production" in error, result.err
    assert "\x1b" not in result.err and "\r" not in result.err
    assert not any(line.startswith(("Deployed", "section_start")) for line in result.err.splitlines())


@pytest.mark.parametrize("flood", [None, 4096], ids=["json-without-fields", "not-json"])
def test_a_server_answering_200_in_gitlabs_place_fails_with_exit_1_and_what_to_check(
    gitops: CliRunner, tls_material: TlsMaterial, monkeypatch: pytest.MonkeyPatch, flood: int | None
) -> None:
    """A proxy's page or another server answering 200 to the API transport: an operational failure naming
    the request and what to check, after the step's retries; never a traceback or "a gitops-ci bug"."""
    monkeypatch.setenv("GITOPS_TOKEN", "glpat-x")
    monkeypatch.setenv("GITOPS_BACKOFF_SECONDS", "0.01")
    with HttpPeer(tls_material, status=200, flood=flood) as peer:
        result = gitops(
            "deploy", "--transport", "api", "--repo-url", f"{peer.url}/group/manifests.git",
            "--ca-file", tls_material.ca_file, "--branch", "main", "--app", "app0", "--env", "dev",
            "--image", "registry.example.com/shop/app0:2.0.0", "--max-attempts", "2",
        )  # fmt: skip
        posts = [seen for seen in peer.seen if seen.method == "POST"]
    assert result.code == 1, result.err
    assert f"{peer.url} answered 200 without commit_id: not GitLab's answer" in result.err
    assert "check --repo-url" in result.err and "Traceback" not in result.err and "bug" not in result.err
    assert posts == []


@pytest.mark.parametrize("flood", [None, 4096], ids=["json-without-fields", "not-json"])
def test_a_server_answering_200_in_gitlabs_place_to_review_fails_with_exit_1(
    gitops: CliRunner, tmp_path: Path, tls_material: TlsMaterial, monkeypatch: pytest.MonkeyPatch,
    flood: int | None,
) -> None:  # fmt: skip
    """python-gitlab's objects lack the fields GitLab's answer has: exit 1 and what to check, not exit 3."""
    monkeypatch.setenv("GITOPS_TOKEN", "glpat-x")
    bare = make_bare_repo(tmp_path / "srv", REPO, manifest_files(["app0"]))
    checkout = tmp_path / "checkout"
    subprocess.run(["git", "clone", "-q", "--branch", "main", str(bare), str(checkout)], check=True)
    with HttpPeer(tls_material, status=200, flood=flood) as peer:
        result = gitops(
            "review", checkout, "--base", "main", "--gitlab-url", peer.url, "--project", "group/manifests",
            "--mr", "1", "--ca-file", tls_material.ca_file,
        )  # fmt: skip
    assert result.code == 1, result.err
    assert f"(GET /user): {peer.url} answered without GitLab's fields" in result.err
    assert "--gitlab-url" in result.err and "bug" not in result.err


# --------------------------------------------------------------------------- hangs


def test_a_git_server_that_never_answers_is_given_up_on(
    deploy: Deploy, bare: Path, git_server: GitHttpServer
) -> None:
    git_server.inject(Fault("hang", service=None, method=None, times=100))
    started = time.monotonic()
    result = deploy("--network-timeout", "2s", "--git-timeout", "20s", "--max-attempts", "1")
    elapsed = time.monotonic() - started
    assert result.code == 1 and elapsed < 15, (elapsed, result.err)
    assert "transiently" in result.err or "did not finish" in result.err


def test_git_calls_have_a_wall_clock_bound(deploy: Deploy, bare: Path, git_server: GitHttpServer) -> None:
    git_server.inject(Fault("hang", service=None, method=None, times=100))
    started = time.monotonic()
    result = deploy("--network-timeout", "60s", "--git-timeout", "2s", "--max-attempts", "2")
    elapsed = time.monotonic() - started
    assert result.code == 1 and elapsed < 15, (elapsed, result.err)
    assert "did not finish within 2s" in result.err


def test_wait_returns_at_its_deadline_with_a_request_in_flight(
    gitops: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", "token")
    with Listener(hold=True) as silent:
        started = time.monotonic()
        result = gitops(
            "wait",
            "--argocd-server",
            f"http://127.0.0.1:{silent.port}",
            "--app",
            "web",
            "--env",
            "dev",
            "--revision",
            SHA,
            "--timeout",
            "3s",
            "--interval",
            "1s",
        )
        elapsed = time.monotonic() - started
    assert result.code == 1 and "within 3s" in result.err
    assert elapsed < 6, elapsed


def test_sync_retries_stay_within_their_bound(gitops: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITOPS_WEBHOOK_SECRET", "secret")
    with Listener(hold=True) as silent:
        started = time.monotonic()
        result = gitops(
            "sync",
            "--argocd-webhook",
            f"http://127.0.0.1:{silent.port}/api/webhook",
            "--repo-url",
            "https://gitlab.example.com/group/manifests.git",
            "--branch",
            "main",
            "--revision",
            SHA,
            "--app",
            "web",
            "--env",
            "dev",
            "--max-attempts",
            "2",
            "--network-timeout",
            "1s",
            "--backoff",
            "0.1",
        )
        elapsed = time.monotonic() - started
        connections = silent.connections
    assert result.code == 1 and connections == 2
    assert elapsed < 2 * (1 + 8) and elapsed < 6, elapsed


# --------------------------------------------------------------------------- lost answers, refusals


def test_a_lost_push_answer_and_a_concurrent_landing_land_our_commit_once(
    deploy: Deploy, bare: Path, git_server: GitHttpServer
) -> None:
    other = overlay("app1", "dev")

    def another_job_lands() -> None:
        text = read_blob(bare, "main", other).replace('newTag: "1.0.0"', 'newTag: "9.9.9"')
        commit_files(bare, "main", {other: text}, "another job")

    git_server.inject(Fault("lose-answer", then=another_job_lands))
    result = deploy()
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["status"] == "pushed" and data["commit"] == rev_parse(bare, "main~1")
    messages = log_messages(bare, "main")
    assert messages[0] == "another job" and messages[1].startswith("[skip ci] update image of app app0")
    assert len(messages) == 3
    assert 'newTag: "9.9.9"' in read_blob(bare, "main", other)
    assert 'newTag: "2.0.0"' in read_blob(bare, "main", overlay("app0", "dev"))


def test_a_declined_push_fails_at_once_quoting_the_server(
    deploy: Deploy, bare: Path, git_server: GitHttpServer
) -> None:
    install_hook(bare, "pre-receive", "#!/bin/sh\necho 'GitLab: push rules forbid this commit' >&2\nexit 1\n")
    started = time.monotonic()
    result = deploy("--push-timeout", "60s")
    assert result.code == 1 and time.monotonic() - started < 10
    assert "declined by the server" in result.err and "push rules forbid this commit" in result.err
    pushes = [r for r in git_server.requests if r.method == "POST" and r.service == "git-receive-pack"]
    assert len(pushes) == 1


def test_a_failed_blob_fetch_during_the_clone_is_retried(
    deploy: Deploy, bare: Path, git_server: GitHttpServer
) -> None:
    git_server.inject(Fault("status", service="git-upload-pack", status=502, skip=2))
    result = deploy()
    assert result.code == 0, result.err
    failed = [r for r in git_server.requests if r.status == 502]
    assert len(failed) == 1
    assert 'newTag: "2.0.0"' in read_blob(bare, "main", overlay("app0", "dev"))


def test_ca_file_wins_over_an_inherited_git_ssl_cainfo(
    deploy: Deploy, bare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_SSL_CAINFO", str(make_unrelated_ca(tmp_path / "other")))
    result = deploy()
    assert result.code == 0, result.err
