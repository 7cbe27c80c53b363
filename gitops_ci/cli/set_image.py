"""`gitops-ci set-image`."""

from __future__ import annotations

from pathlib import Path

import click

from gitops_ci.cli.app import common_options, emit
from gitops_ci.images.describe import edit_json, render_edits_text, to_json


@click.command("set-image")
@click.option(
    "--overlay",
    "overlays",
    multiple=True,
    default=(".",),
    type=click.Path(path_type=Path),
    help="Overlay directory holding a kustomization (repeatable; default: .).",
)
@click.option("--dry-run", is_flag=True, help="Print a unified diff per file and write nothing.")
@click.option(
    "--strict", is_flag=True, help="Fail when an IMAGE names no existing entry instead of appending one."
)
@common_options
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
def set_image_command(
    overlays: tuple[Path, ...], dry_run: bool, strict: bool, output_format: str, images: tuple[str, ...]
) -> int:
    """Set images in kustomize overlays, changing only the lines that must change.

    IMAGE follows `kustomize edit set image`: name=newName:tag@digest, name:tag, name@digest, name=newName,
    name= (clear), and * keeps the current value (name=*:tag). Fields the argument does not name are kept.
    """
    from gitops_ci.images.set_image import SetImageSettings, set_image  # ruamel.yaml: not for --help

    report = set_image(SetImageSettings(overlays=overlays, images=images, dry_run=dry_run, strict=strict))
    if output_format == "json":
        emit(
            to_json(
                {
                    "dry_run": dry_run,
                    "changed": report.changed,
                    "overlays": [edit_json(e, with_diff=dry_run) for e in report.edits],
                }
            )
        )
    else:
        emit(render_edits_text(report.edits, dry_run=dry_run))
    return 0
