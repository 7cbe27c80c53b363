"""`--transport api`: deploys, promotions and merge requests through GitLab's Files, Tree and Commits APIs
(the contract server, backed by the real bare repository), with no clone and no git process."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

from conftest import CliResult, CliRunner
from gitops_ci.onboard.conventions import Cluster, Conventions, Environment, render_conventions
from manifests import manifest_files, overlay
from servers.connect_proxy import ConnectProxy
from servers.git_repos import (
    Symlink,
    commit_count,
    commit_files,
    log_messages,
    make_bare_repo,
    read_blob,
    rev_parse,
)
from servers.gitlab_api import GitLabContractServer, Scripted
from servers.tls import TlsMaterial

if TYPE_CHECKING:
    from servers.git_fixtures import GitArgvRecorder

pytest_plugins = ["servers.git_fixtures", "servers.gitlab_fixtures"]
pytestmark = pytest.mark.integration

APPS = [f"app{i}" for i in range(20)]
TOKEN = "glpat-api-transport"
Run = Callable[..., CliResult]
CONVENTIONS = Conventions(  # init's gitops-ci.yaml for the layout of these tests
    repo_url="https://gitlab.example.com/group/manifests.git", branch="main",
    clusters=(Cluster("nonprod", "https://nonprod.example.com"),),
    environments=(Environment("dev", "nonprod"),), path_template="kustomize/{app}/overlays/{env}",
)  # fmt: skip


@pytest.fixture
def bare(tmp_path: Path, gitlab_api: GitLabContractServer) -> Path:
    repo = make_bare_repo(tmp_path / "srv", "group/manifests.git", manifest_files(APPS))
    gitlab_api.add_user("ci-bot")
    gitlab_api.add_token(TOKEN, username="ci-bot", scopes=("api",))
    gitlab_api.add_project("group/manifests", repo)
    return repo


@pytest.fixture
def run(
    gitlab_api: GitLabContractServer, gitops: CliRunner, bare: Path, monkeypatch: pytest.MonkeyPatch
) -> Run:
    monkeypatch.setenv("GITOPS_TOKEN", TOKEN)
    monkeypatch.setenv("GITOPS_BACKOFF_SECONDS", "0.02")

    def invoke(command: str, *args: str | Path, branch: bool = True) -> CliResult:
        url = f"{gitlab_api.url}/group/manifests.git"
        pinned = ["--branch", "main"] if branch else []
        return gitops(command, "--transport", "api", "--repo-url", url, *pinned, "--format", "json", *args)

    return invoke


def deploy(
    run: Run, app: str = "app0", tag: str = "2.0.0", *envs: str, path_template: str = "", **kwargs: bool
) -> CliResult:
    env_args = [a for env in envs or ("dev",) for a in ("--env", env)]
    template = ["--path-template", path_template] if path_template else []
    image = f"registry.example.com/shop/{app}:{tag}"
    return run("deploy", "--app", app, *env_args, "--image", image, *template, **kwargs)


def another_job_edits_after_our_read(gitlab_api: GitLabContractServer, bare: Path, path: str) -> None:
    """Once we have read `path`, another job changes a comment in it: between our read and our POST."""

    def edit(read: str) -> None:
        if read == path:
            gitlab_api.api.faults.after_file_read = None
            text = read_blob(bare, "main", read).replace("# app0 in dev", "# app0 in dev (edited)")
            commit_files(bare, "main", {read: text}, "another job")

    gitlab_api.api.faults.after_file_read = edit


def posts(gitlab_api: GitLabContractServer) -> int:
    return sum(1 for c in gitlab_api.calls if c.method == "POST" and c.path.endswith("/repository/commits"))


def test_a_deploy_is_three_requests_and_one_commit(
    run: Run, bare: Path, gitlab_api: GitLabContractServer, git_argv_recorder: GitArgvRecorder
) -> None:
    before = read_blob(bare, "main", overlay("app0", "dev"))
    result = deploy(run)
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["status"] == "pushed" and data["commit"] == rev_parse(bare, "main")
    assert read_blob(bare, "main", overlay("app0", "dev")) == before.replace('"1.0.0"', '"2.0.0"')
    assert log_messages(bare, "main")[0] == (
        "[skip ci] update image of app app0 - dev to registry.example.com/shop/app0:2.0.0"
    )
    # gitops-ci.yaml (absent here: the default path template) and the kustomization together, the commit
    calls = [(c.method, c.path.rsplit("/", 1)[-1].rsplit("%2F", 1)[-1]) for c in gitlab_api.calls]
    assert sorted(calls[:2]) == [("GET", "gitops-ci.yaml"), ("GET", "kustomization.yaml")]
    assert calls[2:] == [("POST", "commits")]
    # nothing of git on the runner (the contract server's own git calls name their --git-dir)
    assert [call for call in git_argv_recorder.calls() if not call[1].startswith("--git-dir=")] == []


def test_the_overlay_is_read_together_with_the_settings_not_after_their_answer(
    run: Run, gitlab_api: GitLabContractServer
) -> None:
    overlay_asked, held = threading.Event(), []

    def hold_the_settings_answer(path: str) -> None:  # until the overlay's request has arrived
        if path.endswith("kustomization.yaml"):
            overlay_asked.set()
        elif path == "gitops-ci.yaml":
            held.append(overlay_asked.wait(5))

    gitlab_api.api.faults.before_file_read = hold_the_settings_answer
    result = deploy(run)
    assert result.code == 0, result.err
    assert held == [True] and posts(gitlab_api) == 1 and len(gitlab_api.calls) == 3


def test_an_overlay_read_after_the_branch_moved_is_read_again_at_the_settings_commit(
    run: Run, bare: Path, gitlab_api: GitLabContractServer
) -> None:
    path, settings_read = overlay("app0", "dev"), threading.Event()
    commit_files(bare, "main", {"gitops-ci.yaml": render_conventions(CONVENTIONS)}, "init")

    def another_job_lands_between_the_two_reads(read: str) -> None:
        if read == "gitops-ci.yaml":
            gitlab_api.api.faults.after_file_read = None
            text = read_blob(bare, "main", path).replace("# app0 in dev", "# app0 in dev (edited)")
            commit_files(bare, "main", {path: text}, "another job")
            settings_read.set()

    def after_the_settings(read: str) -> None:
        if read == path:
            gitlab_api.api.faults.before_file_read = None
            settings_read.wait(10)

    gitlab_api.api.faults.after_file_read = another_job_lands_between_the_two_reads
    gitlab_api.api.faults.before_file_read = after_the_settings
    result = deploy(run)
    assert result.code == 0, result.err
    reads = [c.query.get("ref") for c in gitlab_api.calls if c.path.endswith("kustomization.yaml")]
    first = rev_parse(bare, "main~2")  # the commit gitops-ci.yaml was read at: the overlay is read there
    assert reads[:2] == ["main", first], reads
    text = read_blob(bare, "main", path)
    assert "(edited)" in text and 'newTag: "2.0.0"' in text and log_messages(bare, "main")[1] == "another job"


def test_an_overlay_absent_when_read_ahead_but_there_at_the_settings_commit_is_deployed(
    run: Run, bare: Path, gitlab_api: GitLabContractServer
) -> None:
    commit_files(bare, "main", {"gitops-ci.yaml": render_conventions(CONVENTIONS)}, "init")
    path, created = overlay("web", "dev"), threading.Event()

    def new_app_lands_after_the_overlay_read(read: str) -> None:
        if read == path:  # answered 404: the app is not there yet
            gitlab_api.api.faults.after_file_read = None
            commit_files(bare, "main", {path: read_blob(bare, "main", overlay("app0", "dev"))}, "new-app web")
            created.set()

    def settings_after_new_app(read: str) -> None:
        if read == "gitops-ci.yaml":
            gitlab_api.api.faults.before_file_read = None
            created.wait(10)

    gitlab_api.api.faults.after_file_read = new_app_lands_after_the_overlay_read
    gitlab_api.api.faults.before_file_read = settings_after_new_app
    result = deploy(run, "web")
    assert result.code == 0, result.err
    assert (
        'newTag: "2.0.0"' in read_blob(bare, "main", path) and log_messages(bare, "main")[1] == "new-app web"
    )


def test_with_a_path_template_a_deploy_is_two_requests(run: Run, gitlab_api: GitLabContractServer) -> None:
    result = run(
        "deploy", "--app", "app0", "--env", "dev", "--image", "registry.example.com/shop/app0:2.0.0",
        "--path-template", "kustomize/{app}/overlays/{env}",
    )  # fmt: skip
    assert result.code == 0, result.err
    assert [c.method for c in gitlab_api.calls] == ["GET", "POST"]  # the kustomization, the commit


def test_another_kustomization_name_is_found_by_listing_the_overlay(
    run: Run, bare: Path, gitlab_api: GitLabContractServer
) -> None:
    path = overlay("app0", "dev")
    commit_files(bare, "main", {path: None, path.replace(".yaml", ".yml"): read_blob(bare, "main", path)},
                 "kustomization.yml")  # fmt: skip
    result = deploy(run)
    assert result.code == 0, result.err
    assert 'newTag: "2.0.0"' in read_blob(bare, "main", path.replace(".yaml", ".yml"))
    calls = [c.path.rsplit("/", 1)[-1].rsplit("%2F", 1)[-1] for c in gitlab_api.calls]
    assert sorted(calls[:2]) == ["gitops-ci.yaml", "kustomization.yaml"]
    # a 404 read ahead names no commit: read again at the first read's before the overlay is listed
    assert calls[2:] == ["kustomization.yaml", "tree", "kustomization.yml", "commits"]


def test_a_symlinked_kustomization_is_refused_and_nothing_posted(
    run: Run, bare: Path, gitlab_api: GitLabContractServer
) -> None:
    commit_files(bare, "main", {overlay("app0", "dev"): Symlink("../../../../etc/passwd")}, "a symlink")
    result = deploy(run)
    assert result.code == 2, result.err
    assert "kustomization.yaml is a symbolic link" in result.err and posts(gitlab_api) == 0, result.err


def test_several_environments_are_one_commit_and_a_rerun_posts_nothing(
    run: Run, bare: Path, gitlab_api: GitLabContractServer
) -> None:
    first = deploy(run, "app3", "3.1", "dev", "staging", "prod")
    assert first.code == 0, first.err
    assert commit_count(bare, "main") == 2 and len(json.loads(first.out)["changed_files"]) == 3
    again = deploy(run, "app3", "3.1", "dev", "staging", "prod")
    assert again.code == 0 and json.loads(again.out)["status"] == "up-to-date"
    assert posts(gitlab_api) == 1 and commit_count(bare, "main") == 2


def test_without_a_branch_the_default_branch_is_read_once(run: Run, gitlab_api: GitLabContractServer) -> None:
    result = deploy(run, branch=False)
    assert result.code == 0, result.err
    assert gitlab_api.calls[0].path.rsplit("/", 1)[-1] == "group%2Fmanifests"
    assert [c.path.rsplit("/", 1)[-1] for c in gitlab_api.calls].count("group%2Fmanifests") == 1


def test_dry_run_reads_and_posts_nothing(run: Run, bare: Path, gitlab_api: GitLabContractServer) -> None:
    result = run(
        "deploy", "--app", "app0", "--env", "dev", "--image", "registry.example.com/shop/app0:9", "--dry-run"
    )
    assert result.code == 0, result.err
    assert json.loads(result.out)["status"] == "dry-run" and posts(gitlab_api) == 0
    assert commit_count(bare, "main") == 1


def test_a_file_changed_since_it_was_read_is_read_again_and_the_edit_reapplied(
    run: Run, bare: Path, gitlab_api: GitLabContractServer
) -> None:
    path = overlay("app0", "dev")
    another_job_edits_after_our_read(gitlab_api, bare, path)
    result = deploy(run, path_template="kustomize/{app}/overlays/{env}")  # the overlay is the only read
    assert result.code == 0, result.err
    text = read_blob(bare, "main", path)
    assert "(edited)" in text and 'newTag: "2.0.0"' in text, (
        result.err,
        [(c.method, c.path[-30:]) for c in gitlab_api.calls],
    )
    assert log_messages(bare, "main")[1] == "another job" and json.loads(result.out)["attempts"] == 2
    assert posts(gitlab_api) == 2


def test_a_file_another_job_created_since_it_was_read_is_planned_again_not_a_refusal(
    run: Run, bare: Path, gitlab_api: GitLabContractServer
) -> None:
    """GitLab refuses a create of a file that exists ("A file with this name already exists"): another job
    made it between our read and our POST, a lost race like a changed file."""
    commit_files(bare, "main", {"gitops-ci.yaml": render_conventions(CONVENTIONS)}, "init")
    theirs = "kustomize/web/overlays/dev/kustomization.yaml"

    def another_job_creates_it(read: str) -> None:
        if read == theirs:
            gitlab_api.api.faults.after_file_read = None
            commit_files(bare, "main", {theirs: "# made by another job\n"}, "another job")

    gitlab_api.api.faults.after_file_read = another_job_creates_it
    image = "registry.example.com/shop/web:1.0.0"
    result = run("new-app", "--app", "web", "--env", "dev", "--image", image, "--update")
    assert result.code == 0, result.err
    assert read_blob(bare, "main", theirs) == "# made by another job\n" and posts(gitlab_api) == 2
    assert "kind: Deployment" in read_blob(bare, "main", "kustomize/web/base/deployment.yaml")


def test_a_lost_branch_race_costs_one_more_post(
    run: Run, bare: Path, gitlab_api: GitLabContractServer
) -> None:
    def another_job_lands_first() -> None:
        gitlab_api.api.faults.before_ref_update = None
        commit_files(bare, "main", {"NOTES.md": "another job\n"}, "another job")

    gitlab_api.api.faults.before_ref_update = another_job_lands_first
    result = deploy(run)
    assert result.code == 0, result.err
    assert posts(gitlab_api) == 2 and len(gitlab_api.calls) == 4  # settings, file, POST (lost), POST
    assert log_messages(bare, "main")[1] == "another job" and commit_count(bare, "main") == 3


@pytest.mark.parametrize("then_another_job", ["", "NOTES.md", "the same overlay"])
def test_a_lost_answer_is_found_on_the_branch_and_never_posted_twice(
    run: Run, bare: Path, gitlab_api: GitLabContractServer, then_another_job: str
) -> None:
    """Another job may land on top of ours before we look, even a deploy of the same overlay: ours is found
    in the branch's history, not by its content, so the newer deploy is never rolled back."""
    gitlab_api.api.faults.lose_answers = 1
    path = overlay("app0", "dev")
    newer = read_blob(bare, "main", path).replace('"1.0.0"', '"3.0.0"')
    theirs = {"NOTES.md": "a concurrent landing\n"} if then_another_job == "NOTES.md" else {path: newer}
    if then_another_job:
        original = gitlab_api.api.faults.take_lost_answer

        def lose_then_land() -> bool:
            lost = original()
            if lost:
                commit_files(bare, "main", theirs, "another job")
            return lost

        gitlab_api.api.faults.take_lost_answer = lose_then_land  # type: ignore[method-assign]
    result = deploy(run)
    assert result.code == 0, result.err
    assert posts(gitlab_api) == 1
    ours = [m for m in log_messages(bare, "main") if m.startswith("[skip ci]")]
    assert len(ours) == 1 and "landed after all" in result.err
    assert json.loads(result.out)["commit"] == rev_parse(bare, "main~1" if then_another_job else "main")
    final = "3.0.0" if then_another_job == "the same overlay" else "2.0.0"
    assert f'newTag: "{final}"' in read_blob(bare, "main", path)


