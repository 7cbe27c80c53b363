"""The steps of a change on the in-memory ManifestRepo: plan reads through the port, commit builds on the
base, push tells a landing from a lost race from a failure."""

from __future__ import annotations

import pytest

from gitops_ci.change import steps
from gitops_ci.change.model import Target
from gitops_ci.change.settings import RepoSettings, image_updates
from gitops_ci.errors import KustomizationError, RetryableError, UnsafePathError
from gitops_ci.manifest_repo.memory import InMemoryManifestRepo
from gitops_ci.manifest_repo.port import Identity
from manifests import manifest_files, overlay

SETTINGS = RepoSettings(repo_url="memory://manifests", trailers=(("Pipeline", "https://ci/1"),))


def target(app: str = "web", env: str = "dev", image: str = "registry.example.com/shop/web:2.0") -> Target:
    path = f"kustomize/{app}/overlays/{env}"
    return Target(app=app, environment=env, path=path, updates=tuple(image_updates(app, [image])))


def test_plan_edits_in_memory_through_the_port() -> None:
    repo = InMemoryManifestRepo(manifest_files(["web"]))
    (change,) = steps.plan(repo, [target()])
    assert change.file == overlay("web", "dev")
    assert change.edit.before == repo.read(change.file)
    assert change.edit.after == change.edit.before.replace('newTag: "1.0.0"', 'newTag: "2.0"')
    assert [(c.name, c.after) for c in change.edit.changes] == [
        ("web", {"newName": "registry.example.com/shop/web", "newTag": "2.0"})
    ]
    assert repo.history() and len(repo.history()) == 1  # planning wrote nothing


def test_plan_refuses_a_missing_overlay_and_two_kustomization_files() -> None:
    repo = InMemoryManifestRepo(manifest_files(["web"]))
    with pytest.raises(KustomizationError, match="overlay kustomize/web/overlays/qa for environment 'qa'"):
        steps.plan(repo, [target(env="qa")])
    both = {**manifest_files(["web"]), "kustomize/web/overlays/dev/kustomization.yml": "images: []\n"}
    with pytest.raises(KustomizationError, match=r"both kustomization\.yaml and kustomization\.yml exist"):
        steps.plan(InMemoryManifestRepo(both), [target()])


def test_paths_that_leave_the_repo_are_refused_by_the_port() -> None:
    repo = InMemoryManifestRepo(manifest_files(["web"]))
    bad = Target(app="web", environment="dev", path="../outside", updates=())
    with pytest.raises(UnsafePathError):
        steps.plan(repo, [bad])


def test_commit_builds_on_the_base_with_identities_and_trailers() -> None:
    repo = InMemoryManifestRepo(manifest_files(["web", "api"]))
    changes = steps.plan(repo, [target(), target("api", image="registry.example.com/shop/api:3")])
    author = Identity("Dev", "dev@example.invalid")
    settings = RepoSettings(repo_url="memory://manifests", author=author, trailers=SETTINGS.trailers)
    sha = steps.commit(repo, changes, settings, lambda cs: f"[skip ci] {len(cs)} overlays")
    made = repo.commits[sha]
    assert made.parent == repo.base() and made.author == author
    assert made.message == "[skip ci] 2 overlays\n\nPipeline: https://ci/1"
    assert made.files[overlay("api", "dev")].endswith('newTag: "3"\n')
    assert repo.branch_tip("main") == repo.base()  # committing publishes nothing


def test_push_tells_a_landing_from_a_lost_race_from_a_failure() -> None:
    repo = InMemoryManifestRepo(manifest_files(["web"]))
    sha = steps.commit(repo, steps.plan(repo, [target()]), SETTINGS, lambda cs: "m")
    assert steps.push(repo, sha).status == "landed"
    assert repo.branch_tip("main") == sha

    stale = steps.commit(
        repo, steps.plan(repo, [target(image="registry.example.com/shop/web:3")]), SETTINGS, str
    )
    repo.land({"README.md": "another job\n"})
    raced = steps.push(repo, stale)
    assert raced.status == "lost-race" and "main moved" in raced.reason

    def fail(repo: InMemoryManifestRepo, commit: str, branch: str) -> None:
        raise RetryableError("HTTP 500")

    repo.on_publish = fail
    assert steps.push(repo, stale) == steps.PushOutcome(status="failed", reason="HTTP 500")
