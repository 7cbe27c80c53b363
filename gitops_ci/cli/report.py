"""Printing a change to the manifest repo: stdout (text or JSON) and the dotenv report."""

from __future__ import annotations

from pathlib import Path

from gitops_ci.cli.app import emit
from gitops_ci.deploy import DeployResult
from gitops_ci.deploy_output import deploy_dotenv, deploy_json, deploy_text
from gitops_ci.dotenv import write_dotenv
from gitops_ci.output import to_json


def report_change(result: DeployResult, output_format: str, dotenv: Path | None) -> None:
    if dotenv is not None:
        write_dotenv(dotenv, deploy_dotenv(result))
    emit(to_json(deploy_json(result)) if output_format == "json" else deploy_text(result))
