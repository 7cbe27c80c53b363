"""Logging: nothing is installed on import; only the CLI configures it, and secrets are masked."""

from __future__ import annotations

import subprocess
import sys


def run_probe(code: str) -> subprocess.CompletedProcess[str]:
    """`code` in a fresh interpreter: logging is configured once per process."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)


def test_importing_gitops_ci_installs_no_logging_handler() -> None:
    probe = (
        "import logging, importlib, pkgutil, gitops_ci\n"
        "for m in pkgutil.walk_packages(gitops_ci.__path__, 'gitops_ci.'):\n"
        "    if not m.name.endswith('__main__'): importlib.import_module(m.name)\n"
        "print(len(logging.getLogger('gitops_ci').handlers), len(logging.getLogger().handlers))\n"
    )
    out = run_probe(probe).stdout
    assert out.split() == ["0", "0"]


def test_the_cli_logs_to_stderr_with_secrets_masked() -> None:
    probe = (
        "from gitops_ci import logs\n"
        "logs.configure()\n"
        "logs.register_secret('glpat-abcdefgh')\n"
        "logs.get_logger('gitops_ci.x').info('token glpat-abcdefgh used')\n"
    )
    done = run_probe(probe)
    assert done.stdout == "" and done.stderr == "token [MASKED] used\n"


def test_a_log_line_shows_control_characters_as_escapes_but_keeps_its_line_breaks() -> None:
    """A server's or a repo's text in our lines: no escape sequence, carriage return or bidi override can
    colour, overwrite or reorder what the job log shows; our own multi-line messages stay multi-line."""
    probe = (
        "from gitops_ci import logs\n"
        "logs.configure()\n"
        "logs.get_logger('gitops_ci.x').info('said: %s', 'a\\x1b[31mb\\rc\\x07\\u202ed\\n\\te')\n"
    )
    done = run_probe(probe)
    assert done.stderr == "said: a\\x1b[31mb\\x0dc\\x07\\u202ed\n\te\n"


def test_one_line_escapes_line_breaks_too_and_cuts() -> None:
    from gitops_ci.logs import one_line, shown

    assert one_line("a\nb\r\x85\u2028") == "a\\x0ab\\x0d\\x85\\u2028"
    assert one_line("x" * 400) == "x" * 300 + "…"
    assert shown("tab\tand\nline") == "tab\tand\nline"


def test_a_secret_is_masked_as_a_repr_or_an_escape_shows_it_too() -> None:
    """A library's message may quote a header value with repr(): a token with a stray line break in it must
    not come out that way."""
    probe = (
        "from gitops_ci import logs\n"
        "logs.register_secret('glpat-abcd\\n')\n"
        "t = 'glpat-abcd\\n'\n"
        "print(logs.shown(repr(t.encode()) + ' ' + repr(t) + ' ' + logs.one_line(t)))\n"
    )
    done = run_probe(probe)
    assert "glpat" not in done.stdout and done.stdout.count("[MASKED]") == 3, done.stdout
