"""`gitops-ci review` in a merge request pipeline, against the GitLab REST contract server.

The manifest repo is a real bare repository behind the contract server; the job's checkout is a real clone
of it at the MR's head, and the CI_* variables are the ones GitLab sets in merge request pipelines.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import gitlab
import pytest

from conftest import CliResult, CliRunner
from gitops_ci.review.note import MARKER
from manifests import manifest_files, overlay
from servers.gitlab_api import GitLabContractServer, Scripted
from servers.hostile import HttpPeer

if TYPE_CHECKING:
    from servers.gitlab_fixtures import GitLabProject

pytest_plugins = ["servers.gitlab_fixtures"]
pytestmark = pytest.mark.integration

APPS = ["app0", "app1", "app2"]
PROJECT = "platform/manifests"


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, check=True).stdout


def tag(app: str, env: str, new: str) -> dict[str, str]:
    path = overlay(app, env)
    return {path: manifest_files([app])[path].replace('newTag: "1.0.0"', f'newTag: "{new}"')}


def push_change(checkout: Path, files: dict[str, str], message: str) -> str:
    for path, text in files.items():
        (checkout / path).write_text(text)
    git(checkout, "commit", "-q", "-am", message)
    git(checkout, "push", "-q", "--force", "origin", "HEAD:refs/heads/change")
    return git(checkout, "rev-parse", "HEAD").strip()


@pytest.fixture
def project(gitlab_project: Callable[..., GitLabProject]) -> GitLabProject:
    return gitlab_project(PROJECT, files=manifest_files(APPS))


@pytest.fixture
def checkout(project: GitLabProject, tmp_path: Path) -> Path:
    """The job's clone, on the MR branch."""
    work = tmp_path / "job"
    subprocess.run(["git", "clone", "-q", str(project.repo_dir), str(work)], check=True)
    git(work, "checkout", "-q", "-b", "change")
    return work


@pytest.fixture
def merge_request(
    project: GitLabProject,
    checkout: Path,
    gitlab_api: GitLabContractServer,
    gitlab_token: str,
    monkeypatch: pytest.MonkeyPatch,
) -> int:
    """An MR that changes two overlays, and the variables of its pipeline."""
    push_change(
        checkout,
        {**tag("app0", "prod", "2.0.0"), **tag("app1", "dev", "1.1.0")},
        "bump app0 prod and app1 dev",
    )
    gl = gitlab.Gitlab(gitlab_api.url, private_token=gitlab_token)
    mr = gl.projects.get(PROJECT).mergerequests.create(
        {"source_branch": "change", "target_branch": "main", "title": "Bump"}
    )
    gitlab_api.add_user("alice")
    gitlab_api.add_token("glpat-alice", username="alice", scopes=("api",))
    alice = gitlab.Gitlab(gitlab_api.url, private_token="glpat-alice")
    alice.projects.get(PROJECT).mergerequests.get(mr.iid, lazy=True).notes.create(
        {"body": "Looks fine to me"}
    )
    for name, value in {
        "CI": "true",
        "CI_SERVER_URL": gitlab_api.url,
        "CI_PROJECT_PATH": PROJECT,
        "CI_MERGE_REQUEST_IID": str(mr.iid),
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": project.branch_sha("main") or "",
        "GITOPS_TOKEN": gitlab_token,
        "CI_JOB_TOKEN": "job-token-of-the-pipeline",
    }.items():
        monkeypatch.setenv(name, value)
    return int(mr.iid)


def our_notes(gitlab_api: GitLabContractServer, iid: int) -> list[dict[str, object]]:
    return [n for n in gitlab_api.notes(PROJECT, iid) if str(n["body"]).startswith(MARKER)]


def note_writes(gitlab_api: GitLabContractServer) -> list[tuple[str, str]]:
    """Writes to notes by gitops-ci (the fixture's own note by alice comes first)."""
    writes = [
        (c.method, c.path) for c in gitlab_api.calls if c.method in ("POST", "PUT") and "/notes" in c.path
    ]
    return writes[1:]


def run_review(gitops: CliRunner, checkout: Path) -> CliResult:
    return gitops("review", checkout)


def test_one_note_with_both_diffs_updated_in_place(
    gitops: CliRunner, checkout: Path, merge_request: int, gitlab_api: GitLabContractServer
) -> None:
    first = run_review(gitops, checkout)
    assert first.code == 0, first.err
    assert first.out == "review note created: 2 overlays changed\n"
    (note,) = our_notes(gitlab_api, merge_request)
    body = str(note["body"])
    assert "#### `app0` / `prod`" in body and "#### `app1` / `dev`" in body
    assert body.count("```diff") == 2 and body.count("<details>") == 2
    image = "      - image: registry.example.com/shop"
    assert f"-{image}/app0:1.0.0\n+{image}/app0:2.0.0" in body
    assert f"-{image}/app1:1.0.0\n+{image}/app1:1.1.0" in body
    assert note["author"]["username"] == "ci-bot"  # type: ignore[index]

    # The same head again: nothing to write.
    writes = note_writes(gitlab_api)
    again = run_review(gitops, checkout)
    assert again.out == "review note already up to date: 2 overlays changed\n"
    assert note_writes(gitlab_api) == writes

    # A new push: the same note, edited.
    head = push_change(checkout, tag("app2", "staging", "1.2.0"), "bump app2 staging too")
    third = run_review(gitops, checkout)
    assert third.out == "review note updated: 3 overlays changed\n"
    (edited,) = our_notes(gitlab_api, merge_request)
    assert (
        edited["id"] == note["id"]
        and "#### `app2` / `staging`" in str(edited["body"])
        and head[:8] in str(edited["body"])
    )
    assert [m for m, _ in note_writes(gitlab_api)] == ["POST", "PUT"]
    assert len(gitlab_api.notes(PROJECT, merge_request)) == 2  # ours and alice's, untouched
    assert gitlab_api.notes(PROJECT, merge_request)[0]["body"] == "Looks fine to me"


def test_a_note_whose_answer_was_lost_is_posted_once(
    gitops: CliRunner, checkout: Path, merge_request: int, gitlab_api: GitLabContractServer
) -> None:
    """The POST is applied and the connection closes: python-gitlab would send it again (a second note)."""
    gitlab_api.api.scripted.append(Scripted("POST", "/notes", lose_answer=True))
    result = run_review(gitops, checkout)
    assert result.code == 0, result.err
    assert len(our_notes(gitlab_api, merge_request)) == 1
    assert [m for m, _ in note_writes(gitlab_api)] == ["POST"]


@pytest.mark.parametrize("pointed", ["external_url", "elsewhere"])
def test_a_next_page_under_another_origin_is_read_from_gitlab_or_refused_never_sent_there(
    gitops: CliRunner, checkout: Path, merge_request: int, gitlab_api: GitLabContractServer, pointed: str
) -> None:
    """GitLab's pagination links carry its external_url, which may be another origin than the job's URL (a
    misconfigured GitLab): the next page is read from the job's URL. A link anywhere else (a hostile server)
    is refused. The token goes to neither. Our note is on the second page."""
    assert run_review(gitops, checkout).code == 0
    alice = gitlab.Gitlab(gitlab_api.url, private_token="glpat-alice")
    notes = alice.projects.get(PROJECT).mergerequests.get(merge_request, lazy=True).notes
    for n in range(25):
        notes.create({"body": f"comment {n}"})
    before = len(note_writes(gitlab_api))
    with HttpPeer() as elsewhere:
        if pointed == "external_url":
            gitlab_api.api.external_url = elsewhere.url
        else:
            link = (("Link", f'<{elsewhere.url}/page/2>; rel="next"'),)
            gitlab_api.api.scripted.append(Scripted("GET", "/notes", headers=link))
        result = run_review(gitops, checkout)
    assert elsewhere.seen == []
    assert note_writes(gitlab_api)[before:] == []  # found on page 2 (or nothing written): never posted twice
    if pointed == "external_url":
        assert result.code == 0, result.err
    else:
        assert result.code == 1 and f"points the next page at {elsewhere.url}" in result.err


