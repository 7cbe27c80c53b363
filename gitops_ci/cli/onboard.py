"""`gitops-ci init` and `gitops-ci new-app`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from gitops_ci.cli.app import common_options, emit
from gitops_ci.cli.options import dotenv_report, repo_options, repo_settings
from gitops_ci.errors import ConfigurationError
from gitops_ci.images.describe import to_json
from gitops_ci.naming import MAX_REPLICAS

if TYPE_CHECKING:
    from gitops_ci.onboard.run import OnboardResult


@click.command("init")
@click.option("--cluster", "clusters", multiple=True, required=True, metavar="NAME=API_SERVER_URL",
              help="A cluster and its API server URL (repeatable).")  # fmt: skip
@click.option("--env", "environments", multiple=True, required=True, metavar="ENV=CLUSTER",
              help="An environment and its cluster, in promotion order (repeatable).")  # fmt: skip
@click.option("--engine", type=click.Choice(["argocd", "flux"]), envvar="GITOPS_ENGINE",
              help="What pulls the repo into clusters [default: gitops-ci.yaml's, or argocd].")  # fmt: skip
@click.option(
    "--agent", envvar="GITOPS_AGENT", help="GitLab agent name: writes .gitlab/agents/<name>/config.yaml."
)
@click.option("--ci-access-group", "groups", multiple=True, help="Group whose CI/CD jobs may use the agent.")
@repo_options()
@common_options
def init_command(
    clusters: tuple[str, ...],
    environments: tuple[str, ...],
    engine: str | None,
    agent: str | None,
    groups: tuple[str, ...],
    output_format: str,
    **options: Any,
) -> int:
    """Lay out the manifest repo: conventions, per cluster an AppProject and a root Application (or Flux's
    GitRepository and Kustomization), the GitLab agent's configuration; adds only what is missing."""
    from gitops_ci.onboard.conventions import Cluster, Environment  # ruamel.yaml: not for --help
    from gitops_ci.onboard.run import InitSettings, init

    dotenv_report(options)
    settings = InitSettings(
        repo=repo_settings(options),
        clusters=tuple(Cluster(*_pair(c, "--cluster")) for c in clusters),
        environments=tuple(Environment(*_pair(e, "--env")) for e in environments),
        engine=engine,  # type: ignore[arg-type]
        agent=agent,
        ci_access_groups=groups,
    )
    _report(init(settings), output_format)
    return 0


@click.command("new-app")
@click.option("--app", envvar="GITOPS_APP_NAME", required=True, help="App name (a DNS-1123 label).")
@click.option("--env", "environments", multiple=True, required=True, help="Environment (repeatable).")
@click.option("--image", envvar="GITOPS_IMAGE", required=True, help="First image: registry/app:tag.")
@click.option(
    "--port", type=int, default=8080, show_default=True, help="Container port (probes and Service)."
)
@click.option(
    "--replicas",
    type=click.IntRange(min=0, max=MAX_REPLICAS),
    help="Replicas in each overlay (default: the base's 1).",
)
@click.option("--update", is_flag=True, help="The app exists: add only the missing environments.")
@repo_options()
@common_options
def new_app_command(
    app: str,
    environments: tuple[str, ...],
    image: str,
    port: int,
    replicas: int | None,
    update: bool,
    output_format: str,
    **options: Any,
) -> int:
    """Add an app: its base, one overlay per environment and the object that makes each cluster run it."""
    from gitops_ci.onboard.run import NewAppSettings, new_app

    dotenv_report(options)
    settings = NewAppSettings(repo=repo_settings(options), app=app, environments=environments, image=image,
                              port=port, replicas=replicas, update=update)  # fmt: skip
    _report(new_app(settings), output_format)
    return 0


def _pair(value: str, option: str) -> tuple[str, str]:
    name, found, rest = value.partition("=")
    if not found or not name or not rest:
        raise ConfigurationError(f"{option} {value[:80]!r}: write NAME=VALUE")
    return name, rest


def _report(outcome: OnboardResult, output_format: str) -> None:
    result, mr = outcome.result, outcome.result.merge_request
    proposal = None if mr is None else {"action": mr.action, "iid": mr.iid, "web_url": mr.web_url,
                                         "source_branch": mr.source_branch}  # fmt: skip
    if output_format == "json":
        data = {"status": result.status, "commit": result.commit, "branch": result.branch,
                "files": list(result.files), "apply": list(outcome.apply_commands)}  # fmt: skip
        emit(to_json({**data, "merge_request": proposal}))
        return
    lines = [f"{result.status} {result.commit or result.base_commit} on {result.branch} of {result.repo_url}"]
    if mr is not None:
        lines.append(f"merge request !{mr.iid} {mr.action}: {mr.web_url}")
    lines += [f"  {path}" for path in result.files]
    if outcome.apply_commands:
        lines += ["Apply once per cluster, by hand (everything else comes from the repo):"]
        lines += [f"  {command}" for command in outcome.apply_commands]
    emit("\n".join(lines) + "\n")
