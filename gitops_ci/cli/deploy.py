"""`gitops-ci deploy`."""

from __future__ import annotations

from pathlib import Path

import click

from gitops_ci.cli.app import cli, common_options, emit
from gitops_ci.deploy import deploy
from gitops_ci.deploy_output import deploy_dotenv, deploy_json, deploy_text
from gitops_ci.deploy_settings import (
    DEFAULT_MESSAGE,
    DEFAULT_PATH_TEMPLATE,
    DeploySettings,
    author_from_gitlab,
    trailers_from_ci,
)
from gitops_ci.dotenv import write_dotenv
from gitops_ci.output import to_json


def repo_options(func: click.decorators.FC) -> click.decorators.FC:
    """Options shared by every command that changes the manifest repo."""
    for option in reversed(
        [
            click.option(
                "--repo-url", envvar="GITOPS_REPO_URL", required=True, help="HTTPS URL of the manifest repo."
            ),
            click.option(
                "--app",
                envvar="GITOPS_APP_NAME",
                required=True,
                help="App name ({app} in the path template).",
            ),
            click.option(
                "--branch", envvar="GITOPS_BRANCH", help="Target branch (default: the remote's default)."
            ),
            click.option(
                "--path-template",
                envvar="GITOPS_PATH_TEMPLATE",
                default=DEFAULT_PATH_TEMPLATE,
                show_default=True,
                help="Overlay directory of {app} in {env}.",
            ),
            click.option(
                "--ca-file", envvar=["GITOPS_CA_FILE", "CI_SERVER_TLS_CA_FILE"], help="CA bundle for HTTPS."
            ),
            click.option(
                "--workdir",
                envvar="GITOPS_WORKDIR",
                type=click.Path(path_type=Path),
                help="Keep the clone in this (new or empty) directory.",
            ),
            click.option(
                "--max-attempts",
                envvar="GITOPS_MAX_ATTEMPTS",
                type=click.IntRange(min=1),
                default=10,
                show_default=True,
                help="Pushes (and transient retries) before giving up.",
            ),
            click.option(
                "--backoff",
                envvar="GITOPS_BACKOFF_SECONDS",
                type=click.FloatRange(min=0),
                default=0.5,
                show_default=True,
                help="Base of the jittered exponential backoff, in seconds.",
            ),
            click.option(
                "--dry-run", is_flag=True, envvar="GITOPS_DRY_RUN", help="Show the diff; commit nothing."
            ),
            click.option(
                "--dotenv",
                envvar="GITOPS_DOTENV",
                type=click.Path(path_type=Path),
                help="Write results as a GitLab dotenv report.",
            ),
        ]
    ):
        func = option(func)
    return func


@cli.command("deploy")
@repo_options
@click.option(
    "--env",
    "environments",
    envvar="GITOPS_ENVIRONMENT",
    multiple=True,
    required=True,
    help="Environment to update (repeatable; all in one commit).",
)
@click.option(
    "--image",
    "images",
    envvar="GITOPS_IMAGE",
    multiple=True,
    required=True,
    help="Image for the app (registry/app:tag), or set-image syntax name=newName:tag (repeatable).",
)
@click.option(
    "--message",
    envvar="GITOPS_MESSAGE",
    default=DEFAULT_MESSAGE,
    show_default=True,
    help="Commit subject; {app}, {env} and {image} are filled in.",
)
@common_options
def deploy_command(
    repo_url: str,
    app: str,
    branch: str | None,
    path_template: str,
    ca_file: str | None,
    workdir: Path | None,
    max_attempts: int,
    backoff: float,
    dry_run: bool,
    dotenv: Path | None,
    environments: tuple[str, ...],
    images: tuple[str, ...],
    message: str,
    output_format: str,
) -> int:
    """Set the app's image in the manifest repo's overlays and push one commit."""
    result = deploy(
        DeploySettings(
            repo_url=repo_url,
            app=app,
            environments=environments,
            images=images,
            branch=branch,
            path_template=path_template,
            message=message,
            ca_file=ca_file,
            workdir=workdir,
            max_attempts=max_attempts,
            backoff_seconds=backoff,
            dry_run=dry_run,
            author=author_from_gitlab(),
            trailers=trailers_from_ci(),
        )
    )
    if dotenv is not None:
        write_dotenv(dotenv, deploy_dotenv(result))
    emit(to_json(deploy_json(result)) if output_format == "json" else deploy_text(result))
    return 0