def test_a_busy_gitlab_is_retried_and_a_long_retry_after_is_not_obeyed(
    gitops: CliRunner, checkout: Path, merge_request: int, gitlab_api: GitLabContractServer
) -> None:
    """429 with Retry-After: one day, then 503: python-gitlab would sleep the day; the review retries with its
    own bounded backoff and ends."""
    day = (("Retry-After", "86400"),)
    gitlab_api.api.scripted += [
        Scripted("GET", "/notes", status=429, reason="Too Many Requests", headers=day),
        Scripted("GET", "/notes", status=503),
    ]
    started = time.monotonic()
    result = run_review(gitops, checkout)
    assert result.code == 0, result.err
    assert time.monotonic() - started < 30 and len(our_notes(gitlab_api, merge_request)) == 1
    assert gitlab_api.api.scripted == []


def test_a_marked_note_by_someone_else_is_left_alone(
    gitops: CliRunner, checkout: Path, merge_request: int, gitlab_api: GitLabContractServer
) -> None:
    """Alice quotes an old review note (marker included): review writes its own note, not hers."""
    alice = gitlab.Gitlab(gitlab_api.url, private_token="glpat-alice")
    quoted = f"{MARKER}\n> the old review said app0 / prod changes; is that intended?"
    alice.projects.get(PROJECT).mergerequests.get(merge_request, lazy=True).notes.create({"body": quoted})

    first = run_review(gitops, checkout)
    assert first.out == "review note created: 2 overlays changed\n", first.err
    again = run_review(gitops, checkout)
    assert again.out == "review note already up to date: 2 overlays changed\n"

    notes = gitlab_api.notes(PROJECT, merge_request)
    by_author = {str(n["author"]["username"]): n for n in notes[1:]}
    assert set(by_author) == {"alice", "ci-bot"} and len(notes) == 3
    assert by_author["alice"]["body"] == quoted
    assert "#### `app0` / `prod`" in str(by_author["ci-bot"]["body"])


def test_dry_run_posts_nothing(
    gitops: CliRunner, checkout: Path, merge_request: int, gitlab_api: GitLabContractServer
) -> None:
    calls = len(gitlab_api.calls)
    result = gitops("review", checkout, "--dry-run")
    assert result.code == 0 and result.out.startswith(MARKER)
    assert gitlab_api.calls[calls:] == []


def test_an_mr_that_changes_no_overlay_posts_no_note(
    gitops: CliRunner, checkout: Path, merge_request: int, gitlab_api: GitLabContractServer
) -> None:
    git(checkout, "reset", "-q", "--hard", "origin/main")
    push_change(checkout, {"README.md": "# manifests, documented\n"}, "docs")
    result = run_review(gitops, checkout)
    assert result.out == "no overlay's rendered manifests change; no note posted\n"
    assert our_notes(gitlab_api, merge_request) == []


def test_an_mr_that_changes_what_the_roots_apply_gets_a_note_without_overlay_changes(
    gitops: CliRunner, checkout: Path, merge_request: int, gitlab_api: GitLabContractServer
) -> None:
    git(checkout, "reset", "-q", "--hard", "origin/main")
    (checkout / "gitops-ci.yaml").write_text("version: 1\n")
    git(checkout, "add", "gitops-ci.yaml")
    push_change(checkout, {"README.md": "# manifests, laid out\n"}, "an environment more")
    assert run_review(gitops, checkout).code == 0
    (note,) = our_notes(gitlab_api, merge_request)
    assert "It changes what the clusters' roots apply" in str(note["body"]) and "`gitops-ci.yaml`" in str(
        note["body"]
    )


def test_a_token_without_access_is_an_auth_error(
    gitops: CliRunner,
    checkout: Path,
    merge_request: int,
    gitlab_api: GitLabContractServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITOPS_TOKEN", "glpat-unknown")
    result = run_review(gitops, checkout)
    assert result.code == 1 and "GITOPS_TOKEN was rejected" in result.err
    assert our_notes(gitlab_api, merge_request) == []