def test_a_lost_answer_is_found_when_git_rewrote_the_authors_name(
    run: Run, bare: Path, gitlab_api: GitLabContractServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """git trims "crud" such as a final '.' from an author's name: our commit is matched on its message and
    content, not on the name as we sent it."""
    monkeypatch.setenv("GITLAB_USER_NAME", "Jane Doe Jr.")
    monkeypatch.setenv("GITLAB_USER_EMAIL", "jane@example.com")
    gitlab_api.api.faults.lose_answers = 1
    result = deploy(run)
    assert result.code == 0, result.err
    assert posts(gitlab_api) == 1 and "landed after all" in result.err and commit_count(bare, "main") == 2


def test_the_history_read_after_a_lost_answer_is_retried_through_a_busy_gitlab(
    run: Run, bare: Path, gitlab_api: GitLabContractServer
) -> None:
    gitlab_api.api.faults.lose_answers = 1
    gitlab_api.api.scripted.append(Scripted("GET", "/repository/commits", status=502, reason="Bad Gateway"))
    result = deploy(run)
    assert result.code == 0, result.err
    assert posts(gitlab_api) == 1 and "landed after all" in result.err
    assert json.loads(result.out)["commit"] == rev_parse(bare, "main") and commit_count(bare, "main") == 2


@pytest.mark.parametrize(
    ("fault", "sent"),
    [
        (Scripted("POST", "/repository/commits", status_after=504, reason="Gateway Time-out"), 1),
        (Scripted("POST", "/repository/commits", status_after=502, reason="Bad Gateway"), 1),
        (Scripted("POST", "/repository/commits", status_after=201, reason="Created"), 1),
        (Scripted("POST", "/repository/commits", status=503), 2),
    ],
)
def test_a_commit_answered_5xx_is_looked_for_on_the_branch_before_it_is_posted_again(
    run: Run, bare: Path, gitlab_api: GitLabContractServer, fault: Scripted, sent: int
) -> None:
    """A gateway in front of GitLab answers 502 or 504 whether or not GitLab went on to apply the POST, and
    a 201 whose body is not the commit says nothing of it either: the branch says which, as after a lost
    answer. Applied, it is found and never posted twice; refused before applying (503), it is posted again."""
    gitlab_api.api.scripted.append(fault)
    result = deploy(run)
    assert result.code == 0, result.err
    assert posts(gitlab_api) == sent and commit_count(bare, "main") == 2
    assert ("landed after all" in result.err) is (sent == 1)
    assert json.loads(result.out)["commit"] == rev_parse(bare, "main")
    assert 'newTag: "2.0.0"' in read_blob(bare, "main", overlay("app0", "dev"))


def test_twenty_concurrent_deploys_of_distinct_apps_each_land_once(
    run: Run, bare: Path, gitlab_api: GitLabContractServer
) -> None:
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda app: deploy(run, app, "5.0.0"), APPS))
    assert [r.code for r in results] == [0] * 20, [r.err for r in results if r.code]
    assert commit_count(bare, "main") == 21
    for app in APPS:
        assert 'newTag: "5.0.0"' in read_blob(bare, "main", overlay(app, "dev"))
    assert sum(1 for m in log_messages(bare, "main") if m.startswith("[skip ci]")) == 20


