"""Logging: nothing is installed on import; only the CLI configures it, and secrets are masked."""

from __future__ import annotations

import subprocess
import sys


def test_importing_gitops_ci_installs_no_logging_handler() -> None:
    probe = (
        "import logging, importlib, pkgutil, gitops_ci\n"
        "for m in pkgutil.walk_packages(gitops_ci.__path__, 'gitops_ci.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "print(len(logging.getLogger('gitops_ci').handlers), len(logging.getLogger().handlers))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0", "0"]


def test_the_cli_logs_to_stderr_with_secrets_masked() -> None:
    probe = (
        "from gitops_ci import logs\n"
        "logs.configure()\n"
        "logs.register_secret('glpat-abcdefgh')\n"
        "logs.get_logger('gitops_ci.x').info('token glpat-abcdefgh used')\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout == "" and done.stderr == "token [MASKED] used\n"
