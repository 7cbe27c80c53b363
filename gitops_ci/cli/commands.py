"""Imports every command module of this package so that each registers itself on the group.

Command modules import only click and light modules at import time; heavy libraries (gitlab, kubernetes)
are imported inside the functions that need them, so `gitops-ci set-image` starts fast.
"""

from __future__ import annotations

import importlib
import pkgutil

import gitops_ci.cli as package

_NOT_COMMANDS = {"app", "commands", "options", "report"}

for module in pkgutil.iter_modules(package.__path__):
    if module.name not in _NOT_COMMANDS and not module.name.startswith("_"):
        importlib.import_module(f"{package.__name__}.{module.name}")