def test_five_writers_of_the_same_overlay_leave_one_of_their_tags(run: Run, bare: Path) -> None:
    tags = [f"7.0.{i}" for i in range(5)]
    before = read_blob(bare, "main", overlay("app0", "dev"))
    barrier = threading.Barrier(5)

    def one(tag: str) -> CliResult:
        barrier.wait()
        return deploy(run, "app0", tag)

    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(pool.map(one, tags))
    assert [r.code for r in results] == [0] * 5, [r.err for r in results if r.code]
    after = read_blob(bare, "main", overlay("app0", "dev"))
    final = next(t for t in tags if f'newTag: "{t}"' in after)
    assert after == before.replace('"1.0.0"', f'"{final}"')  # nothing else changed


def test_promote_and_merge_requests_work_through_the_api(
    run: Run, bare: Path, gitlab_api: GitLabContractServer
) -> None:
    staging = overlay("app1", "staging")
    commit_files(
        bare, "main", {staging: read_blob(bare, "main", staging).replace('"1.0.0"', '"1.5.0"')}, "staged"
    )
    promoted = run("promote", "--app", "app1", "--from", "staging", "--to", "prod", "--mode", "merge-request")
    assert promoted.code == 0, promoted.err
    (mr,) = json.loads(promoted.out)["merge_requests"]
    assert mr["action"] == "created" and mr["source_branch"] == "gitops/app1/prod"
    assert 'newTag: "1.5.0"' in read_blob(bare, "gitops/app1/prod", overlay("app1", "prod"))
    assert rev_parse(bare, "gitops/app1/prod~1") == rev_parse(bare, "main")  # one commit on the target's tip
    again = run("promote", "--app", "app1", "--from", "staging", "--to", "prod", "--mode", "merge-request")
    assert json.loads(again.out)["merge_requests"][0]["action"] == "unchanged" and posts(gitlab_api) == 1


