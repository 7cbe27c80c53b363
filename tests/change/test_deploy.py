"""What a deploy plans from its settings, before any repo is opened."""

from __future__ import annotations

import re

import pytest

from gitops_ci.change.deploy import deploy_change
from gitops_ci.change.model import RepoDefaults
from gitops_ci.change.settings import DeploySettings, RepoSettings
from gitops_ci.errors import ConfigurationError
from gitops_ci.manifest_repo.memory import InMemoryManifestRepo
from manifests import manifest_files

IMAGE = ("registry.example.com/shop/web:2.0",)


def settings(template: str | None, *environments: str) -> DeploySettings:
    repo = RepoSettings(repo_url="memory://manifests", path_template=template)
    return DeploySettings(repo=repo, app="web", environments=environments, images=IMAGE)


def test_two_environments_may_not_share_an_overlay() -> None:
    with pytest.raises(ConfigurationError, match="gives environments dev and prod one overlay"):
        deploy_change(settings("kustomize/{app}/overlays/live", "dev", "prod"))


def test_one_environment_may_use_a_template_without_env() -> None:
    change = deploy_change(settings("kustomize/{app}/overlays/live", "prod"))
    assert change.sparse_paths == ("kustomize/web/overlays/live",)


def test_a_template_from_gitops_ci_yaml_is_checked_the_same_way() -> None:
    change = deploy_change(settings(None, "dev", "prod"))
    repo = InMemoryManifestRepo(manifest_files(["web"]))
    with pytest.raises(
        ConfigurationError, match=re.escape("put {env} in --path-template or in gitops-ci.yaml")
    ):
        change.planner(repo, RepoDefaults(path_template="kustomize/{app}/overlays/live"))
