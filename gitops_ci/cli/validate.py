"""`gitops-ci validate`."""

from __future__ import annotations

from pathlib import Path

import click

from gitops_ci.cli.app import common_options, emit
from gitops_ci.cli.target_options import build_options
from gitops_ci.errors import EXIT_FAILURE
from gitops_ci.images.describe import to_json


@click.command("validate")
@click.argument("path", type=click.Path(path_type=Path), default=".", required=False)
@build_options
@click.option(
    "--ignore", multiple=True, envvar="GITOPS_VALIDATE_IGNORE", help="Rule id or prefix to drop (repeatable)."
)
@click.option(
    "--junit", type=click.Path(path_type=Path), help="Write a JUnit XML report (one testcase per overlay)."
)
@click.option("--code-quality", type=click.Path(path_type=Path), help="Write a GitLab code quality report.")
@click.option("--verbose", "-v", is_flag=True, help="Also list notes (kinds that were not checked, ...).")
@common_options
def validate_command(
    path: Path,
    kustomize: str | None,
    build_options: tuple[str, ...],
    build_timeout: float,
    jobs: int | None,
    ignore: tuple[str, ...],
    junit: Path | None,
    code_quality: Path | None,
    verbose: bool,
    output_format: str,
) -> int:
    """Build every overlay under PATH (default .) offline and check what it renders.

    Checks: every overlay builds; each object matches the Kubernetes API schema of its kind; no plaintext
    Secret in the repo or a render; images entries are valid; the seed's layout rules (as warnings).
    Exit 1 when there are errors.
    """
    from gitops_ci.validate.report import report_json, report_text, write_reports  # not for --help
    from gitops_ci.validate.run import ValidateSettings, validate

    settings = ValidateSettings(
        path=path,
        kustomize=kustomize,
        build_options=build_options,
        build_timeout=build_timeout,
        jobs=jobs,
        ignore=ignore,
    )
    report = validate(settings)
    write_reports(report, junit=junit, code_quality_file=code_quality)
    emit(to_json(report_json(report)) if output_format == "json" else report_text(report, verbose=verbose))
    return 0 if report.ok else EXIT_FAILURE