@pytest.mark.parametrize("fault", ["file changed", "branch read answered 502"])
def test_a_merge_request_is_proposed_again_on_the_new_tip_after_a_changed_file_or_a_busy_gitlab(
    run: Run, bare: Path, gitlab_api: GitLabContractServer, fault: str
) -> None:
    """GitLab builds the merge request's branch on the target's tip and checks the file against it: after
    another job changed the file, the edit is planned again on the new tip (not sent again as it was, until
    --push-timeout). A 502 on a read is tried again, as in a direct deploy."""
    path = overlay("app0", "dev")
    if fault == "file changed":
        another_job_edits_after_our_read(gitlab_api, bare, path)
    else:
        branch = "/repository/branches/gitops%2Fapp0%2Fdev"
        gitlab_api.api.scripted.append(Scripted("GET", branch, status=502, reason="Bad Gateway"))
    image = "registry.example.com/shop/app0:2.0.0"
    mode = ("--mode", "merge-request", "--push-timeout", "5")
    result = run("deploy", "--app", "app0", "--env", "dev", "--image", image, *mode)
    assert result.code == 0, result.err
    (mr,) = json.loads(result.out)["merge_requests"]
    assert mr["action"] == "created" and rev_parse(bare, "gitops/app0/dev~1") == rev_parse(bare, "main")
    proposed = read_blob(bare, "gitops/app0/dev", path)
    assert 'newTag: "2.0.0"' in proposed and ("(edited)" in proposed) is (fault == "file changed")
    assert posts(gitlab_api) == (2 if fault == "file changed" else 1)


