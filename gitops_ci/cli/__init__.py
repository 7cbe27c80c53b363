"""The `gitops-ci` command line: parse, build settings, call one core function, print, map errors."""

from __future__ import annotations

from gitops_ci.cli.app import main, run

__all__ = ["main", "run"]
