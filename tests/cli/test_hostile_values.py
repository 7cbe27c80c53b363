"""Values a red-team pass found accepted: each is bad input (exit 2, one line, nothing written) and shows no
secret."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from cli.test_bad_input import assert_refused, deploy
from conftest import CliRunner
from manifests import manifest_files, overlay
from servers.git_repos import Symlink, make_bare_repo, rev_parse

SECRET = "glpat-Secret1234567"
REVISION = "a" * 40
HOOK = "https://argocd.example.com/api/webhook"


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    return make_bare_repo(tmp_path / "srv", "manifests.git", manifest_files(["app0"]))


def branches(bare: Path) -> list[str]:
    argv = ["git", "-C", str(bare), "branch", "--format=%(refname:short)"]
    listed = subprocess.run(argv, capture_output=True, text=True, check=True)
    return listed.stdout.split()


def assert_unseen(err: str) -> None:
    assert "Secret1234567" not in err and "Secret123" not in err.replace("\\", ""), err


@pytest.mark.parametrize("variable", ["GITOPS_TOKEN", "GITOPS_PASSWORD", "CI_JOB_TOKEN"])
@pytest.mark.parametrize("tail", ["\n", "\r", "\r\n", "\t"])
def test_a_repo_secret_pasted_with_a_line_break_is_bad_input_and_never_shown(
    gitops: CliRunner, bare: Path, monkeypatch: pytest.MonkeyPatch, variable: str, tail: str
) -> None:
    monkeypatch.setenv(variable, SECRET + tail)
    head = rev_parse(bare, "main")
    for transport in ("git", "api"):
        result = deploy(gitops, bare, "--transport", transport)
        assert_refused(result, variable)
        assert_unseen(result.err)
    assert rev_parse(bare, "main") == head


@pytest.mark.parametrize("variable", ["GITOPS_TOKEN", "CI_JOB_TOKEN", "ARGOCD_AUTH_TOKEN"])
@pytest.mark.parametrize("spaced", [" {}", "{} "])
def test_a_token_with_a_space_around_it_is_bad_input_and_never_shown(
    gitops: CliRunner, bare: Path, monkeypatch: pytest.MonkeyPatch, variable: str, spaced: str
) -> None:
    """No token has one; an HTTP library refuses the header (that was "not GitLab's answer", exit 1)."""
    monkeypatch.setenv(variable, spaced.format(SECRET))
    if variable == "ARGOCD_AUTH_TOKEN":
        common = ("--app", "app0", "--env", "dev", "--revision", REVISION)
        results = [gitops("sync", "--argocd-server", "https://argocd.example.com", *common)]
    else:
        results = [deploy(gitops, bare, "--transport", transport) for transport in ("git", "api")]
        results.append(deploy(gitops, bare, "--mode", "merge-request"))
    for result in results:
        assert_refused(result, variable)
        assert_unseen(result.err)


@pytest.mark.parametrize(
    ("variable", "args"),
    [
        ("GITOPS_WEBHOOK_SECRET", ("sync", "--argocd-webhook", "https://argocd.example.com/api/webhook")),
        ("GITOPS_WEBHOOK_SECRET", ("sync", "--flux-receiver", "https://flux.example.com/hook/x")),
        ("ARGOCD_AUTH_TOKEN", ("sync", "--argocd-server", "https://argocd.example.com")),
        ("ARGOCD_AUTH_TOKEN", ("wait", "--argocd-server", "https://argocd.example.com", "--timeout", "1s")),
    ],
)
def test_a_sync_secret_with_a_line_break_is_bad_input_and_never_shown(
    gitops: CliRunner, monkeypatch: pytest.MonkeyPatch, variable: str, args: tuple[str, ...]
) -> None:
    monkeypatch.setenv(variable, SECRET + "\n")
    common = ("--app", "app0", "--env", "dev", "--revision", REVISION)
    webhook = ("--repo-url", "https://gitlab.example.com/g/m.git", "--branch", "main")
    result = gitops(*args, *common, *(webhook if "--argocd-server" not in args else ()))
    assert_refused(result, variable)
    assert_unseen(result.err)


@pytest.mark.parametrize("option", ["--poll-interval", "--merge-timeout", "--backoff"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "86401"])
def test_seconds_that_are_not_a_finite_day_are_refused_before_anything_is_pushed(
    gitops: CliRunner, bare: Path, option: str, value: str
) -> None:
    """`--poll-interval nan` passed the range check: the branch was pushed, the merge request opened, then a
    crash (exit 3)."""
    result = deploy(gitops, bare, "--mode", "merge-request", "--auto-merge", option, value)
    assert_refused(result, option)
    assert branches(bare) == ["main"]


HEAD = "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
USER = (
    "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
    "users: [{name: u, user: {token: glpat-Secret1234567}}]\n"
)
CA = "certificate-authority-data: abcde"
KUBECONFIGS = {
    "text": "root:x:0:0:root:/root:/bin/bash\n",
    "list": "- a\n- b\n",
    "clusters-int": "apiVersion: v1\nkind: Config\nclusters: 5\n",
    "server-int": HEAD + "clusters: [{name: k, cluster: {server: 5}}]\n" + USER,
    "bad-ca": HEAD + f"clusters: [{{name: k, cluster: {{server: 'https://127.0.0.1:1', {CA}}}}}]\n" + USER,
    "binary": "\udcff\udcfe\x00\x01",
    "bad-yaml": "users:\n- user: {token: glpat-Secret1234567\n",
}


@pytest.mark.parametrize("shape", sorted(KUBECONFIGS))
@pytest.mark.parametrize("command", ["wait", "sync"])
def test_a_file_that_is_not_a_kubeconfig_is_bad_input(
    gitops: CliRunner, tmp_path: Path, shape: str, command: str
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_bytes(KUBECONFIGS[shape].encode("utf-8", "surrogateescape"))
    target = (
        ("--argocd-kube", "--timeout", "1s") if command == "wait" else ("--flux-kustomization", "flux/apps")
    )
    result = gitops(command, "--revision", REVISION, "--app", "app0", "--env", "dev", *target,
                    "--kubeconfig", kubeconfig)  # fmt: skip
    assert_refused(result, "kubeconfig")
    assert_unseen(result.err)


@pytest.mark.parametrize("content", ["", "not a certificate\n", "\x00\x01binary"])
def test_a_ca_file_without_a_pem_certificate_is_bad_input_before_any_request(
    gitops: CliRunner, bare: Path, tmp_path: Path, content: str
) -> None:
    """It was an operational error (exit 1) at the first TLS handshake, after the clone or the GET began."""
    ca_file = tmp_path / "ca.pem"
    ca_file.write_text(content)
    head = rev_parse(bare, "main")
    common = ("--revision", REVISION, "--app", "app0", "--env", "dev", "--ca-file", ca_file)
    results = [
        deploy(gitops, bare, "--transport", transport, "--ca-file", ca_file) for transport in ("git", "api")
    ]
    results.append(gitops("sync", *common, "--argocd-server", "https://argocd.example.com"))
    results.append(gitops("wait", *common, "--argocd-kube", "--timeout", "1s"))
    for result in results:
        assert_refused(result, f"--ca-file {ca_file} holds no PEM certificate")
    assert rev_parse(bare, "main") == head


def test_a_ca_file_that_is_not_a_regular_file_is_refused_without_reading_it(
    gitops: CliRunner, bare: Path, tmp_path: Path
) -> None:
    """A FIFO (or /dev/stdin) would block the read forever."""
    fifo = tmp_path / "ca.pem"
    os.mkfifo(fifo)
    assert_refused(deploy(gitops, bare, "--ca-file", fifo), f"--ca-file {fifo} is not a regular file")


KUBECONFIG_OF_PROD = """apiVersion: v1
kind: Config
clusters: [{name: prod, cluster: {server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}}]
users: [{name: prod, user: {token: not-a-secret}}]
contexts: [{name: prod, context: {cluster: prod, user: prod}}]
current-context: prod
"""


@pytest.mark.parametrize("context", ["", "prod\nINFO forged line", "prod\x1b[2J"])
@pytest.mark.parametrize("command", ["wait", "sync"])
def test_a_kube_context_that_cannot_name_one_is_bad_input(
    gitops: CliRunner, tmp_path: Path, context: str, command: str
) -> None:
    target = (
        ("--argocd-kube", "--timeout", "1s") if command == "wait" else ("--flux-kustomization", "flux/apps")
    )
    config = tmp_path / "kubeconfig"
    config.write_text(KUBECONFIG_OF_PROD)
    result = gitops(command, "--revision", REVISION, "--app", "app0", "--env", "dev", *target,
                    "--kubeconfig", config, "--kube-context", context)  # fmt: skip
    assert_refused(result, "--kube-context")
    assert "forged" not in result.err.replace("--kube-context", "")


@pytest.mark.parametrize(
    ("args", "option"),
    [
        (
            ("sync", "--argocd-webhook", "https://u:Secret1234567@argocd.example.com/api/webhook"),
            "--argocd-webhook",
        ),
        (("sync", "--flux-receiver", "https://u:Secret1234567@flux.example.com/hook/x"), "--flux-receiver"),
        (
            ("sync", "--argocd-server", "https://u:Secret1234567@argocd.example.com", "--dry-run"),
            "--argocd-server",
        ),
        (("sync", "--argocd-server", "ftp://argocd.example.com"), "--argocd-server"),
        (("sync", "--argocd-webhook", "https://argocd.example.com/api/webhook\r\nX: y"), "--argocd-webhook"),
    ],
)
def test_a_sync_url_with_credentials_or_not_http_is_bad_input_and_never_shown(
    gitops: CliRunner, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], option: str
) -> None:
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", "argocd-token")
    webhook = ("--repo-url", "https://gitlab.example.com/g/m.git", "--branch", "main")
    result = gitops(*args, "--app", "app0", "--env", "dev", "--revision", REVISION, *webhook)
    assert_refused(result, option)
    assert_unseen(result.err)
    assert "Secret1234567" not in result.out


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("http://u:Secret1234567@127.0.0.1:9", "contains credentials"),
        ("ftp://127.0.0.1:9", "not an http(s) URL"),
    ],
)
def test_a_gitlab_url_with_credentials_or_not_http_is_bad_input_and_never_shown(
    gitops: CliRunner, bare: Path, monkeypatch: pytest.MonkeyPatch, url: str, fragment: str
) -> None:
    monkeypatch.setenv("GITOPS_TOKEN", "glpat-token-of-the-job")
    for args in (
        ("--mode", "merge-request", "--gitlab-url", url),
        ("--transport", "api", "--gitlab-url", url),
    ):
        result = deploy(gitops, bare, *args)
        assert_refused(result, fragment)
        assert_unseen(result.err)
    monkeypatch.setenv("CI_SERVER_URL", url)
    review = gitops("review", "--base", "HEAD", "--project", "g/m", "--mr", "1", bare)
    assert_refused(review, "--gitlab-url")
    assert_unseen(review.err)
    assert branches(bare) == ["main"]


def test_a_symlink_target_from_the_repo_cannot_add_a_line_to_the_error(
    gitops: CliRunner, tmp_path: Path
) -> None:
    files: dict[str, str | Symlink] = dict(manifest_files(["app0"]))
    files[overlay("app0", "dev")] = Symlink("\x1b[2J\nfake: line")
    bare = make_bare_repo(tmp_path / "srv", "manifests.git", files)
    result = deploy(gitops, bare)
    assert_refused(result, "symlink")
    assert "\x1b" not in result.err and not any(line.startswith("fake") for line in result.err.splitlines())


def test_a_dotenv_path_that_cannot_be_written_is_refused_before_the_push(
    gitops: CliRunner, bare: Path, tmp_path: Path
) -> None:
    """The report is written after the change landed: found then, it failed a job whose change was pushed."""
    a_file = tmp_path / "file"
    a_file.write_text("x")
    head = rev_parse(bare, "main")
    for path in ("", str(tmp_path), str(a_file / "deploy.env")):
        assert_refused(deploy(gitops, bare, "--dotenv", path), "--dotenv")
    assert rev_parse(bare, "main") == head
    written = tmp_path / "new" / "dir" / "deploy.env"
    assert deploy(gitops, bare, "--dotenv", str(written)).code == 0
    assert "GITOPS_COMMIT_SHA=" in written.read_text()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--project", "../../x", "--mr", "1"), "is not a GitLab project path"),
        (("--project", "group", "--mr", "1"), "is not a GitLab project path"),
        (("--project", "g/m", "--mr", "-5"), "--mr"),
        (("--project", "g/m", "--mr", "0"), "--mr"),
    ],
)
def test_review_refuses_a_project_or_merge_request_that_cannot_be_one(
    gitops: CliRunner, bare: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], fragment: str
) -> None:
    monkeypatch.setenv("GITOPS_TOKEN", "glpat-token-of-the-job")
    result = gitops("review", "--base", "HEAD", "--gitlab-url", "https://gitlab.example.com", *args, bare)
    assert_refused(result, fragment)


def test_a_project_path_with_dot_segments_in_the_repo_url_is_refused(
    gitops: CliRunner, bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITOPS_TOKEN", "glpat-token-of-the-job")
    url = "https://gitlab.example.com/group/../../api/v4/x.git"
    result = deploy(gitops, bare, "--transport", "api", "--repo-url", url)
    assert_refused(result, "not a GitLab project path")


def test_a_proxy_password_is_masked_in_what_git_says(
    gitops: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git quotes the proxy URL it cannot parse (a %0A in the password): the password must not come out."""
    monkeypatch.setenv("HTTPS_PROXY", "http://user:Secret1234567%0Aproxy@127.0.0.1:1")
    monkeypatch.setenv("GITOPS_TOKEN", "glpat-token-of-the-job")
    url = "https://127.0.0.1:9/group/manifests.git"
    image = "registry.example.com/app0:2"
    result = gitops(
        "deploy", "--app", "app0", "--env", "dev", "--image", image, "--repo-url", url, "--max-attempts", "1"
    )
    assert result.code == 1 and "[MASKED]" in result.err, result.err
    assert_unseen(result.err)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("sync", "--flux-kustomization", "flux-system/\x1b[2Japps"), "not a Kubernetes object name"),
        (("wait", "--flux-kustomization", "Flux_System/apps"), "not a Kubernetes namespace"),
        (("sync", "--argocd-server", "argocd.example.com", "--app-namespace", "../../x"), "--app-namespace"),
        (("wait", "--argocd-server", "argocd.example.com", "--app-namespace", "a\nb"), "--app-namespace"),
        (("sync", "--argocd-webhook", HOOK, "--changed-file", "../../etc/passwd"), "--changed-file"),
        (("sync", "--argocd-webhook", HOOK, "--changed-file", "/etc/passwd"), "--changed-file"),
    ],
)  # fmt: skip
def test_sync_and_wait_refuse_names_kubernetes_or_the_repo_cannot_hold(
    gitops: CliRunner, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], fragment: str
) -> None:
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", "argocd-token")
    webhook = ("--repo-url", "https://gitlab.example.com/g/m.git", "--branch", "main")
    repo = webhook if args[0] == "sync" else ()
    result = gitops(*args, "--app", "app0", "--env", "dev", "--revision", REVISION, *repo)
    assert_refused(result, fragment)
