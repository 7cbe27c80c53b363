"""`gitops-ci promote`."""

from __future__ import annotations

from typing import Any

import click

from gitops_ci.change.promote import (
    DEFAULT_PROMOTE_MESSAGE,
    DEFAULT_PROMOTE_MR_TITLE,
    PromoteSettings,
    promote,
)
from gitops_ci.cli.app import common_options
from gitops_ci.cli.options import dotenv_report, repo_options, repo_settings
from gitops_ci.cli.report import report_change


@click.command("promote")
@click.option("--app", envvar="GITOPS_APP_NAME", help="App to promote.")
@click.option("--all-apps", is_flag=True, help="Promote every app whose images differ.")
@click.option(
    "--from",
    "source",
    envvar="GITOPS_PROMOTE_FROM",
    help="Source environment (default: the one before the first --to in the repo's gitops-ci.yaml).",
)
@click.option(
    "--to",
    "targets",
    envvar="GITOPS_PROMOTE_TO",
    multiple=True,
    required=True,
    help="Target environment (repeatable).",
)
@click.option(
    "--image", "image_names", multiple=True, help="Only these image names (default: all of the app's)."
)
@click.option(
    "--message",
    envvar="GITOPS_MESSAGE",
    default=DEFAULT_PROMOTE_MESSAGE,
    show_default=True,
    help="Commit subject ({app}, {env}, {image}).",
)
@repo_options(mr_title=DEFAULT_PROMOTE_MR_TITLE)
@common_options
def promote_command(
    app: str | None,
    all_apps: bool,
    source: str | None,
    targets: tuple[str, ...],
    image_names: tuple[str, ...],
    message: str,
    output_format: str,
    **options: Any,
) -> int:
    """Copy the images of the --from overlay into each --to overlay (push, or one merge request each)."""
    dotenv = dotenv_report(options)
    settings = PromoteSettings(
        repo=repo_settings(options),
        app=app,
        all_apps=all_apps,
        source=source or None,
        targets=targets,
        image_names=image_names,
        message=message,
    )
    report_change(promote(settings), output_format, dotenv)
    return 0
