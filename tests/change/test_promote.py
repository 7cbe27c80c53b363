"""Promotion planned through the port: the source overlay is read on the base being edited."""

from __future__ import annotations

import pytest
from clock import FakeClock

from gitops_ci.change.model import RepoDefaults
from gitops_ci.change.promote import PromoteSettings, promote_change
from gitops_ci.change.runner import land
from gitops_ci.change.settings import RepoSettings
from gitops_ci.errors import ConfigurationError, KustomizationError
from gitops_ci.manifest_repo.memory import InMemoryManifestRepo
from manifests import manifest_files, overlay

REPO = RepoSettings(repo_url="memory://manifests")


def staged(repo: InMemoryManifestRepo, app: str, tag: str) -> None:
    path = overlay(app, "staging")
    repo.land({path: repo.read(path).replace('"1.0.0"', f'"{tag}"')})  # type: ignore[union-attr]
    repo.refresh()


def test_promote_copies_what_the_source_runs_at_the_base() -> None:
    repo = InMemoryManifestRepo(manifest_files(["web", "api"]))
    staged(repo, "web", "1.5.0")
    settings = PromoteSettings(repo=REPO, app="web", source="staging", targets=("prod",))
    result = land(repo, promote_change(settings), FakeClock())
    assert result.status == "pushed" and result.changed_files == [overlay("web", "prod")]
    repo.refresh()
    assert 'newTag: "1.5.0"' in repo.read(overlay("web", "prod"))  # type: ignore[operator]
    assert repo.history()[0].message.startswith("[skip ci] promote app web to prod: ")


def test_all_apps_promotes_each_app_that_has_both_overlays() -> None:
    files = manifest_files(["web", "api"])
    files = {k: v for k, v in files.items() if not k.startswith("kustomize/api/overlays/prod/")}
    repo = InMemoryManifestRepo(files)
    staged(repo, "web", "2.0.0")
    staged(repo, "api", "3.0.0")
    settings = PromoteSettings(repo=REPO, app=None, all_apps=True, source="staging", targets=("prod",))
    change = promote_change(settings)
    assert change.sparse_paths == ("kustomize",)
    assert [t.app for t in change.planner(repo, RepoDefaults())] == ["web"]  # api lacks prod: skipped


def test_a_source_entry_that_is_not_an_image_is_refused() -> None:
    repo = InMemoryManifestRepo(manifest_files(["web"]))
    path = overlay("web", "staging")
    repo.land({path: repo.read(path).replace('"1.0.0"', '"1.0 ; rm -rf /"')})  # type: ignore[union-attr]
    repo.refresh()
    settings = PromoteSettings(repo=REPO, app="web", source="staging", targets=("prod",))
    with pytest.raises(KustomizationError, match="fix the source overlay first"):
        promote_change(settings).planner(repo, RepoDefaults())


def test_a_path_template_that_gives_two_environments_one_overlay_is_refused() -> None:
    repo = InMemoryManifestRepo(manifest_files(["web"]))
    settings = PromoteSettings(repo=REPO, app="web", source="staging", targets=("prod",))
    with pytest.raises(ConfigurationError, match="gives environments staging and prod one overlay"):
        promote_change(settings).planner(repo, RepoDefaults(path_template="kustomize/{app}/overlays/live"))
