"""Tests of the HTTPS smart-HTTP test git server itself, driven by plain ``git`` subprocesses.

Credentials are passed to git only through the environment (``GIT_CONFIG_*`` extraHeader,
``GIT_SSL_CAINFO``); see :func:`servers.gitserver.client_env`.
"""

from __future__ import annotations

import http.client
import os
import ssl
import subprocess
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import git
import pytest

from servers.git_repos import (
    GitError,
    commit_count,
    commit_files,
    log_messages,
    make_bare_repo,
    read_blob,
    rev_parse,
)
from servers.gitserver import GitHttpServer, RequestRecord, client_env
from servers.tls import TlsMaterial, make_unrelated_ca

if TYPE_CHECKING:
    from servers.git_fixtures import GitArgvRecorder

# Registers tls_material, git_server and git_argv_recorder (harmless if a conftest also does).
pytest_plugins = ["servers.git_fixtures"]
pytestmark = pytest.mark.integration

REPO = "group/manifests.git"
PROD_FILES = {f"overlays/prod/patch-{index:02}.yaml": f"replicas: {index}\n" for index in range(30)}
SEED_FILES: dict[str, str | bytes] = {
    "README.md": "# manifests\n",
    "overlays/prod/kustomization.yaml": "resources: []\n",
    "overlays/staging/kustomization.yaml": "resources: [staging]\n",
    **PROD_FILES,
}


@pytest.fixture(autouse=True)
def hermetic_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Never read the developer's git config or inherit GIT_* state."""
    for name in list(os.environ):
        if name.startswith("GIT_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Pipeline")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "pipeline@example.invalid")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Pipeline")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "pipeline@example.invalid")
    monkeypatch.setenv("LC_ALL", "C")


@pytest.fixture
def bare(git_server: GitHttpServer) -> Path:
    return make_bare_repo(git_server.root, REPO, SEED_FILES)


@pytest.fixture
def url(git_server: GitHttpServer, bare: Path) -> str:
    return git_server.url_for(REPO)


def run_git(*args: str, env: Mapping[str, str], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", *args], cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=60, check=False
    )


def git_ok(*args: str, env: Mapping[str, str], cwd: Path | None = None) -> str:
    result = run_git(*args, env=env, cwd=cwd)
    assert result.returncode == 0, f"git {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


def clone(url: str, dest: Path, env: Mapping[str, str], *extra: str) -> Path:
    git_ok("clone", "--quiet", *extra, url, str(dest), env=env)
    return dest


def commit_local(worktree: Path, path: str, content: str, message: str) -> str:
    target = worktree / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(content)
    env = dict(os.environ)
    git_ok("add", path, env=env, cwd=worktree)
    git_ok("commit", "--quiet", "-m", message, env=env, cwd=worktree)
    return git_ok("rev-parse", "HEAD", env=env, cwd=worktree).strip()


def statuses(server: GitHttpServer, service: str, method: str = "POST") -> list[int]:
    return [r.status for r in server.requests if r.service == service and r.method == method]


def missing_objects(worktree: Path) -> set[str]:
    out = git_ok("rev-list", "--objects", "--missing=print", "HEAD", env=os.environ, cwd=worktree)
    return {line[1:] for line in out.splitlines() if line.startswith("?")}


# -- repository helpers -------------------------------------------------------------------


def test_plumbing_helpers_build_history_without_a_worktree(tmp_path: Path) -> None:
    bare = make_bare_repo(tmp_path, "a/b/c.git", {"x/y.txt": "one\n", "bin": b"\x00\x01"}, branch="trunk")
    second = commit_files(bare, "trunk", {"x/y.txt": "two\n", "bin": None}, "update y\n\nwith a body")

    assert rev_parse(bare, "trunk") == second
    assert commit_count(bare, "trunk") == 2
    assert log_messages(bare, "trunk") == ["update y\n\nwith a body", "initial"]
    assert read_blob(bare, "trunk", "x/y.txt") == "two\n"
    assert read_blob(bare, "trunk~1", "x/y.txt") == "one\n"
    with pytest.raises(GitError):
        read_blob(bare, "trunk", "bin")
    assert not (bare / "index").exists()
    assert git_ok("config", "http.receivepack", env=os.environ, cwd=bare).strip() == "true"


# -- clone / fetch ------------------------------------------------------------------------


def test_clone_with_basic_auth_from_environment(git_server: GitHttpServer, url: str, tmp_path: Path) -> None:
    worktree = clone(url, tmp_path / "clone", client_env(git_server, username="deployer"))

    assert (worktree / "overlays/staging/kustomization.yaml").read_text() == "resources: [staging]\n"
    requests = git_server.requests
    assert {r.service for r in requests} == {"git-upload-pack"}
    assert all(r.status == 200 and r.authorization_present and r.username == "deployer" for r in requests)
    assert all(r.git_protocol == "version=2" for r in requests)
    assert git_server.token not in repr(requests)


