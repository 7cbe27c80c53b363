"""The imports of later steps happen while git runs or a request is out, not after."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitops_ci.manifest_repo import meanwhile
from gitops_ci.manifest_repo.git_process import run_git
from gitops_ci.manifest_repo.gitlab_connection import GitLabConnection
from gitops_ci.manifest_repo.gitlab_rest import GitLabRest
from servers.hostile import HttpPeer
from servers.tls import TlsMaterial

pytest_plugins = ["servers.git_fixtures"]
NAP = ["-c", "alias.nap=!sleep 0.6", "nap"]  # a git command that takes 0.6 s


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory on sys.path for modules made by the test; they are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]
    meanwhile._later.clear()


def test_a_module_is_imported_while_git_runs(modules: Path) -> None:
    (modules / "later_probe.py").write_text("import time\nimported_at = time.monotonic()\n")
    meanwhile.import_later("later_probe")
    start = time.monotonic()
    run_git(NAP, env=os.environ, timeout=30)
    ended = time.monotonic()
    imported_at = sys.modules["later_probe"].imported_at
    assert ended - start >= 0.6
    assert imported_at - start < 0.3, "imported after git, not while it ran"
    assert meanwhile._later == []


def test_a_failing_import_kills_git_and_is_raised(modules: Path) -> None:
    (modules / "broken_probe.py").write_text("raise RuntimeError('broken on import')\n")
    meanwhile.import_later("broken_probe")
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="broken on import"):
        run_git(["-c", "alias.nap=!sleep 30", "nap"], env=os.environ, timeout=60)
    assert time.monotonic() - start < 10, "git was waited for instead of killed"


def test_each_module_is_imported_once(modules: Path) -> None:
    imports = modules / "imports.log"
    (modules / "counted_probe.py").write_text(f"open({str(imports)!r}, 'a').write('imported\\n')\n")
    meanwhile.import_later("counted_probe", "counted_probe")
    meanwhile.import_later("counted_probe")
    run_git(["--version"], env=os.environ, timeout=30)
    run_git(["--version"], env=os.environ, timeout=30)
    assert imports.read_text() == "imported\n"


def test_a_module_is_imported_while_a_request_is_out(modules: Path, tls_material: TlsMaterial) -> None:
    (modules / "request_probe.py").write_text("loaded = True\n")
    meanwhile.import_later("request_probe")
    with HttpPeer(tls_material) as peer:
        connection = GitLabConnection(peer.url, "group/manifests", "glpat-probe", "GITOPS_TOKEN",
                                      str(tls_material.ca_file))  # fmt: skip
        answer = GitLabRest(connection).get("/repository/files/x", {"ref": "main"}, what="reading x")
    assert answer.status == 200 and len(peer.seen) == 1
    assert sys.modules["request_probe"].loaded and meanwhile._later == []


def test_a_deadline_during_the_imports_waits_for_them(modules: Path) -> None:
    """An import cut in half by the exchange's deadline would leave its package broken for the rest of the
    process: the deadline fires once the imports are done."""
    from gitops_ci.deadline import AnswerTooSlow, answer_within

    (modules / "slow_probe.py").write_text("import time\ntime.sleep(0.3)\ncomplete = True\n")
    meanwhile.import_later("slow_probe")
    with pytest.raises(AnswerTooSlow), answer_within(0.05):
        meanwhile.while_waiting()
    assert sys.modules["slow_probe"].complete
