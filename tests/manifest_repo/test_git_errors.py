"""git's failures become errors that carry git's reason, from real git runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from gitops_ci.errors import GitError
from gitops_ci.manifest_repo.git import Remote
from gitops_ci.manifest_repo.git_errors import classify
from gitops_ci.manifest_repo.git_process import GitFailure, run_git

GPG_WITHOUT_AGENT = "#!/bin/sh\ncat >/dev/null\necho 'gpg: signing failed: No agent running' >&2\nexit 2\n"


@pytest.fixture
def clone(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("GIT_")},
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "LC_ALL": "C",
    }
    subprocess.run(["git", "init", "-q", str(tmp_path / "clone")], env=env, check=True)
    return tmp_path / "clone", env


def test_a_signing_failure_says_what_gpg_said_not_only_that_the_commit_failed(
    clone: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    root, env = clone
    gpg = tmp_path / "gpg"
    gpg.write_text(GPG_WITHOUT_AGENT)
    gpg.chmod(0o755)
    signing = ["-c", f"gpg.program={gpg}", "-c", "user.signingKey=ABCD", "-c", "user.name=bot"]
    args = [
        *signing,
        "-c",
        "user.email=bot@example.invalid",
        "commit",
        "-q",
        "-S",
        "--allow-empty",
        "-m",
        "x",
    ]
    with pytest.raises(GitFailure) as failure:
        run_git(args, env=env, cwd=root, timeout=30)
    error = classify(failure.value, "commit", Remote("https://gitlab.example.com/g/m.git", {}))
    assert isinstance(error, GitError)
    message = str(error)
    # git >= 2.40 also relays gpg's own lines ("gpg: signing failed: …"); they are kept too
    assert "error: gpg failed to sign the data" in message, message
    assert message.endswith("; fatal: failed to write commit object"), message


def test_a_failure_whose_last_line_says_why_is_reported_by_that_line_alone(
    clone: tuple[Path, dict[str, str]],
) -> None:
    root, env = clone
    with pytest.raises(GitFailure) as failure:
        run_git(["checkout", "-q", "no-such-branch"], env=env, cwd=root, timeout=30)
    error = classify(failure.value, "checkout", Remote("https://gitlab.example.com/g/m.git", {}))
    assert str(error) == (
        "git checkout failed: error: pathspec 'no-such-branch' did not match any file(s) known to git"
    )
