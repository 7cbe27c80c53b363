"""deploy's follow-ups: which Argo CD application names and overlay paths they use."""

from __future__ import annotations

from gitops_ci.change.follow_up import FollowUp, FollowUpSettings, with_defaults
from gitops_ci.change.model import RepoDefaults
from gitops_ci.change.settings import DeploySettings, RepoSettings

ONBOARDED = RepoDefaults("apps/{app}/{env}", "{env}-{app}", ("dev", "prod"))


def follow(app_names: str | None = None, paths: str | None = None) -> FollowUp:
    repo = RepoSettings(repo_url="https://gitlab.example.com/m.git", path_template=paths)
    deploy = DeploySettings(repo=repo, app="web", environments=("dev",), images=("r.example.com/web:1",))
    return FollowUp(FollowUpSettings(app_name_template=app_names), deploy)


def test_the_templates_init_recorded_apply_unless_an_option_gives_one() -> None:
    onboarded = with_defaults(follow(), ONBOARDED)
    assert onboarded.settings.app_name_template == "{env}-{app}"
    assert onboarded.deploy.repo.path_template == "apps/{app}/{env}"
    given = with_defaults(follow("argo-{app}", "k/{app}/{env}"), ONBOARDED)
    assert given.settings.app_name_template == "argo-{app}"
    assert given.deploy.repo.path_template == "k/{app}/{env}"


def test_a_repo_without_gitops_ci_yaml_keeps_the_seeds_names() -> None:
    seed = with_defaults(follow(), RepoDefaults())
    assert seed.settings.app_name_template == "{app}-{env}"
    assert seed.deploy.repo.path_template == "kustomize/{app}/overlays/{env}"