def test_promoting_every_app_reads_ahead_no_overlay(run: Run, gitlab_api: GitLabContractServer) -> None:
    """--all-apps knows its overlays only once it has listed the apps: nothing to read ahead."""
    result = run("promote", "--all-apps", "--from", "staging", "--to", "prod", "--dry-run")
    assert result.code == 0, result.err
    files = [c.path.rsplit("/", 1)[-1] for c in gitlab_api.calls if "/repository/files/" in c.path]
    assert "kustomize%2Fkustomization.yaml" not in files and files[0] == "gitops-ci.yaml", files


def test_a_token_without_the_api_scope_names_the_variable_and_the_scope(
    run: Run, bare: Path, gitlab_api: GitLabContractServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    gitlab_api.add_token("glpat-write-repository", username="ci-bot", scopes=("write_repository", "read_api"))
    monkeypatch.setenv("GITOPS_TOKEN", "glpat-write-repository")
    result = deploy(run)
    assert result.code == 1
    assert (
        "GITOPS_TOKEN the api scope" in result.err
        and "write_repository covers git over HTTPS only" in result.err
    )
    assert commit_count(bare, "main") == 1


def test_a_runner_without_git_deploys(bare: Path, gitlab_api: GitLabContractServer, tmp_path: Path) -> None:
    """The api transport imports nothing of GitPython and starts no git: a PATH without git is enough."""
    import subprocess
    import sys

    probe = (
        "import sys\nfrom gitops_ci.cli import run\n"
        f"code = run(['deploy', '--transport', 'api', '--repo-url', '{gitlab_api.url}/group/manifests.git', "
        "'--branch', 'main', '--app', 'app0', '--env', 'dev', "
        "'--image', 'registry.example.com/shop/app0:4.0'])\n"
        "print('RESULT', code, 'git' in sys.modules)\n"
    )
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(tmp_path), "GITOPS_TOKEN": TOKEN}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert done.stdout.splitlines()[-1] == "RESULT 0 False", done.stderr
    assert 'newTag: "4.0"' in read_blob(bare, "main", overlay("app0", "dev"))


