"""The command group itself: every command loads, and set-image stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CliRunner
from gitops_ci.cli.app import LazyGroup


@pytest.mark.parametrize("command", sorted(LazyGroup.commands_by_name))
def test_every_command_has_help(command: str, gitops: CliRunner) -> None:
    result = gitops(command, "--help")
    assert result.code == 0, result.err
    assert f"Usage: gitops-ci {command}" in result.out


def test_group_help_lists_every_command(gitops: CliRunner) -> None:
    result = gitops("--help")
    assert result.code == 0
    for command in LazyGroup.commands_by_name:
        assert f"  {command} " in result.out


def test_unknown_command_is_a_usage_error(gitops: CliRunner) -> None:
    result = gitops("deplyo")
    assert result.code == 2
    assert result.err.startswith("gitops-ci: error: No such command 'deplyo'.")


def test_set_image_imports_no_heavy_library(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("images:\n- name: a\n  newTag: '1'\n")
    probe = (
        "import sys\nfrom gitops_ci.cli import run\n"
        f"code = run(['set-image', '--overlay', {str(tmp_path)!r}, 'a:2'])\n"
        "libraries = ('git', 'gitlab', 'requests', 'kubernetes', 'urllib3', 'logging', 'tempfile')\n"
        "heavy = sorted(m for m in libraries if m in sys.modules)\n"
        "print(code, heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 []"


def test_deploy_loads_sync_and_wait_only_when_asked_for() -> None:
    probe = (
        "import sys\nimport gitops_ci.cli.deploy\n"
        "names = ('gitops_ci.sync', 'gitops_ci.wait', 'gitops_ci.cli.sync')\n"
        "print(sorted(m for m in names if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
