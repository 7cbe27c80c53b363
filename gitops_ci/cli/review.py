"""`gitops-ci review`."""

from __future__ import annotations

from pathlib import Path

import click

from gitops_ci.cli.app import common_options, emit
from gitops_ci.cli.target_options import build_options, dry_run_option
from gitops_ci.errors import EXIT_FAILURE
from gitops_ci.images.describe import to_json
from gitops_ci.review import DEFAULT_MAX_DIFF_LINES


@click.command("review")
@click.argument("path", type=click.Path(path_type=Path), default=".", required=False)
@click.option(
    "--base",
    envvar="CI_MERGE_REQUEST_DIFF_BASE_SHA",
    help="Target branch or commit to compare with (default: CI_MERGE_REQUEST_DIFF_BASE_SHA).",
)
@click.option(
    "--gitlab-url", envvar=["GITOPS_GITLAB_URL", "CI_SERVER_URL"], help="GitLab URL (CI_SERVER_URL)."
)
@click.option(
    "--project", envvar="CI_PROJECT_PATH", help="Project path of the manifest repo (CI_PROJECT_PATH)."
)
@click.option(
    "--mr",
    type=click.IntRange(min=1),
    envvar="CI_MERGE_REQUEST_IID",
    help="Merge request IID (CI_MERGE_REQUEST_IID).",
)
@click.option("--ca-file", envvar=["GITOPS_CA_FILE", "CI_SERVER_TLS_CA_FILE"], help="CA bundle for HTTPS.")
@dry_run_option("Print the note instead of posting it.")
@click.option(
    "--max-diff-lines",
    type=click.IntRange(min=10),
    default=DEFAULT_MAX_DIFF_LINES,
    show_default=True,
    envvar="GITOPS_REVIEW_MAX_DIFF_LINES",
    help="Diff lines shown per overlay.",
)
@build_options
@common_options
def review_command(
    path: Path,
    base: str | None,
    gitlab_url: str | None,
    project: str | None,
    mr: int | None,
    ca_file: str | None,
    dry_run: bool,
    max_diff_lines: int,
    kustomize: str | None,
    build_options: tuple[str, ...],
    build_timeout: float,
    jobs: int | None,
    output_format: str,
) -> int:
    """Post one note on the merge request with, per changed overlay, the image changes, the rendered diff
    and the validation result; re-runs edit the same note. Run it in the manifest repo's MR pipeline; PATH
    (default .) is the directory of the checkout whose overlays are reviewed. Exit 1 when a changed
    overlay does not build or has errors.

    Posting needs GITOPS_TOKEN (api scope); --dry-run (GITOPS_DRY_RUN=true) prints the note instead.
    """
    from gitops_ci.review.report import result_json, result_text  # GitPython: not for `gitops-ci --help`
    from gitops_ci.review.run import ReviewSettings, review

    settings = ReviewSettings(
        path=path,
        base=base,
        gitlab_url=gitlab_url,
        project=project,
        mr=mr,
        ca_file=ca_file,
        dry_run=dry_run,
        max_diff_lines=max_diff_lines,
        kustomize=kustomize,
        build_options=build_options,
        build_timeout=build_timeout,
        jobs=jobs,
    )
    result = review(settings)
    emit(to_json(result_json(result)) if output_format == "json" else result_text(result))
    return EXIT_FAILURE if result.errors else 0