def test_a_workdir_is_refused_as_there_is_no_clone_to_keep(
    run: Run, bare: Path, gitlab_api: GitLabContractServer, tmp_path: Path
) -> None:
    kept = tmp_path / "kept"
    image = "registry.example.com/shop/app0:2.0"
    result = run("deploy", "--app", "app0", "--env", "dev", "--image", image, "--workdir", kept)
    assert result.code == 2 and "--transport api makes none" in result.err, result.err
    assert not kept.exists() and gitlab_api.calls == [] and commit_count(bare, "main") == 1


@pytest.fixture(params=["http", "https"])
def served(
    request: pytest.FixtureRequest, tmp_path: Path, gitops: CliRunner, monkeypatch: pytest.MonkeyPatch,
    tls_material: TlsMaterial, git_identity_env: None,
) -> Iterator[tuple[Run, Path, GitLabContractServer]]:  # fmt: skip
    """`run` against an http:// or an https:// GitLab (--ca-file: the test CA)."""
    tls = tls_material if request.param == "https" else None
    with GitLabContractServer(tls=tls) as server:
        repo = make_bare_repo(tmp_path / "srv", "group/manifests.git", manifest_files(APPS))
        server.add_user("ci-bot")
        server.add_token(TOKEN, username="ci-bot", scopes=("api",))
        server.add_project("group/manifests", repo)
        monkeypatch.setenv("GITOPS_TOKEN", TOKEN)
        ca = ["--ca-file", str(tls.ca_file)] if tls else []

        def invoke(command: str, *args: str | Path) -> CliResult:
            url = f"{server.url}/group/manifests.git"
            return gitops(command, "--transport", "api", "--repo-url", url, "--branch", "main", *ca, *args)

        yield invoke, repo, server


def carried(proxy: ConnectProxy, scheme: str) -> tuple[list[str], list[str]]:
    """(what carried the requests, what should be empty): tunnels for https://, forwarded requests for http://"""
    return (proxy.tunnels, proxy.forwarded) if scheme == "https" else (proxy.forwarded, proxy.tunnels)


