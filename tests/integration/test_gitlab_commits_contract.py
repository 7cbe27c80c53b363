"""The contract server's Commits API writes the tree Gitaly writes (servers/gitlab_repository.py reads the
whole tree and rewrites the trees on the changed paths, as userCommitFilesGit does): checked against the
tree git's own index builds from the same files, through python-gitlab.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

import gitlab
import pytest

from servers.gitlab_api import GitLabContractServer
from servers.gitlab_git import GitRepo

if TYPE_CHECKING:  # imported by pytest_plugins below; importing it here first would skip assert rewriting
    from servers.gitlab_fixtures import GitLabProject

pytest_plugins = ["servers.gitlab_fixtures"]
pytestmark = pytest.mark.integration

FILES = {
    "README.md": "# manifests\n",
    "apps/a/base/kustomization.yaml": "resources: [deployment.yaml]\n",
    "apps/a/overlays/prod/kustomization.yaml": "images: []\n",
    "apps/b/overlays/prod/kustomization.yaml": "images: []\n",
    "apps/b/overlays/dev/kustomization.yaml": "images: []\n",
}


def test_a_commit_of_files_in_nested_shared_and_new_directories_writes_the_tree_an_index_would(
    gitlab_api: GitLabContractServer, gitlab_token: str, gitlab_project: Callable[..., GitLabProject]
) -> None:
    repo = GitRepo(gitlab_project("group/manifests", FILES).repo_dir)
    parent = repo.branch_sha("main")
    changed = {
        "apps/a/overlays/prod/kustomization.yaml": "images: [{name: a, newTag: '2'}]\n",
        "apps/b/overlays/prod/kustomization.yaml": "images: [{name: b, newTag: '2'}]\n",
        "apps/b/overlays/dev/kustomization.yaml": "images: [{name: b, newTag: '3'}]\n",
        "apps/c/overlays/prod/kustomization.yaml": "images: []\n",
        "NOTES.md": "new at the root\n",
    }
    actions = [
        {"action": "create" if path not in FILES else "update", "file_path": path, "content": text}
        for path, text in changed.items()
    ]
    client = gitlab.Gitlab(gitlab_api.url, private_token=gitlab_token, timeout=10)
    commit = client.projects.get("group/manifests").commits.create(
        {"branch": "main", "commit_message": "five files", "actions": actions}
    )

    assert commit.parent_ids == [parent]
    assert commit.stats == {"additions": 5, "deletions": 3, "total": 8}  # three files updated, two created
    assert repo.tree(commit.id) == repo.write_files(changed, base=parent)
    assert repo.run("fsck", "--no-dangling", "--strict").returncode == 0


def test_commits_are_listed_newest_first_by_path_and_paged_without_totals(
    gitlab_api: GitLabContractServer, gitlab_token: str, gitlab_project: Callable[..., GitLabProject]
) -> None:
    repo = GitRepo(gitlab_project("group/manifests", FILES).repo_dir)
    project = gitlab.Gitlab(gitlab_api.url, private_token=gitlab_token, timeout=10).projects.get(
        "group/manifests"
    )
    made = []
    for n, path in enumerate(["apps/a/overlays/prod/kustomization.yaml", "NOTES.md"] * 2):
        action = {"action": "update" if path in FILES or n > 1 else "create", "file_path": path,
                  "content": f"{n}\n"}  # fmt: skip
        body = {"branch": "main", "commit_message": f"c{n}", "actions": [action]}
        made.append(project.commits.create(body))

    overlay = {"path": "apps/a/overlays/prod/kustomization.yaml"}  # python-gitlab's own `path` is the URL's
    listed = project.commits.list(ref_name="main", query_parameters=overlay, get_all=True)
    assert [c.id for c in listed[:2]] == [made[2].id, made[0].id]
    assert listed[0].message.strip() == "c2" and listed[0].parent_ids == [made[1].id]
    assert {"author_name", "author_email", "committed_date", "web_url"} <= set(listed[0].attributes)
    pages = project.commits.list(ref_name="main", per_page=2, iterator=True)
    assert [c.id for c in itertools.islice(pages, 2)] == [made[3].id, made[2].id]
    assert pages.total is None and pages.next_page == 2  # commits.md: no x-total, x-total-pages
    assert repo.branch_sha("main") == made[3].id
    assert project.commits.list(ref_name="no-such-branch", get_all=False) == []


def test_a_last_commit_id_gitlab_cannot_find_does_not_refuse_and_a_branch_path_needs_its_slash_encoded(
    gitlab_api: GitLabContractServer, gitlab_token: str, gitlab_project: Callable[..., GitLabProject]
) -> None:
    """Files::BaseService#file_has_changed? answers "not changed" when either last commit is missing; the
    branches endpoint takes a branch name without a slash in the URL (NO_SLASH_URL_PART_REGEX)."""
    repo = GitRepo(gitlab_project("group/manifests", FILES).repo_dir)
    client = gitlab.Gitlab(gitlab_api.url, private_token=gitlab_token, timeout=10)
    project = client.projects.get("group/manifests")
    path = "apps/a/overlays/prod/kustomization.yaml"
    action = {"action": "update", "file_path": path, "content": "x\n", "last_commit_id": "f" * 40}
    made = project.commits.create({"branch": "main", "commit_message": "blind", "actions": [action]})
    assert repo.branch_sha("main") == made.id
    assert repo.update_ref("refs/heads/gitops/a", made.id, "0" * 40)
    assert project.branches.get("gitops/a").commit["id"] == made.id  # python-gitlab encodes the slash
    with pytest.raises(gitlab.exceptions.GitlabHttpError) as raw:
        client.http_get("/projects/1/repository/branches/gitops/a")
    assert raw.value.response_code == 404