def test_partial_sparse_clone_fetches_blobs_lazily(
    git_server: GitHttpServer, url: str, tmp_path: Path
) -> None:
    env = client_env(git_server)
    worktree = clone(url, tmp_path / "sparse", env, "--depth", "1", "--filter=blob:none", "--sparse")
    assert (worktree / "README.md").exists()
    assert not (worktree / "overlays").exists()
    assert len(missing_objects(worktree)) == len(SEED_FILES) - 1
    fetches_before = len(statuses(git_server, "git-upload-pack"))

    git_ok("sparse-checkout", "set", "overlays/prod", env=env, cwd=worktree)

    assert (worktree / "overlays/prod/patch-07.yaml").read_text() == "replicas: 7\n"
    assert not (worktree / "overlays/staging").exists()
    assert len(missing_objects(worktree)) == 1  # only the staging blob is still missing
    lazy_fetches = git_server.requests[fetches_before:]
    assert any(r.service == "git-upload-pack" and r.method == "POST" for r in lazy_fetches)
    # 31 "want" lines make the request > 1 KiB, so git gzips it; http-backend inflates it.
    assert any(r.content_encoding == "gzip" and r.status == 200 for r in lazy_fetches)


def test_twenty_concurrent_ls_remote_calls_succeed(git_server: GitHttpServer, url: str, bare: Path) -> None:
    env = client_env(git_server)
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: run_git("ls-remote", url, "refs/heads/main", env=env), range(20)))

    expected = f"{rev_parse(bare, 'main')}\trefs/heads/main\n"
    assert [r.returncode for r in results] == [0] * 20, [r.stderr for r in results if r.returncode]
    assert {r.stdout for r in results} == {expected}
    assert statuses(git_server, "git-upload-pack", "GET") == [200] * 20


# -- push ---------------------------------------------------------------------------------


def test_push_lands_in_bare_repo(git_server: GitHttpServer, url: str, bare: Path, tmp_path: Path) -> None:
    env = client_env(git_server)
    worktree = clone(url, tmp_path / "clone", env)
    head = commit_local(worktree, "overlays/prod/image.yaml", "tag: v2\n", "deploy v2")

    git_ok("push", "--quiet", "origin", "main", env=env, cwd=worktree)

    assert rev_parse(bare, "main") == head
    assert read_blob(bare, "main", "overlays/prod/image.yaml") == "tag: v2\n"
    assert log_messages(bare, "main")[0] == "deploy v2"
    assert statuses(git_server, "git-receive-pack") == [200]


def test_large_push_uses_chunked_request_body(
    git_server: GitHttpServer, url: str, bare: Path, tmp_path: Path
) -> None:
    env = client_env(git_server)
    worktree = clone(url, tmp_path / "clone", env)
    payload = os.urandom(150_000).hex()  # ~150 KB packed: more than the 64 KiB post buffer
    head = commit_local(worktree, "big.txt", payload, "big file")

    git_ok("-c", "http.postBuffer=65536", "push", "--quiet", "origin", "main", env=env, cwd=worktree)

    assert rev_parse(bare, "main") == head
    assert read_blob(bare, "main", "big.txt") == payload
    posts = [r for r in git_server.requests if r.service == "git-receive-pack" and r.method == "POST"]
    # git first sends a tiny un-chunked "probe" POST (to settle auth), then streams the pack chunked.
    assert [(r.chunked, r.status) for r in posts] == [(False, 200), (True, 200)]


def test_fail_next_fails_exactly_one_push(
    git_server: GitHttpServer, url: str, bare: Path, tmp_path: Path
) -> None:
    env = client_env(git_server)
    worktree = clone(url, tmp_path / "clone", env)
    head = commit_local(worktree, "a.txt", "a\n", "change a")
    before = rev_parse(bare, "main")
    git_server.fail_next(service="git-receive-pack", status=500)

    failed = run_git("push", "origin", "main", env=env, cwd=worktree)
    assert failed.returncode != 0
    assert "500" in failed.stderr
    assert rev_parse(bare, "main") == before

    git_ok("push", "--quiet", "origin", "main", env=env, cwd=worktree)
    assert rev_parse(bare, "main") == head
    assert statuses(git_server, "git-receive-pack") == [500, 200]


