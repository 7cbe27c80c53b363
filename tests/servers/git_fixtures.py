"""Pytest fixtures around :mod:`servers.gitserver`.

Import the fixtures into a conftest (or a test module) to use them::

    from servers.git_fixtures import git_argv_recorder, git_server, tls_material  # noqa: F401
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import git
import pytest

from servers.gitserver import GitHttpServer
from servers.tls import TlsMaterial, make_ca

__all__ = ["GitArgvRecorder", "git_argv_recorder", "git_server", "tls_material"]


@pytest.fixture(scope="session")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    """A CA and a server certificate for 127.0.0.1/localhost, shared by the whole session."""
    return make_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def git_server(tmp_path: Path, tls_material: TlsMaterial) -> Iterator[GitHttpServer]:
    """A started HTTPS git server rooted at ``tmp_path / "srv"``; any user name, random token.

    Create repositories with ``make_bare_repo(git_server.root, ...)``; the token is
    ``git_server.token`` and the CA to trust is ``git_server.ca_file``.
    """
    with GitHttpServer(
        tmp_path / "srv", tls_material, token=secrets.token_urlsafe(24), username=None
    ) as server:
        yield server


_WRAPPER_TEMPLATE = """\
#!{python} -IS
import json, os, sys
with open({log!r}, "a", encoding="utf-8") as log:
    log.write(json.dumps(sys.argv) + "\\n")
os.execv({git!r}, [{git!r}, *sys.argv[1:]])
"""


@dataclass(frozen=True)
class GitArgvRecorder:
    """A ``git`` wrapper on PATH (and used by GitPython) that logs every argv before exec'ing git."""

    wrapper: Path
    log_file: Path
    real_git: str

    def calls(self) -> list[list[str]]:
        """Every recorded argv, oldest first; ``argv[0]`` is normalised to ``"git"``."""
        if not self.log_file.exists():
            return []
        lines = self.log_file.read_text(encoding="utf-8").splitlines()
        return [["git", *json.loads(line)[1:]] for line in lines if line]

    def clear(self) -> None:
        self.log_file.unlink(missing_ok=True)


def _write_wrapper(directory: Path, log_file: Path, real_git: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    wrapper = directory / "git"
    wrapper.write_text(_WRAPPER_TEMPLATE.format(python=sys.executable, log=str(log_file), git=real_git))
    wrapper.chmod(0o755)
    return wrapper


def _restore_gitpython(previous_executable: str) -> None:
    default = os.environ.get("GIT_PYTHON_GIT_EXECUTABLE", git.Git.git_exec_name)
    git.refresh(None if previous_executable == default else previous_executable)


@pytest.fixture
def git_argv_recorder(tmp_path: Path) -> Iterator[GitArgvRecorder]:
    """Record the argv of every git invocation made via PATH or GitPython during the test."""
    real_git = shutil.which("git")
    if real_git is None:
        pytest.skip("git is not installed")
    directory = tmp_path / "git-argv-recorder"
    log_file = tmp_path / "git-argv.jsonl"
    recorder = GitArgvRecorder(_write_wrapper(directory, log_file, real_git), log_file, real_git)
    previous_executable = str(git.Git.GIT_PYTHON_GIT_EXECUTABLE)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", f"{directory}{os.pathsep}{os.environ.get('PATH', os.defpath)}")
        patch.setenv("GIT_PYTHON_GIT_EXECUTABLE", str(recorder.wrapper))
        git.refresh()
        recorder.clear()  # drop the `git version` probe made by refresh()
        yield recorder
    _restore_gitpython(previous_executable)
