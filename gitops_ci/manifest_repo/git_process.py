"""Running git for the manifest repo's clone: one process per command, bounded by a wall-clock timeout
that kills git and everything it started (git-remote-https, ssh-keygen, gpg). GitPython is not needed here:
it would run `git version` twice at import and cost ~75 ms of imports on every deploy."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from gitops_ci.manifest_repo import meanwhile


class GitFailure(Exception):
    """git exited non-zero (or was killed at its timeout); `stderr` and `stdout` as text."""

    def __init__(self, argv: Sequence[str], status: int, stdout: str, stderr: str) -> None:
        super().__init__(f"git {' '.join(argv[:2])} exited {status}")
        self.status, self.stdout, self.stderr = status, stdout, stderr


def run_git(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None = None,
    timeout: float,
    strip: bool = True,
) -> str:
    """git's stdout (without its final newline when `strip`); GitFailure when it fails or times out."""
    process = subprocess.Popen(  # noqa: S603 - argv is ours; values are checked and follow `--`
        ["git", *args],
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: a timeout kills git's helpers too
    )
    try:
        meanwhile.while_waiting()
    except BaseException:
        _kill(process)
        raise
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(process)
        raise GitFailure(args, -9, "", f"Timeout: git did not complete in {timeout:g} secs") from None
    stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    if process.returncode != 0:
        raise GitFailure(args, process.returncode, stdout, stderr)
    return stdout.removesuffix("\n") if strip else stdout


def _kill(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except OSError:
        process.kill()
    process.communicate()
