"""Printing a change to the manifest repo: stdout (text or JSON) and the dotenv report."""

from __future__ import annotations

from pathlib import Path

from gitops_ci.cli.app import emit
from gitops_ci.cli.sync import sync_json, sync_text
from gitops_ci.cli.wait import wait_json
from gitops_ci.deploy import DeployResult
from gitops_ci.deploy_output import deploy_dotenv, deploy_json, deploy_text
from gitops_ci.dotenv import write_dotenv
from gitops_ci.follow_up import FollowUpResult
from gitops_ci.output import to_json


def report_change(
    result: DeployResult, output_format: str, dotenv: Path | None, followed: FollowUpResult | None = None
) -> None:
    if dotenv is not None:
        write_dotenv(dotenv, deploy_dotenv(result))
    if output_format == "json":
        data = deploy_json(result)
        if followed is not None:
            data["sync"] = sync_json(followed.sync) if followed.sync else None
            data["wait"] = wait_json(followed.wait) if followed.wait else None
            data["follow_up_skipped"] = followed.skipped
        emit(to_json(data))
        return
    text = deploy_text(result)
    if followed is not None:
        text += sync_text(followed.sync) if followed.sync else ""
        text += "".join(f"{t.line()}: {t.state}\n" for t in followed.wait.targets) if followed.wait else ""
        text += f"{followed.skipped}\n" if followed.skipped else ""
    emit(text)
