"""Printing a change to the manifest repo: stdout (text or JSON) and the dotenv report."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gitops_ci.change.report import deploy_dotenv, deploy_json, deploy_text
from gitops_ci.cli.app import emit
from gitops_ci.dotenv import DotenvReport, write_dotenv
from gitops_ci.images.describe import to_json

if TYPE_CHECKING:
    from gitops_ci.change.follow_up import FollowUpResult
    from gitops_ci.change.runner import ChangeOutcome


def report_change(outcome: ChangeOutcome, output_format: str, dotenv: DotenvReport | None) -> None:
    """Stdout first: it must reach the job log even when the dotenv report cannot be written. A follow-up
    that failed after the change landed is raised last, once the change is reported."""
    result, followed = outcome.result, outcome.followed
    if output_format == "json":
        data = deploy_json(result)
        if followed is not None:
            data.update(_follow_up_json(followed))
        emit(to_json(data))
    else:
        emit(deploy_text(result) + (_follow_up_text(followed) if followed is not None else ""))
    if dotenv is not None:
        write_dotenv(dotenv, *deploy_dotenv(result))
    if outcome.error is not None:
        raise outcome.error


def _follow_up_json(followed: FollowUpResult) -> dict[str, Any]:
    from gitops_ci.cli.sync import sync_json
    from gitops_ci.cli.wait import wait_json

    return {
        "sync": sync_json(followed.sync) if followed.sync else None,
        "wait": wait_json(followed.wait) if followed.wait else None,
        "follow_up_skipped": followed.skipped,
    }


def _follow_up_text(followed: FollowUpResult) -> str:
    from gitops_ci.cli.sync import sync_text

    text = sync_text(followed.sync) if followed.sync else ""
    text += "".join(f"{t.line()}: {t.state}\n" for t in followed.wait.targets) if followed.wait else ""
    return text + (f"{followed.skipped}\n" if followed.skipped else "")