def test_before_receive_pack_hook_simulates_a_concurrent_push(
    git_server: GitHttpServer, url: str, bare: Path, tmp_path: Path
) -> None:
    env = client_env(git_server)
    worktree = clone(url, tmp_path / "clone", env)
    commit_local(worktree, "ours.txt", "ours\n", "our change")
    hook_calls: list[str] = []

    def concurrent_push() -> None:
        if not hook_calls:
            hook_calls.append(commit_files(bare, "main", {"theirs.txt": "theirs\n"}, "their change"))

    git_server.before_receive_pack = concurrent_push

    raced = run_git("push", "origin", "main", env=env, cwd=worktree)
    # The client sent "old=<advertised sha>"; the ref moved meanwhile, so receive-pack's
    # compare-and-swap fails and the server rejects the update.
    assert raced.returncode != 0
    assert "[remote rejected] main -> main" in raced.stderr
    assert rev_parse(bare, "main") == hook_calls[0]

    retried = run_git("push", "origin", "main", env=env, cwd=worktree)
    # Now the advertisement shows their commit, and git refuses the non-fast-forward itself.
    assert retried.returncode != 0
    assert "[rejected]" in retried.stderr and "fetch first" in retried.stderr
    assert log_messages(bare, "main") == ["their change", "initial"]
    assert len(hook_calls) == 1


# -- authentication and TLS ---------------------------------------------------------------


def test_wrong_token_is_rejected_with_401(git_server: GitHttpServer, url: str, tmp_path: Path) -> None:
    result = run_git("clone", url, str(tmp_path / "clone"), env=client_env(git_server, token="wrong"))

    assert result.returncode != 0
    # extraHeader credentials are not known to git's credential machinery, so on 401 it tries
    # to prompt for a user name instead of reporting "Authentication failed".
    assert "could not read Username" in result.stderr
    assert not (tmp_path / "clone").exists()
    requests = git_server.requests
    assert requests and all(r.status == 401 and r.authorization_present for r in requests)
    assert "wrong" not in repr(requests)


def test_missing_credentials_get_a_basic_challenge(git_server: GitHttpServer, url: str) -> None:
    context = ssl.create_default_context(cafile=str(git_server.ca_file))
    connection = http.client.HTTPSConnection("127.0.0.1", git_server.port, context=context, timeout=10)
    try:
        connection.request("GET", f"/{REPO}/info/refs?service=git-upload-pack")
        response = connection.getresponse()
        response.read()
    finally:
        connection.close()

    assert response.status == 401
    assert response.getheader("WWW-Authenticate") == 'Basic realm="git"'
    assert git_server.requests == [
        RequestRecord(
            method="GET",
            path=f"/{REPO}/info/refs",
            service="git-upload-pack",
            status=401,
            username=None,
            authorization_present=False,
        )
    ]


def test_fixed_username_and_403_for_bad_credentials(tls_material: TlsMaterial, tmp_path: Path) -> None:
    with GitHttpServer(
        tmp_path / "srv403", tls_material, token="t0ken", username="ci", bad_credentials_status=403
    ) as server:
        make_bare_repo(server.root, "app.git", {"a": "b"})
        url = server.url_for("app.git")

        wrong_user = run_git("ls-remote", url, env=client_env(server, username="intruder"))
        right_user = run_git("ls-remote", url, env=client_env(server, username="ci"))

    assert wrong_user.returncode != 0
    assert "403" in wrong_user.stderr
    assert right_user.returncode == 0
    assert "refs/heads/main" in right_user.stdout
    assert (server.requests[0].username, server.requests[0].status) == ("intruder", 403)


def test_unknown_ca_fails_tls_verification(git_server: GitHttpServer, url: str, tmp_path: Path) -> None:
    other_ca = make_unrelated_ca(tmp_path / "other")

    result = run_git("ls-remote", url, env=client_env(git_server, ca_file=other_ca))

    assert result.returncode != 0
    assert "certificate" in result.stderr.lower()
    assert git_server.requests == []  # the handshake failed before any HTTP request


# -- argv recorder ------------------------------------------------------------------------


def test_argv_recorder_sees_subprocess_and_gitpython_calls(
    git_argv_recorder: GitArgvRecorder, git_server: GitHttpServer, url: str, tmp_path: Path
) -> None:
    env = client_env(git_server)
    git_ok("ls-remote", "--heads", url, env=env)
    git.Repo.clone_from(url, tmp_path / "gp-clone", env=env)

    calls = git_argv_recorder.calls()
    assert ["git", "ls-remote", "--heads", url] in calls
    assert any(call[1] == "clone" and url in call for call in calls)
    assert str(git_argv_recorder.wrapper) == git.Git.GIT_PYTHON_GIT_EXECUTABLE
    assert all(git_server.token not in arg for call in calls for arg in call)
    assert (tmp_path / "gp-clone/README.md").read_text() == "# manifests\n"
