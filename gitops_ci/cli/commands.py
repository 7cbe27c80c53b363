"""Imports every command module so that each registers itself on the group."""

from __future__ import annotations

from gitops_ci.cli import deploy, set_image  # noqa: F401