@pytest.mark.parametrize("bypassed", [False, True])
def test_a_proxy_carries_every_request_unless_no_proxy_names_the_host(
    served: tuple[Run, Path, GitLabContractServer], monkeypatch: pytest.MonkeyPatch, bypassed: bool
) -> None:
    """https://: a CONNECT tunnel per connection; http://: each request in absolute form, as curl (git) and
    requests (python-gitlab) send it: proxies commonly refuse a CONNECT to port 80."""
    run, bare, server = served
    scheme, netloc = urlsplit(server.url)[:2]
    with ConnectProxy() as proxy:
        monkeypatch.setenv(f"{scheme.upper()}_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "example.com,.127.0.0.1" if bypassed else "example.com")
        result = deploy(run)
        assert result.code == 0, result.err
        used, unused = carried(proxy, scheme)
        # https: a tunnel for the kept-alive connection and one for the read sent with it; http: each request
        expected = [netloc] * (2 if scheme == "https" else len(server.calls))
        assert used == ([] if bypassed else expected) and unused == []
    assert 'newTag: "2.0.0"' in read_blob(bare, "main", overlay("app0", "dev"))


def test_a_proxy_that_wants_credentials_gets_them_from_the_proxy_url(
    served: tuple[Run, Path, GitLabContractServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, bare, server = served
    scheme, netloc = urlsplit(server.url)[:2]
    secret = "pr0xy p@ss"  # percent-encoded in the URL, as urllib and curl take it
    with ConnectProxy(credentials=("ci-user", secret)) as proxy:
        proxied = proxy.url.replace("http://", "http://ci-user:pr0xy%20p%40ss@")
        monkeypatch.setenv(f"{scheme.upper()}_PROXY", proxied)
        assert deploy(run).code == 0
        assert carried(proxy, scheme)[0] == [netloc] * (2 if scheme == "https" else 3) and proxy.refused == []
        monkeypatch.setenv(f"{scheme.upper()}_PROXY", proxied.replace("pr0xy%20", "wrong"))
        refused = deploy(run, tag="3.0.0")
        monkeypatch.setenv(f"{scheme.upper()}_PROXY", proxy.url)
        anonymous = deploy(run, tag="3.0.0")
    assert refused.code == 1 and "refused its user and password (407)" in refused.err, refused.err
    assert anonymous.code == 1 and "give them in its URL: http://user:password@proxy" in anonymous.err
    # not retried: https fails at the first tunnel; http at the first answer, both reads sent
    assert "wrong" not in refused.err and proxy.refused == [netloc] * (2 if scheme == "https" else 4)
    assert 'newTag: "2.0.0"' in read_blob(bare, "main", overlay("app0", "dev"))


def test_all_proxy_carries_the_requests_and_a_socks_one_is_refused(
    run: Run, bare: Path, gitlab_api: GitLabContractServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As git (curl) and python-gitlab (requests) read ALL_PROXY; SOCKS is theirs alone: exit 2, none sent."""
    for name in ("http_proxy", "HTTP_PROXY", "all_proxy", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    netloc = urlsplit(gitlab_api.url).netloc
    with ConnectProxy() as proxy:
        monkeypatch.setenv("ALL_PROXY", proxy.url)
        assert deploy(run).code == 0
        assert proxy.forwarded == [netloc] * len(gitlab_api.calls) and proxy.forwarded
    monkeypatch.setenv("ALL_PROXY", "socks5h://127.0.0.1:9")
    calls = len(gitlab_api.calls)
    refused = deploy(run, tag="3.0.0")
    assert refused.code == 2 and "SOCKS" in refused.err and "(ALL_PROXY)" in refused.err, refused.err
    assert len(gitlab_api.calls) == calls
    assert 'newTag: "2.0.0"' in read_blob(bare, "main", overlay("app0", "dev"))


def test_reads_are_retried_through_a_busy_gitlab(
    run: Run, bare: Path, gitlab_api: GitLabContractServer
) -> None:
    """A lost answer, a 503 and a 429 on the reads: each GET goes again; the POST is sent once."""
    gitlab_api.api.scripted += [
        Scripted("GET", "gitops-ci.yaml", lose_answer=True),
        Scripted("GET", "kustomization.yaml", status=503),
        Scripted("GET", "kustomization.yaml", status=429, reason="Too Many Requests"),
    ]
    result = deploy(run)
    assert result.code == 0, result.err
    assert gitlab_api.api.scripted == [] and posts(gitlab_api) == 1
    assert 'newTag: "2.0.0"' in read_blob(bare, "main", overlay("app0", "dev"))


def assert_read_again_without_retrying_the_step(result: CliResult, gitlab_api: GitLabContractServer) -> None:
    """The overlay read ahead was dropped: read again before the POST, and the step was not retried."""
    assert result.code == 0 and "retrying" not in result.err, result.err
    calls = [c.path.rsplit("/", 1)[-1].rsplit("%2F", 1)[-1] for c in gitlab_api.calls]
    assert sorted(calls[:2]) == ["gitops-ci.yaml", "kustomization.yaml"]
    assert calls[2:] == ["kustomization.yaml", "commits"]


def test_a_read_ahead_answered_502_is_read_again_when_needed_without_retrying_the_step(
    run: Run, bare: Path, gitlab_api: GitLabContractServer
) -> None:
    gitlab_api.api.scripted.append(Scripted("GET", "kustomization.yaml", status=502, reason="Bad Gateway"))
    assert_read_again_without_retrying_the_step(deploy(run), gitlab_api)


def test_a_read_ahead_answered_200_without_gitlabs_fields_is_read_again_when_needed(
    run: Run, bare: Path, gitlab_api: GitLabContractServer
) -> None:
    """A proxy's page in place of the overlay read ahead: that answer is dropped as a 502 is, not the step."""
    gitlab_api.api.scripted.append(Scripted("GET", "kustomization.yaml", status=200, reason="OK"))
    assert_read_again_without_retrying_the_step(deploy(run), gitlab_api)
    assert 'newTag: "2.0.0"' in read_blob(bare, "main", overlay("app0", "dev"))


def test_a_read_that_keeps_failing_is_an_operational_error(
    run: Run, bare: Path, gitlab_api: GitLabContractServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GITOPS_MAX_ATTEMPTS", "3")
    gitlab_api.api.scripted += [Scripted("GET", "gitops-ci.yaml", status=502, reason="Bad Gateway")] * 3
    result = deploy(run)
    assert result.code == 1 and "answered 502" in result.err and posts(gitlab_api) == 0


def test_an_unknown_project_without_branch_is_bad_input(run: Run, gitlab_api: GitLabContractServer) -> None:
    missing = f"{gitlab_api.url}/group/missing.git"  # the last --repo-url wins
    image = "registry.example.com/shop/app0:2"
    args = ("--repo-url", missing, "--app", "app0", "--env", "dev", "--image", image)
    result = run("deploy", *args, branch=False)
    assert result.code == 2 and "group/missing" in result.err, result.err


@pytest.mark.parametrize(
    ("where", "branch", "said"),
    [
        ("group/missing", "main", "project group/missing was not found"),
        ("group/manifests", "no-such-branch", "branch no-such-branch does not exist"),
    ],
)
def test_an_unknown_project_or_branch_is_named_as_such_not_as_a_missing_overlay(
    run: Run, gitlab_api: GitLabContractServer, where: str, branch: str, said: str
) -> None:
    image = "registry.example.com/shop/app0:2"
    args = ("--repo-url", f"{gitlab_api.url}/{where}.git", "--branch", branch)
    result = run("deploy", *args, "--app", "app0", "--env", "dev", "--image", image, branch=False)
    assert result.code == 2 and said in result.err and "overlay" not in result.err, result.err
    assert posts(gitlab_api) == 0


def test_a_merge_request_branch_that_moved_is_not_replaced(
    bare: Path, gitlab_api: GitLabContractServer
) -> None:
    """GitLab's force has no lease: the adapter checks the branch just before its POST, so a push it did not
    see (a person's fixup, another job) is a lost race, not overwritten."""
    from gitops_ci.errors import PushRejectedError
    from gitops_ci.manifest_repo.api_repo import GitLabApiRepo
    from gitops_ci.manifest_repo.gitlab_connection import GitLabConnection
    from gitops_ci.manifest_repo.gitlab_rest import GitLabRest
    from gitops_ci.manifest_repo.port import Identity

    seen = commit_files(bare, "gitops/app0/dev", {"note.txt": "the branch as we read it\n"}, "ours")
    fixup = commit_files(bare, "gitops/app0/dev", {"note.txt": "a person's fixup\n"}, "theirs")
    connection = GitLabConnection(gitlab_api.url, "group/manifests", TOKEN, "GITOPS_TOKEN")
    repo = GitLabApiRepo(GitLabRest(connection), f"{gitlab_api.url}/group/manifests.git", "main")
    path = overlay("app0", "dev")
    text = (repo.read(path) or "").replace('"1.0.0"', '"9.9.9"')
    bot = Identity("gitops-ci", "gitops-ci@example.com")
    with pytest.raises(PushRejectedError, match="moved since it was read"):
        repo.publish(repo.commit({path: text}, "[skip ci] update", bot, bot), "gitops/app0/dev", lease=seen)
    assert rev_parse(bare, "gitops/app0/dev") == fixup and posts(gitlab_api) == 0
    landed = repo.publish(
        repo.commit({path: text}, "[skip ci] update", bot, bot), "gitops/app0/dev", lease=fixup
    )
    assert rev_parse(bare, "gitops/app0/dev") == landed and rev_parse(bare, "gitops/app0/dev~1") == rev_parse(
        bare, "main"
    )
