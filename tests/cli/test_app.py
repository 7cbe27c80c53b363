"""The command group itself: every command loads, and set-image stays light."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import click
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


@pytest.mark.parametrize(
    ("typed", "hint"),
    [
        ("deplyo", "did you mean 'deploy'?"),
        ("valdate", "did you mean 'validate'?"),
        ("xyzzy", "choose from deploy,"),
    ],
)
def test_an_unknown_command_suggests_the_closest(gitops: CliRunner, typed: str, hint: str) -> None:
    result = gitops(typed)
    assert result.code == 2
    assert result.err.startswith(f"gitops-ci: error: no command '{typed}': {hint}")


def test_group_help_shows_whole_summaries(gitops: CliRunner) -> None:
    """click cuts a command's summary to the terminal's width with `...`; ours show the first sentence."""
    commands = gitops("--help").out.split("Commands:", 1)[1]
    assert "..." not in commands
    assert "push one commit, or open merge requests." in " ".join(commands.split())


@pytest.mark.parametrize("command", sorted(LazyGroup.commands_by_name))
def test_every_option_names_its_environment_variable(command: str) -> None:
    """In CI the variables are the interface: `--help` shows each option's `[env var: ...]`."""
    group = LazyGroup()
    ctx = click.Context(group, info_name="gitops-ci")
    loaded = group.get_command(ctx, command)
    assert loaded is not None
    text = loaded.get_help(click.Context(loaded, info_name=command, parent=ctx))
    for param in loaded.params:
        if isinstance(param, click.Option) and param.envvar:
            names = [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)
            assert all(name in text for name in names), f"{command} {param.opts[0]}: {names}"
    assert "[env var: GITOPS_" in " ".join(text.split())


def test_wait_help_names_the_revision_option(gitops: CliRunner) -> None:
    out = " ".join(gitops("wait", "--help").out.split())
    assert out.count("--revision") >= 2 and "REVISION:" not in out


def test_promote_shows_its_own_merge_request_title(gitops: CliRunner) -> None:
    promote = " ".join(gitops("promote", "--help").out.split())
    deploy = " ".join(gitops("deploy", "--help").out.split())
    assert "[env var: GITOPS_MR_TITLE; default: Promote {app} to {env}: {image}]" in promote
    assert "default: Deploy {app} to {env}: {image}]" in deploy


def test_shell_completion_works_as_documented(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "gitops-ci"
    path = f"{script.parent}:/usr/bin:/bin"  # click asks bash for its version
    env = {"PATH": path, "HOME": str(tmp_path), "_GITOPS_CI_COMPLETE": "bash_source"}
    source = subprocess.run([str(script)], env=env, capture_output=True, text=True, check=True).stdout
    assert "complete -o nosort -F _gitops_ci_completion gitops-ci" in source
    env |= {"_GITOPS_CI_COMPLETE": "bash_complete", "COMP_WORDS": "gitops-ci deploy --mo", "COMP_CWORD": "2"}
    completed = subprocess.run([str(script)], env=env, capture_output=True, text=True, check=True).stdout
    assert completed.split() == ["plain,--mode"]


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


def test_group_help_imports_no_heavy_library() -> None:
    """It lists every command, so it imports every command's module: none may import its core's libraries."""
    probe = (
        "import sys\nfrom gitops_ci.cli import run\ncode = run(['--help'])\n"
        "libraries = ('git', 'gitlab', 'requests', 'kubernetes', 'ruamel.yaml')\n"
        "print(code, sorted(m for m in libraries if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "0 []"


def test_deploy_loads_sync_and_wait_only_when_asked_for() -> None:
    probe = (
        "import sys\nimport gitops_ci.cli.deploy\n"
        "names = ('gitops_ci.targets.sync', 'gitops_ci.targets.wait', 'gitops_ci.cli.sync',\n"
        "         'gitops_ci.change.follow_up', 'gitops_ci.manifest_repo.signing', 'ruamel.yaml', 'gitlab')\n"
        "print(sorted(m for m in names if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(("args", "code", "stream", "text"), [
    (["--version"], 0, "stdout", "gitops-ci, version"),
    (["deploy", "--bogus"], 2, "stderr", "No such option '--bogus'"),
])  # fmt: skip
def test_the_console_script_exits_with_runs_code_and_flushes_its_output(
    args: list[str], code: int, stream: str, text: str
) -> None:
    script = [sys.executable, "-c", "from gitops_ci.cli.app import main; main()", *args]
    done = subprocess.run(script, capture_output=True, text=True, check=False)
    assert done.returncode == code and text in getattr(done, stream)


def test_a_profiler_around_the_console_script_still_writes_its_data(tmp_path: Path) -> None:
    output = tmp_path / "profile.out"
    script = tmp_path / "gitops-ci"
    script.write_text("from gitops_ci.cli.app import main\nmain()\n")
    profiled = [sys.executable, "-m", "cProfile", "-o", str(output), str(script), "--version"]
    done = subprocess.run(profiled, capture_output=True, text=True, check=False)
    assert done.returncode == 0 and "gitops-ci, version" in done.stdout and output.stat().st_size > 0
