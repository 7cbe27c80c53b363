"""`gitops-ci deploy` against a real git smart-HTTP server over TLS with Basic auth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from conftest import CliResult, CliRunner
from manifests import manifest_files, overlay
from servers.git_repos import commit_count, commit_files, log_messages, make_bare_repo, read_blob, rev_parse
from servers.gitserver import GitHttpServer
from servers.tls import make_unrelated_ca

if TYPE_CHECKING:
    from servers.git_fixtures import GitArgvRecorder

pytest_plugins = ["servers.git_fixtures"]
pytestmark = pytest.mark.integration

APPS = [f"app{i}" for i in range(20)]
REPO = "group/manifests.git"
Deploy = Callable[..., CliResult]


@pytest.fixture
def repo(git_server: GitHttpServer) -> Path:
    return make_bare_repo(git_server.root, REPO, manifest_files(APPS))


@pytest.fixture
def run_deploy(
    git_server: GitHttpServer, repo: Path, gitops: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> Deploy:
    monkeypatch.setenv("GITOPS_TOKEN", git_server.token)
    monkeypatch.setenv("GITOPS_BACKOFF_SECONDS", "0.05")

    def invoke(*args: str | Path, app: str = "app0", env: tuple[str, ...] = ("dev",)) -> CliResult:
        envs = [a for e in env for a in ("--env", e)]
        return gitops(
            "deploy",
            "--repo-url",
            git_server.url_for(REPO),
            "--ca-file",
            git_server.ca_file,
            "--app",
            app,
            *envs,
            *args,
        )

    return invoke


def test_happy_path_changes_only_the_tag_line(run_deploy: Deploy, repo: Path) -> None:
    before = read_blob(repo, "main", overlay("app0", "dev"))
    result = run_deploy("--image", "registry.example.com/shop/app0:2.0.0")
    assert result.code == 0, result.err
    after = read_blob(repo, "main", overlay("app0", "dev"))
    assert after == before.replace('newTag: "1.0.0"', 'newTag: "2.0.0"')
    assert log_messages(repo, "main")[0] == (
        "[skip ci] update image of app app0 - dev to registry.example.com/shop/app0:2.0.0"
    )
    assert commit_count(repo, "main") == 2
    assert result.out.startswith(f"pushed {rev_parse(repo, 'main')} to main of ")


def test_rerun_is_idempotent(run_deploy: Deploy, repo: Path) -> None:
    assert run_deploy("--image", "registry.example.com/shop/app0:2.0.0").code == 0
    head = rev_parse(repo, "main")
    again = run_deploy("--image", "registry.example.com/shop/app0:2.0.0", "--format", "json")
    assert again.code == 0
    data = json.loads(again.out)
    assert data["status"] == "up-to-date" and data["commit"] is None and data["base_commit"] == head
    assert rev_parse(repo, "main") == head
    text = run_deploy("--image", "registry.example.com/shop/app0:2.0.0")
    assert (text.out + text.err).count("up to date") + (text.out + text.err).count("already holds") == 1


def test_dry_run_diffs_name_repo_paths(run_deploy: Deploy, repo: Path) -> None:
    result = run_deploy("--image", "registry.example.com/shop/app0:2.0.0", "--dry-run")
    assert result.code == 0, result.err
    path = "kustomize/app0/overlays/dev/kustomization.yaml"
    assert result.out.startswith(f"--- a/{path}\n+++ b/{path}\n")
    assert "gitops-ci-" not in result.out


def test_no_credentials_at_all_says_which_variables_were_looked_at(
    run_deploy: Deploy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITOPS_TOKEN")
    result = run_deploy("--image", "registry.example.com/shop/app0:2.0.0")
    assert result.code == 1
    assert (
        "asks for credentials (401) and none is set: looked for GITOPS_TOKEN, GITOPS_PASSWORD" in result.err
    )
    assert "was rejected" not in result.err


def test_several_environments_in_one_commit(run_deploy: Deploy, repo: Path) -> None:
    result = run_deploy(
        "--image",
        "registry.example.com/shop/app3:3.1",
        "--format",
        "json",
        app="app3",
        env=("dev", "staging", "prod"),
    )
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["changed_files"] == [overlay("app3", e) for e in ("dev", "staging", "prod")]
    assert data["environments"]["prod"]["images"] == [
        {
            "name": "app3",
            "before": "registry.example.com/shop/app3:1.0.0",
            "after": "registry.example.com/shop/app3:3.1",
        }
    ]
    assert commit_count(repo, "main") == 2
    assert log_messages(repo, "main")[0].startswith(
        "[skip ci] update image of app app3 - dev, staging, prod to "
    )
    for env in ("dev", "staging", "prod"):
        assert 'newTag: "3.1"' in read_blob(repo, "main", overlay("app3", env))


def test_commit_metadata_from_gitlab(run_deploy: Deploy, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITLAB_USER_NAME", "Ada Lovelace")
    monkeypatch.setenv("GITLAB_USER_EMAIL", "ada@example.com")
    monkeypatch.setenv("CI_PROJECT_URL", "https://gitlab.example.com/shop/app0")
    monkeypatch.setenv("CI_COMMIT_SHA", "a" * 40)
    monkeypatch.setenv("CI_PIPELINE_URL", "https://gitlab.example.com/shop/app0/-/pipelines/7")
    assert run_deploy("--image", "registry.example.com/shop/app0:2.0.0").code == 0
    show = subprocess.run(
        ["git", "--git-dir", str(repo), "log", "-1", "--format=%an <%ae>|%cn|%B", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert show.startswith("Ada Lovelace <ada@example.com>|gitops-ci|[skip ci] update image")
    assert "Source-Project: https://gitlab.example.com/shop/app0\n" in show
    assert f"Source-Commit: {'a' * 40}\n" in show
    assert "Pipeline: https://gitlab.example.com/shop/app0/-/pipelines/7" in show


def test_server_error_on_first_push_is_retried_and_lands_once(
    run_deploy: Deploy, repo: Path, git_server: GitHttpServer
) -> None:
    git_server.fail_next("git-receive-pack", status=500, times=1)
    result = run_deploy("--image", "registry.example.com/shop/app0:2.0.0", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["attempts"] == 2
    assert commit_count(repo, "main") == 2
    pushes = [r.status for r in git_server.requests if r.service == "git-receive-pack" and r.method == "POST"]
    assert pushes[0] == 500 and pushes[-1] == 200


def test_moved_branch_is_fetched_and_the_edit_reapplied(
    run_deploy: Deploy, repo: Path, git_server: GitHttpServer
) -> None:
    def concurrent_push() -> None:
        git_server.before_receive_pack = None
        text = read_blob(repo, "main", overlay("app0", "dev")).replace(
            "# app0 in dev", "# app0 in dev (edited)"
        )
        commit_files(repo, "main", {overlay("app0", "dev"): text}, "someone else")

    git_server.before_receive_pack = concurrent_push
    result = run_deploy("--image", "registry.example.com/shop/app0:2.0.0", "--format", "json")
    assert result.code == 0, result.err
    assert json.loads(result.out)["attempts"] == 2
    final = read_blob(repo, "main", overlay("app0", "dev"))
    assert "# app0 in dev (edited)" in final and 'newTag: "2.0.0"' in final
    assert log_messages(repo, "main")[1] == "someone else"
    assert commit_count(repo, "main") == 3


def _branch_moves_before(pushes: int, repo: Path, git_server: GitHttpServer) -> list[int]:
    """Another job lands a commit just before each of the next `pushes` pushes reaches the server."""
    moved: list[int] = []

    def concurrent_push() -> None:
        if len(moved) < pushes:
            moved.append(len(moved) + 1)
            path = overlay(f"app{len(moved)}", "dev")
            text = read_blob(repo, "main", path).replace("1.0.0", f"1.0.{len(moved)}")
            commit_files(repo, "main", {path: text}, f"other job {len(moved)}")

    git_server.before_receive_pack = concurrent_push
    return moved


def test_lost_races_do_not_use_up_max_attempts(
    run_deploy: Deploy, repo: Path, git_server: GitHttpServer
) -> None:
    """Each lost race means another deploy landed: they are retried for --push-timeout, not counted."""
    moved = _branch_moves_before(3, repo, git_server)
    result = run_deploy(
        "--image", "registry.example.com/shop/app0:2.0.0", "--max-attempts", "1", "--format", "json"
    )
    assert result.code == 0, result.err
    assert moved == [1, 2, 3] and json.loads(result.out)["attempts"] == 4
    assert log_messages(repo, "main")[1:4] == ["other job 3", "other job 2", "other job 1"]
    assert 'newTag: "2.0.0"' in read_blob(repo, "main", overlay("app0", "dev"))


def test_a_branch_that_keeps_moving_fails_after_push_timeout(
    run_deploy: Deploy, repo: Path, git_server: GitHttpServer
) -> None:
    _branch_moves_before(10_000, repo, git_server)
    result = run_deploy("--image", "registry.example.com/shop/app0:2.0.0", "--push-timeout", "1s")
    assert result.code == 1, result.err
    (error,) = [line for line in result.err.splitlines() if line.startswith("gitops-ci: error: ")]
    assert "main kept moving: other pushes won" in error and "raise --push-timeout" in error
    assert not any("update image of app app0" in m for m in log_messages(repo, "main"))


def test_transient_push_failures_are_bounded_by_max_attempts(
    run_deploy: Deploy, repo: Path, git_server: GitHttpServer
) -> None:
    head = rev_parse(repo, "main")
    git_server.fail_next("git-receive-pack", status=500, times=2)
    result = run_deploy("--image", "registry.example.com/shop/app0:2.0.0", "--max-attempts", "2")
    assert result.code == 1, result.err
    assert "push to main failed 2 times" in result.err and "raise --max-attempts" in result.err
    assert rev_parse(repo, "main") == head


def test_twenty_concurrent_deploys_all_land_exactly_once(git_server: GitHttpServer, repo: Path) -> None:
    env = {
        **os.environ,
        "GITOPS_TOKEN": git_server.token,
        "GITOPS_CA_FILE": str(git_server.ca_file),
        "GITOPS_REPO_URL": git_server.url_for(REPO),
        "GITOPS_ENVIRONMENT": "prod",
        "GITOPS_BACKOFF_SECONDS": "0.2",
    }

    def one(app: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "gitops_ci",
                "deploy",
                "--app",
                app,
                "--image",
                f"registry.example.com/shop/{app}:9.9",
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )

    with ThreadPoolExecutor(max_workers=len(APPS)) as pool:
        results = list(pool.map(one, APPS))
    assert [r.returncode for r in results] == [0] * len(APPS), [r.stderr for r in results if r.returncode]
    messages = log_messages(repo, "main")
    assert len(messages) == len(APPS) + 1
    for app in APPS:
        assert sum(f"app {app} - prod " in m for m in messages) == 1
        assert 'newTag: "9.9"' in read_blob(repo, "main", overlay(app, "prod"))


def test_wrong_token_fails_without_retry_and_names_the_variable(
    run_deploy: Deploy, git_server: GitHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITOPS_TOKEN", "not-the-right-token")
    result = run_deploy("--image", "registry.example.com/shop/app0:2.0.0")
    assert result.code == 1
    assert "GITOPS_TOKEN was rejected" in result.err
    assert "not-the-right-token" not in result.err + result.out
    assert (
        len([r for r in git_server.requests if r.status == 401]) <= 2
    )  # git's own probe + one try: no retry loop


def test_seed_password_variable_and_job_token_fallback(
    run_deploy: Deploy, git_server: GitHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITOPS_TOKEN")
    monkeypatch.setenv("CI_JOB_TOKEN", "wrong-job-token")
    failed = run_deploy("--image", "registry.example.com/shop/app0:2.0.0")
    assert failed.code == 1 and "CI_JOB_TOKEN was rejected" in failed.err
    monkeypatch.setenv("GITOPS_PASSWORD", git_server.token)
    assert run_deploy("--image", "registry.example.com/shop/app0:2.0.0").code == 0


def test_unknown_ca_fails_naming_the_fix(run_deploy: Deploy, tmp_path: Path) -> None:
    result = run_deploy(
        "--image", "registry.example.com/shop/app0:2.0.0", "--ca-file", make_unrelated_ca(tmp_path)
    )
    assert result.code == 1
    assert "TLS verification" in result.err and "CI_SERVER_TLS_CA_FILE" in result.err


def test_token_never_in_argv_workdir_or_output(
    run_deploy: Deploy, git_server: GitHttpServer, git_argv_recorder: GitArgvRecorder, tmp_path: Path
) -> None:
    workdir = tmp_path / "kept"
    result = run_deploy("--image", "registry.example.com/shop/app0:2.0.0", "--workdir", workdir, "--debug")
    assert result.code == 0, result.err
    calls = git_argv_recorder.calls()
    assert any("clone" in c for c in calls) and any("push" in c for c in calls)
    assert all(git_server.token not in arg for call in calls for arg in call)
    for path in workdir.rglob("*"):
        if path.is_file():
            assert git_server.token.encode() not in path.read_bytes(), path
    assert "extraHeader" not in (workdir / ".git" / "config").read_text()
    assert git_server.token not in result.out + result.err


def test_an_uncontended_deploy_is_five_git_commands(
    run_deploy: Deploy, repo: Path, git_argv_recorder: GitArgvRecorder
) -> None:
    result = run_deploy("--image", "registry.example.com/shop/app0:2.0.0", "--format", "json")
    assert result.code == 0, result.err
    commands = [next(a for a in call[1:] if not a.startswith("-")) for call in git_argv_recorder.calls()]
    assert commands == ["clone", "sparse-checkout", "reset", "commit", "push"]  # HEAD is read from .git
    assert json.loads(result.out)["commit"] == rev_parse(repo, "main")


def test_dry_run_pushes_nothing(run_deploy: Deploy, repo: Path) -> None:
    head = rev_parse(repo, "main")
    result = run_deploy("--image", "registry.example.com/shop/app0:2.0.0", "--dry-run")
    assert result.code == 0
    assert '+    newTag: "2.0.0"' in result.out
    assert rev_parse(repo, "main") == head


def test_dotenv_report(run_deploy: Deploy, repo: Path, tmp_path: Path) -> None:
    dotenv = tmp_path / "deploy.env"
    assert run_deploy("--image", "registry.example.com/shop/app0:2.0.0", "--dotenv", dotenv).code == 0
    values = dict(line.split("=", 1) for line in dotenv.read_text().splitlines())
    assert values["GITOPS_COMMIT_SHA"] == rev_parse(repo, "main")
    assert values["GITOPS_IMAGE_DEV"] == "registry.example.com/shop/app0:2.0.0"
    assert values["GITOPS_CHANGED"] == "true"


def test_a_dotenv_report_over_the_instance_limit_keeps_what_later_jobs_need(
    run_deploy: Deploy, repo: Path, tmp_path: Path
) -> None:
    dotenv = tmp_path / "deploy.env"
    image = "registry.example.com/shop/app0:2.0.0"
    result = run_deploy(
        "--image", image, "--dotenv", dotenv, "--dotenv-max-variables", "8", env=("dev", "staging", "prod")
    )
    assert result.code == 0, result.err
    keys = [line.split("=", 1)[0] for line in dotenv.read_text().splitlines()]
    assert len(keys) == 8 and keys[:3] == ["GITOPS_STATUS", "GITOPS_COMMIT_SHA", "GITOPS_BASE_COMMIT_SHA"]
    assert "variable(s) left out to stay within GitLab's limits (8 variables" in result.err
    assert commit_count(repo, "main") == 2


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--env", "qa"], "overlay kustomize/app0/overlays/qa for environment 'qa' does not exist"),
        (["--path-template", "/etc/{app}"], "leaves the repository"),
        (["--path-template", "kustomize/{app}/../../../x"], "leaves the repository"),
        (["--path-template", "kustomize/{application}"], "available: {app}, {env}"),
        (["--image", "registry.example.com/shop/app0:bad tag"], "whitespace"),
        (["--message", "{nope}"], "available: {app}, {env}, {image}"),
        (["--push-timeout", "0"], "duration '0' must be positive"),
        (["--push-timeout", "soon"], "--push-timeout"),
    ],
)
def test_bad_input_exits_2(run_deploy: Deploy, repo: Path, args: list[str], fragment: str) -> None:
    head = rev_parse(repo, "main")
    image = [] if "--image" in args else ["--image", "registry.example.com/shop/app0:2.0.0"]
    result = run_deploy(*image, *args)
    assert result.code == 2, result.err
    errors = [line for line in result.err.splitlines() if line.startswith("gitops-ci: error: ")]
    assert len(errors) == 1 and fragment in errors[0]
    assert "Traceback" not in result.err
    assert rev_parse(repo, "main") == head


def test_an_empty_manifest_repo_is_bad_input(
    run_deploy: Deploy, git_server: GitHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    subprocess.run(["git", "init", "-q", "--bare", str(git_server.root / "group/empty.git")], check=True)
    result = run_deploy(
        "--image", "registry.example.com/shop/app0:2.0.0", "--repo-url", git_server.url_for("group/empty.git")
    )
    assert result.code == 2, result.err
    assert "has no commits yet; push the manifests" in result.err and "Traceback" not in result.err


def test_credentials_in_url_are_refused(gitops: CliRunner) -> None:
    result = gitops(
        "deploy",
        "--repo-url",
        "https://user:secret@gitlab.example.com/g/m.git",
        "--app",
        "a",
        "--env",
        "dev",
        "--image",
        "r.io/a:1",
    )
    assert result.code == 2
    assert "contains credentials" in result.err and "secret" not in result.err
