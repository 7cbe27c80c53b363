"""Merge-request mode and promotion, against the real git server and the GitLab REST contract server.

Both servers share one bare repository: an MR's source branch is a real branch, and merging really merges.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import gitlab
import pytest

from conftest import CliResult, CliRunner
from manifests import manifest_files, overlay
from servers.git_repos import GitError, commit_files, make_bare_repo, read_blob, rev_parse
from servers.gitlab_api import GitLabContractServer, Scripted
from servers.gitserver import GitHttpServer

pytest_plugins = ["servers.git_fixtures", "servers.gitlab_fixtures"]
pytestmark = pytest.mark.integration

APPS = ["app0", "app1", "app2"]
DIGEST = "sha256:" + "c" * 64
Run = Callable[..., CliResult]


@pytest.fixture
def repo(git_server: GitHttpServer, gitlab_api: GitLabContractServer) -> Path:
    bare = make_bare_repo(git_server.root, "group/manifests.git", manifest_files(APPS))
    gitlab_api.add_user("ci-bot")
    gitlab_api.add_user("alice")
    gitlab_api.add_token(git_server.token, username="ci-bot", scopes=("api", "write_repository"))
    gitlab_api.add_project("group/manifests", bare)
    gitlab_api.set_checking_polls(1)
    return bare


@pytest.fixture
def run(
    git_server: GitHttpServer,
    gitlab_api: GitLabContractServer,
    gitops: CliRunner,
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Run:
    monkeypatch.setenv("GITOPS_TOKEN", git_server.token)
    monkeypatch.setenv("GITOPS_BACKOFF_SECONDS", "0.05")
    monkeypatch.setenv("GITOPS_POLL_INTERVAL", "0.05")

    def invoke(command: str, *args: str | Path) -> CliResult:
        return gitops(
            command,
            "--repo-url",
            git_server.url_for("group/manifests.git"),
            "--ca-file",
            git_server.ca_file,
            "--gitlab-url",
            gitlab_api.url,
            *args,
        )

    return invoke


def mr_deploy(run: Run, image: str, *args: str) -> dict[str, object]:
    result = run(
        "deploy", "--mode", "merge-request", "--app", "app0", "--image", image, "--format", "json", *args
    )
    assert result.code == 0, result.err
    data: dict[str, object] = json.loads(result.out)
    return data


def branch_log(repo: Path, ref: str) -> list[str]:
    out = subprocess.run(
        ["git", "--git-dir", str(repo), "log", "--format=%H %P %s", ref],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()


def test_creates_one_merge_request_per_environment(
    run: Run, repo: Path, gitlab_api: GitLabContractServer, tmp_path: Path
) -> None:
    main = rev_parse(repo, "main")
    dotenv = tmp_path / "mr.env"
    data = mr_deploy(
        run,
        "registry.example.com/shop/app0:2.0",
        "--env",
        "staging",
        "--env",
        "prod",
        "--label",
        "gitops",
        "--assignee",
        "alice",
        "--dotenv",
        str(dotenv),
    )
    mrs = data["merge_requests"]
    assert isinstance(mrs, list)
    assert [(m["environment"], m["action"], m["source_branch"]) for m in mrs] == [
        ("staging", "created", "gitops/app0/staging"),
        ("prod", "created", "gitops/app0/prod"),
    ]
    assert rev_parse(repo, "main") == main
    prod_file = read_blob(repo, "gitops/app0/prod", overlay("app0", "prod"))
    assert 'newTag: "2.0"' in prod_file
    assert read_blob(repo, "gitops/app0/prod", overlay("app0", "staging")) == read_blob(
        repo, "main", overlay("app0", "staging")
    )
    _, parent, subject = branch_log(repo, "gitops/app0/prod")[0].split(" ", 2)
    assert parent == main and not subject.startswith("[skip ci]")
    stored = gitlab_api.merge_requests("group/manifests")
    assert len(stored) == 2
    prod = next(m for m in stored if m["source_branch"] == "gitops/app0/prod")
    assert prod["labels"] == ["gitops"] and [a["username"] for a in prod["assignees"]] == ["alice"]
    assert (
        "| `app0` | `prod` | `registry.example.com/shop/app0:1.0.0` | `registry.example.com/shop/app0:2.0` |"
        in prod["description"]
    )
    values = dict(line.split("=", 1) for line in dotenv.read_text().splitlines())
    assert values["GITOPS_MR_URL_PROD"] == prod["web_url"] and values["GITOPS_MR_IID_PROD"] == str(
        prod["iid"]
    )


def test_rerun_with_same_image_changes_nothing(
    run: Run, repo: Path, gitlab_api: GitLabContractServer
) -> None:
    mr_deploy(run, "registry.example.com/shop/app0:2.0", "--env", "prod")
    head = rev_parse(repo, "gitops/app0/prod")
    writes_before = [c for c in gitlab_api.calls if c.method in ("POST", "PUT")]
    again = mr_deploy(run, "registry.example.com/shop/app0:2.0", "--env", "prod")
    assert again["merge_requests"][0]["action"] == "unchanged"  # type: ignore[index]
    assert rev_parse(repo, "gitops/app0/prod") == head
    assert [c for c in gitlab_api.calls if c.method in ("POST", "PUT")] == writes_before


def test_new_image_rebuilds_branch_on_target_tip_and_updates_same_mr(
    run: Run, repo: Path, gitlab_api: GitLabContractServer
) -> None:
    first = mr_deploy(run, "registry.example.com/shop/app0:2.0", "--env", "prod")
    moved = commit_files(repo, "main", {"README.md": "# manifests, moved\n"}, "unrelated change")
    second = mr_deploy(run, "registry.example.com/shop/app0:3.0", "--env", "prod")
    assert second["merge_requests"][0]["action"] == "updated"  # type: ignore[index]
    assert second["merge_requests"][0]["iid"] == first["merge_requests"][0]["iid"]  # type: ignore[index]
    log = branch_log(repo, "gitops/app0/prod")
    assert log[0].split(" ")[1] == moved  # rebuilt on the new target tip, not stacked on the old branch
    assert 'newTag: "3.0"' in read_blob(repo, "gitops/app0/prod", overlay("app0", "prod"))
    opened = [m for m in gitlab_api.merge_requests("group/manifests") if m["state"] == "opened"]
    assert len(opened) == 1 and "3.0" in opened[0]["title"]


def test_conflicting_branch_is_rebuilt(run: Run, repo: Path, gitlab_api: GitLabContractServer) -> None:
    mr_deploy(run, "registry.example.com/shop/app0:2.0", "--env", "prod")
    text = read_blob(repo, "main", overlay("app0", "prod")).replace('newTag: "1.0.0"', 'newTag: "1.5.0"')
    tip = commit_files(repo, "main", {overlay("app0", "prod"): text}, "hotfix on main")
    data = mr_deploy(run, "registry.example.com/shop/app0:2.0", "--env", "prod")
    assert data["merge_requests"][0]["action"] == "updated"  # type: ignore[index]
    assert branch_log(repo, "gitops/app0/prod")[0].split(" ")[1] == tip


def test_auto_merge_without_pipelines_merges_directly(run: Run, repo: Path) -> None:
    data = mr_deploy(run, "registry.example.com/shop/app0:2.0", "--env", "prod", "--auto-merge")
    assert data["merge_requests"][0]["action"] == "merged"  # type: ignore[index]
    assert 'newTag: "2.0"' in read_blob(repo, "main", overlay("app0", "prod"))


def test_auto_merge_waits_for_the_pipeline(
    run: Run, repo: Path, gitlab_api: GitLabContractServer, git_server: GitHttpServer
) -> None:
    project = gitlab_api.add_project(
        "group/piped",
        make_bare_repo(git_server.root, "group/piped.git", manifest_files(APPS)),
        has_pipelines=True,
        pipeline_polls=2,
    )
    result = run(
        "deploy",
        "--repo-url",
        git_server.url_for("group/piped.git"),
        "--mode",
        "merge-request",
        "--app",
        "app0",
        "--env",
        "prod",
        "--image",
        "registry.example.com/shop/app0:2.0",
        "--auto-merge",
        "--format",
        "json",
    )
    assert result.code == 0, result.err
    assert json.loads(result.out)["merge_requests"][0]["action"] == "auto-merge"
    gl = gitlab.Gitlab(gitlab_api.url, private_token=git_server.token)
    mr = gl.projects.get(project["id"]).mergerequests.list(get_all=True)[0]
    for _ in range(10):  # GitLab merges when the pipeline succeeds
        mr = gl.projects.get(project["id"]).mergerequests.get(mr.iid)
        if mr.state == "merged":
            break
    assert mr.state == "merged"
    assert 'newTag: "2.0"' in read_blob(git_server.root / "group/piped.git", "main", overlay("app0", "prod"))


def test_promote_copies_exactly_the_source_images(run: Run, repo: Path) -> None:
    staging = read_blob(repo, "main", overlay("app1", "staging")).replace(
        '    newTag: "1.0.0"\n', f'    newTag: "1.4.2"\n    digest: {DIGEST}\n'
    )
    commit_files(repo, "main", {overlay("app1", "staging"): staging}, "staging runs 1.4.2")
    result = run("promote", "--app", "app1", "--from", "staging", "--to", "prod", "--format", "json")
    assert result.code == 0, result.err
    prod = read_blob(repo, "main", overlay("app1", "prod"))
    assert f'    newTag: "1.4.2"\n    digest: {DIGEST}\n' in prod
    assert prod.startswith("# app1 in prod\n")
    assert json.loads(result.out)["environments"]["prod"]["images"][0]["after"] == (
        f"registry.example.com/shop/app1:1.4.2@{DIGEST}"
    )
    again = run("promote", "--app", "app1", "--from", "staging", "--to", "prod")
    assert again.code == 0 and "already up to date" in again.out


def test_promote_all_apps_as_merge_requests(
    run: Run, repo: Path, gitlab_api: GitLabContractServer, tmp_path: Path
) -> None:
    for app in ("app0", "app2"):
        text = read_blob(repo, "main", overlay(app, "staging")).replace('"1.0.0"', '"7.0"')
        commit_files(repo, "main", {overlay(app, "staging"): text}, f"{app} staging 7.0")
    dotenv = tmp_path / "promote.env"
    result = run(
        "promote",
        "--all-apps",
        "--from",
        "staging",
        "--to",
        "prod",
        "--mode",
        "merge-request",
        "--format",
        "json",
        "--dotenv",
        dotenv,
    )
    assert result.code == 0, result.err
    actions = {(m["app"], m["action"]) for m in json.loads(result.out)["merge_requests"]}
    assert actions == {("app0", "created"), ("app1", "up-to-date"), ("app2", "created")}
    opened = {m["source_branch"]: m for m in gitlab_api.merge_requests("group/manifests")}
    assert sorted(opened) == ["gitops/app0/prod", "gitops/app2/prod"]

    # Several apps: every variable names its app, so no app's MR hides another's.
    values = dict(line.split("=", 1) for line in dotenv.read_text().splitlines())
    assert values["GITOPS_MR_URL_APP0_PROD"] == opened["gitops/app0/prod"]["web_url"]
    assert values["GITOPS_MR_URL_APP2_PROD"] == opened["gitops/app2/prod"]["web_url"]
    assert values["GITOPS_IMAGE_APP2_PROD"] == "registry.example.com/shop/app2:7.0"
    assert values["GITOPS_APPS"] == "app0 app1 app2" and values["GITOPS_ENVIRONMENTS"] == "prod"
    assert not any(key.startswith(("GITOPS_MR_URL_PROD", "GITOPS_IMAGE_PROD")) for key in values)


def test_gitlab_auth_failure_names_variable_and_scopes(
    run: Run, gitlab_api: GitLabContractServer, git_server: GitHttpServer
) -> None:
    gitlab_api.add_token("other", username="ci-bot")
    result = run(
        "deploy",
        "--mode",
        "merge-request",
        "--app",
        "app0",
        "--env",
        "prod",
        "--image",
        "r.io/app0:2",
        "--gitlab-url",
        gitlab_api.url + "/wrong-root",
    )
    assert result.code == 1
    assert "GITOPS_TOKEN" in result.err and git_server.token not in result.err
    assert "Traceback" not in result.err


def test_unknown_project_names_the_path(
    run: Run, git_server: GitHttpServer, gitlab_api: GitLabContractServer
) -> None:
    make_bare_repo(git_server.root, "other/unknown.git", manifest_files(APPS))
    result = run(
        "deploy",
        "--repo-url",
        git_server.url_for("other/unknown.git"),
        "--mode",
        "merge-request",
        "--app",
        "app0",
        "--env",
        "prod",
        "--image",
        "r.io/app0:2",
    )
    assert result.code == 1
    assert "other/unknown was not found" in result.err


def test_job_token_cannot_open_merge_requests(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    token = __import__("os").environ["GITOPS_TOKEN"]
    monkeypatch.delenv("GITOPS_TOKEN")
    monkeypatch.setenv("CI_JOB_TOKEN", token)
    result = run(
        "deploy", "--mode", "merge-request", "--app", "app0", "--env", "prod", "--image", "r.io/app0:2"
    )
    assert result.code == 2
    assert "CI_JOB_TOKEN cannot create merge requests" in result.err and "api" in result.err


def test_dry_run_opens_nothing(run: Run, repo: Path, gitlab_api: GitLabContractServer) -> None:
    data = mr_deploy(run, "registry.example.com/shop/app0:2.0", "--env", "prod", "--dry-run")
    assert data["merge_requests"][0]["action"] == "dry-run"  # type: ignore[index]
    assert gitlab_api.merge_requests("group/manifests") == []
    with pytest.raises(GitError):
        rev_parse(repo, "gitops/app0/prod")


def test_a_merge_request_whose_answer_was_lost_is_created_once(
    run: Run, repo: Path, gitlab_api: GitLabContractServer
) -> None:
    gitlab_api.api.scripted.append(Scripted("POST", "/merge_requests", lose_answer=True))
    data = mr_deploy(run, "registry.example.com/shop/app0:2.0.0", "--env", "prod")
    mrs = data["merge_requests"]
    assert isinstance(mrs, list)
    (mr,) = mrs
    assert mr["action"] in ("created", "updated") and mr["iid"] == 1
    created = [c for c in gitlab_api.calls if c.method == "POST" and c.path.endswith("/merge_requests")]
    assert len(created) == 1 and len(gitlab_api.merge_requests("group/manifests")) == 1
