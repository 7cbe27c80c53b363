"""The contract server's Commits API writes the tree Gitaly writes (servers/gitlab_repository.py reads the
whole tree and rewrites the trees on the changed paths, as userCommitFilesGit does): checked against the
tree git's own index builds from the same files, through python-gitlab.
"""

from __future__ import annotations

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
