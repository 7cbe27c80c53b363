"""The test servers keep their repositories as GitLab's housekeeping does (servers/housekeeping.py): every
tenth push optimizes, in the background; more than 1,024 loose objects are packed and the new commits go
into a Bloom-filtered commit-graph chain. Without it 20 serial API deploys slowed from 5.8 to 12 s in a run.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import gitlab
import pytest

from servers import housekeeping
from servers.git_repos import commit_files, make_bare_repo
from servers.gitlab_api import GitLabContractServer
from servers.gitlab_git import GitRepo
from servers.gitserver import GitHttpServer, client_env

if TYPE_CHECKING:  # imported by pytest_plugins below; importing it here first would skip assert rewriting
    from servers.gitlab_fixtures import GitLabProject

pytest_plugins = ["servers.gitlab_fixtures", "servers.git_fixtures"]
pytestmark = pytest.mark.integration
OVERLAY = "overlays/prod/kustomization.yaml"


def chain(git_dir: Path) -> Path:
    return git_dir / "objects" / "info" / "commit-graphs" / "commit-graph-chain"


def graph_commits(git_dir: Path) -> int:
    """Commits in the commit-graph chain: each graph file's fanout table ends with its commit count."""
    total = 0
    for name in chain(git_dir).read_text().split():
        data = (git_dir / "objects" / "info" / "commit-graphs" / f"graph-{name}.graph").read_bytes()
        chunks = [data[8 + 12 * i : 20 + 12 * i] for i in range(data[6])]
        fanout = next(int.from_bytes(c[4:], "big") for c in chunks if c[:4] == b"OIDF")
        total += int.from_bytes(data[fanout + 255 * 4 : fanout + 256 * 4], "big")
    return total


def test_every_tenth_commit_through_the_api_extends_a_bloom_filtered_commit_graph(
    gitlab_api: GitLabContractServer, gitlab_token: str, gitlab_project: Callable[..., GitLabProject]
) -> None:
    repo = gitlab_project("group/app", {OVERLAY: "images: []\n"})
    git_dir = repo.repo_dir
    project = gitlab.Gitlab(gitlab_api.url, private_token=gitlab_token, timeout=10).projects.get("group/app")

    def commit(number: int) -> None:
        action = {"action": "update", "file_path": OVERLAY, "content": f"# {number}\n"}
        project.commits.create({"branch": "main", "commit_message": f"c{number}", "actions": [action]})

    for number in range(9):
        commit(number)
    housekeeping.settle()
    assert not chain(git_dir).exists()  # nine pushes: not its turn yet
    commit(9)
    housekeeping.settle()
    assert housekeeping._has_bloom_filters(str(git_dir)) and graph_commits(git_dir) == 11


def test_every_tenth_push_over_git_optimizes_too(git_server: GitHttpServer, tmp_path: Path) -> None:
    bare = make_bare_repo(git_server.root, "group/manifests.git", {OVERLAY: "images: []\n"})
    env = {**client_env(git_server), "HOME": str(tmp_path)}
    work = tmp_path / "work"
    subprocess.run(
        ["git", "clone", "-q", git_server.url_for("group/manifests.git"), str(work)], env=env, check=True
    )
    for number in range(10):
        (work / OVERLAY).write_text(f"# {number}\n")
        ident = ["-c", "user.name=ci", "-c", "user.email=ci@example.invalid"]
        subprocess.run(["git", *ident, "commit", "-qam", f"c{number}"], cwd=work, env=env, check=True)
        subprocess.run(["git", "push", "-q", "origin", "HEAD"], cwd=work, env=env, check=True)
    deadline = time.monotonic() + 10
    while housekeeping.counted(bare) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    housekeeping.settle()
    assert housekeeping._has_bloom_filters(str(bare)) and graph_commits(bare) == 11


def test_past_gitalys_loose_object_limit_all_are_packed_and_the_new_commits_join_the_graph(
    tmp_path: Path,
) -> None:
    git_dir = make_bare_repo(tmp_path, "repo.git", {OVERLAY: "images: []\n"})
    housekeeping.optimize(str(git_dir))  # no commit-graph yet: Gitaly writes one, replacing any chain
    assert len(chain(git_dir).read_text().split()) == 1 and graph_commits(git_dir) == 1

    commit_files(git_dir, "main", {OVERLAY: "images: [a]\n"}, "second")
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    for number in range(housekeeping.LOOSE_OBJECT_LIMIT + 1):
        (blobs / str(number)).write_text(f"unreachable {number}\n")
    repo = GitRepo(git_dir)
    repo.run("hash-object", "-w", "--stdin-paths", stdin="".join(f"{path}\n" for path in blobs.iterdir()))
    assert housekeeping.loose_objects(str(git_dir)) > housekeeping.LOOSE_OBJECT_LIMIT
    housekeeping.optimize(str(git_dir))

    assert housekeeping.loose_objects(str(git_dir)) == 0  # reachable or not, as Gitaly's incremental repack
    kept = repo.run("hash-object", str(blobs / "7")).stdout.strip()
    assert repo.run("cat-file", "-p", kept).stdout == "unreachable 7\n"
    assert graph_commits(git_dir) == 2 and housekeeping._has_bloom_filters(str(git_dir))
