"""deploy's follow-ups: which Argo CD application names they use."""

from __future__ import annotations

from gitops_ci.change.follow_up import FollowUpSettings, _app_name_template
from gitops_ci.manifest_repo.memory import InMemoryManifestRepo
from gitops_ci.onboard.conventions import Cluster, Conventions, Environment, render_conventions
from manifests import manifest_files

CONVENTIONS = Conventions(
    repo_url="https://gitlab.example.com/platform/manifests.git",
    branch="main",
    clusters=(Cluster("dev-cluster", "https://dev.k8s.example.com"),),
    environments=(Environment("dev", "dev-cluster"),),
)


def test_the_template_init_recorded_names_the_applications_unless_an_option_does() -> None:
    onboarded = InMemoryManifestRepo(
        {**manifest_files(["web"]), "gitops-ci.yaml": render_conventions(CONVENTIONS)}
    )
    seed = InMemoryManifestRepo(manifest_files(["web"]))
    assert _app_name_template(onboarded, FollowUpSettings()) == "{env}-{app}"
    assert _app_name_template(seed, FollowUpSettings()) == "{app}-{env}"
    assert _app_name_template(onboarded, FollowUpSettings(app_name_template="argo-{app}")) == "argo-{app}"
