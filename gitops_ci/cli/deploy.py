"""`gitops-ci deploy`."""

from __future__ import annotations

from typing import Any

import click

from gitops_ci.change.deploy import deploy
from gitops_ci.change.settings import DEFAULT_MESSAGE, DeploySettings
from gitops_ci.cli.app import common_options
from gitops_ci.cli.options import (
    dotenv_report,
    follow_up_options,
    follow_up_settings,
    repo_options,
    repo_settings,
)
from gitops_ci.cli.report import report_change


@click.command("deploy")
@click.option("--app", envvar="GITOPS_APP_NAME", required=True, help="App name ({app} in the path template).")
@click.option(
    "--env",
    "environments",
    envvar="GITOPS_ENVIRONMENT",
    multiple=True,
    required=True,
    help="Environment to update (repeatable; one commit, or one merge request each).",
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
    help="Commit subject ({app}, {env}, {image}); [skip ci] is dropped in merge-request mode.",
)
@repo_options()
@follow_up_options
@common_options
def deploy_command(
    app: str,
    environments: tuple[str, ...],
    images: tuple[str, ...],
    message: str,
    output_format: str,
    **options: Any,
) -> int:
    """Set the app's image in the manifest repo's overlays: push one commit, or open merge requests."""
    dotenv = dotenv_report(options)
    follow = follow_up_settings(options, options["ca_file"], options["network_timeout"])
    settings = DeploySettings(
        repo=repo_settings(options), app=app, environments=environments, images=images, message=message
    )
    report_change(deploy(settings, follow), output_format, dotenv)
    return 0
