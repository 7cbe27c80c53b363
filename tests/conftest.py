"""Shared test setup: a hermetic environment for every test, and the CLI as a callable."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gitops_ci import logs
from gitops_ci.cli import run

_INHERITED_PREFIXES = ("CI_", "GITOPS_", "GITLAB_", "ARGOCD_", "GIT_", "KUBECONFIG")


@pytest.fixture(autouse=True)
def hermetic_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer config, no inherited CI variables, a pinned git identity."""
    for name in list(os.environ):
        if name.startswith(_INHERITED_PREFIXES) or name == "CI":
            monkeypatch.delenv(name)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_TERMINAL_PROMPT", "0")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test Runner")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "test@example.invalid")
        monkeypatch.setenv(f"GIT_{role}_DATE", "2026-01-01T00:00:00Z")
    monkeypatch.setattr(logs, "_secrets", set())


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


CliRunner = Callable[..., CliResult]


@pytest.fixture
def gitops(capsys: pytest.CaptureFixture[str]) -> CliRunner:
    """Run `gitops-ci ARGS...` in-process through the real entry point; return code, stdout, stderr."""

    def invoke(*args: str | Path) -> CliResult:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke
