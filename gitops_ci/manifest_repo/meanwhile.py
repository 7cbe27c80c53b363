"""What this process does while it waits for git or for a server: the imports of the steps to come.

A deploy spends most of its wall time waiting: for the clone, for GitLab's answers. The runner says which
modules its later steps import (the YAML editor and ruamel.yaml, ~12 ms); whoever starts the first wait
(a git process, a request on the wire) imports them then, instead of the steps importing them afterwards.
Only the main thread imports, between starting the wait and collecting its result: no import runs
concurrently with another, and a module already imported costs nothing. The wait's deadline
(deadline.answer_within) is held back until the imports are done: an import cut in half would leave a package
without its submodules for the rest of the process; the deadline then fires as soon as they are.
"""

from __future__ import annotations

import importlib

from gitops_ci.deadline import deadlines_held

_later: list[str] = []


def import_later(*modules: str) -> None:
    """Import `modules` during the next wait (a step that needs one first imports it as usual)."""
    _later.extend(m for m in modules if m not in _later)


def while_waiting() -> None:
    """Called right after starting something that runs without this process (git, a sent request)."""
    with deadlines_held():
        while _later:
            importlib.import_module(_later.pop(0))
