"""The repo's gitops-ci.yaml (written by init) gives deploy and promote their defaults; options win."""

from __future__ import annotations

import pytest
from clock import FakeClock

from gitops_ci.change.deploy import deploy_change
from gitops_ci.change.model import RepoDefaults
from gitops_ci.change.promote import PromoteSettings, promote_change
from gitops_ci.change.report import deploy_dotenv
from gitops_ci.change.runner import land
from gitops_ci.change.settings import DeploySettings, RepoSettings
from gitops_ci.change.steps import repo_defaults
from gitops_ci.errors import ConfigurationError, KustomizationError, UsageError
from gitops_ci.manifest_repo.memory import InMemoryManifestRepo
from gitops_ci.onboard.conventions import Cluster, Conventions, Environment, render_conventions
from manifests import manifest_files

URL = "https://gitlab.example.com/platform/manifests.git"
CONVENTIONS = Conventions(
    repo_url=URL,
    branch="main",
    clusters=(Cluster("nonprod", "https://nonprod.example.com"), Cluster("prod", "https://prod.example.com")),
    environments=(
        Environment("dev", "nonprod"),
        Environment("staging", "nonprod"),
        Environment("prod", "prod"),
    ),
    path_template="apps/{app}/{env}",
)


def moved(files: dict[str, str]) -> dict[str, str]:
    """The seed's layout under the settings' template: apps/<app>/<env>."""
    return {k.replace("kustomize/", "apps/").replace("/overlays/", "/"): v for k, v in files.items()}


@pytest.fixture
def onboarded() -> InMemoryManifestRepo:
    return InMemoryManifestRepo(
        {**moved(manifest_files(["web"])), "gitops-ci.yaml": render_conventions(CONVENTIONS)}
    )


def deploy(path_template: str | None = None, tag: str = "2.0") -> DeploySettings:
    repo = RepoSettings(repo_url=URL, path_template=path_template)
    return DeploySettings(
        repo=repo, app="web", environments=("dev",), images=(f"registry.example.com/web:{tag}",)
    )


def test_the_settings_file_gives_templates_and_promotion_order(onboarded: InMemoryManifestRepo) -> None:
    assert repo_defaults(onboarded) == RepoDefaults(
        "apps/{app}/{env}", "{env}-{app}", ("dev", "staging", "prod")
    )
    assert repo_defaults(onboarded, read=False) == RepoDefaults()
    assert repo_defaults(InMemoryManifestRepo(manifest_files(["web"]))) == RepoDefaults()


def test_deploy_edits_the_overlay_where_the_settings_file_says(onboarded: InMemoryManifestRepo) -> None:
    change = deploy_change(deploy())
    assert change.reads_defaults and change.sparse_paths == (
        "kustomize/web/overlays/dev",
    )  # the clone's guess
    result = land(onboarded, change, FakeClock(), defaults=repo_defaults(onboarded))
    assert result.changed_files == ["apps/web/dev/kustomization.yaml"]
    onboarded.refresh()
    assert 'newTag: "2.0"' in (onboarded.read("apps/web/dev/kustomization.yaml") or "")
    required, _ = deploy_dotenv(result)  # later sync and wait jobs name things the same way
    assert required["GITOPS_PATH_TEMPLATE"] == "apps/{app}/{env}"
    assert required["GITOPS_ARGOCD_APP_NAME_TEMPLATE"] == "{env}-{app}"


def test_an_explicit_path_template_wins_and_needs_no_read(onboarded: InMemoryManifestRepo) -> None:
    change = deploy_change(deploy("kustomize/{app}/overlays/{env}"))
    assert not change.reads_defaults
    with pytest.raises(KustomizationError, match=r"overlay kustomize/web/overlays/dev .* does not exist"):
        land(onboarded, change, FakeClock(), defaults=repo_defaults(onboarded))


def promote(source: str | None, *targets: str) -> PromoteSettings:
    return PromoteSettings(repo=RepoSettings(repo_url=URL), app="web", source=source, targets=targets)


def test_promote_without_from_copies_the_environment_before_the_target(
    onboarded: InMemoryManifestRepo,
) -> None:
    defaults = repo_defaults(onboarded)
    land(onboarded, deploy_change(deploy(tag="3.1")), FakeClock(), defaults=defaults)  # dev runs 3.1
    onboarded.refresh()
    staging = promote_change(promote(None, "staging")).planner(onboarded, defaults)
    assert [(t.path, t.updates[0].new_tag) for t in staging] == [("apps/web/staging", "3.1")]
    prod = promote_change(promote(None, "prod")).planner(onboarded, defaults)
    assert [t.updates[0].new_tag for t in prod] == ["1.0.0"]  # staging's, not dev's


@pytest.mark.parametrize(
    ("targets", "defaults", "message"),
    [
        (("dev",), RepoDefaults(environments=("dev", "prod")), "--to dev is the first environment"),
        (
            ("qa",),
            RepoDefaults(environments=("dev", "prod")),
            "--to qa is not an environment of gitops-ci.yaml",
        ),
        (("prod",), RepoDefaults(), "no --from: pass --from ENV"),
    ],
)
def test_promote_without_from_needs_an_order_that_has_one(
    targets: tuple[str, ...], defaults: RepoDefaults, message: str
) -> None:
    repo = InMemoryManifestRepo(manifest_files(["web"]))
    with pytest.raises(ConfigurationError, match=message):
        promote_change(promote(None, *targets)).planner(repo, defaults)


def test_a_hostile_path_template_in_the_settings_file_is_refused_before_any_commit() -> None:
    text = render_conventions(CONVENTIONS).replace("apps/{app}/{env}", '"apps/{app}/*\\n/{env}"')
    repo = InMemoryManifestRepo({**moved(manifest_files(["web"])), "gitops-ci.yaml": text})
    with pytest.raises(UsageError, match="holds a line break"):
        land(repo, deploy_change(deploy()), FakeClock(), defaults=repo_defaults(repo))
    assert len(repo.history()) == 1


@pytest.mark.parametrize("template", ["{env}-{app}\\e]0;pwn\\a", "{env}-{app}\\r", "{env}\\u202e-{app}"])
def test_an_app_name_template_with_a_control_character_in_the_settings_file_is_refused(template: str) -> None:
    """It went on to the dotenv raw (GITOPS_ARGOCD_APP_NAME_TEMPLATE), for the job's sync and wait."""
    written = 'app_name_template: "{env}-{app}"'
    text = render_conventions(CONVENTIONS).replace(written, f'app_name_template: "{template}"')
    assert template in text
    repo = InMemoryManifestRepo({**moved(manifest_files(["web"])), "gitops-ci.yaml": text})
    with pytest.raises(UsageError, match="app_name_template holds a line break or another control"):
        land(repo, deploy_change(deploy()), FakeClock(), defaults=repo_defaults(repo))
    assert len(repo.history()) == 1


@pytest.mark.parametrize(
    "template", ["x\ny/{app}/{env}", "a b/{app}/{env}", "-x/{app}/{env}", "../x/{app}/{env}"]
)
def test_promote_all_apps_checks_the_apps_directory_of_the_settings_file(template: str) -> None:
    repo = InMemoryManifestRepo(manifest_files(["web"]))
    settings = PromoteSettings(repo=RepoSettings(repo_url=URL), app=None, all_apps=True, source="staging",
                               targets=("prod",))  # fmt: skip
    with pytest.raises(ConfigurationError, match="overlay path"):
        promote_change(settings).planner(repo, RepoDefaults(template))
