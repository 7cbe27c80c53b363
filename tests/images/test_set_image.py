"""Golden files: tests/data/set_image/<case>/{before.yaml,after.yaml,args[,filename]}.

Each case runs `gitops-ci set-image --overlay DIR ARGS...` on before.yaml, compares the bytes with
after.yaml, then runs the same command again to prove idempotence.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import CliRunner

DATA = Path(__file__).parents[1] / "data" / "set_image"
CASES = sorted(p.name for p in DATA.iterdir() if p.is_dir())


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str, tmp_path: Path, gitops: CliRunner) -> None:
    src = DATA / case
    filename = (src / "filename").read_text().strip() if (src / "filename").exists() else "kustomization.yaml"
    target = tmp_path / filename
    shutil.copyfile(src / "before.yaml", target)
    args = (src / "args").read_text().split()

    first = gitops("set-image", "--overlay", tmp_path, *args)
    assert first.code == 0, first.err
    assert target.read_bytes() == (src / "after.yaml").read_bytes()
    assert "already up to date" not in first.out

    second = gitops("set-image", "--overlay", tmp_path, *args)
    assert second.code == 0, second.err
    assert target.read_bytes() == (src / "after.yaml").read_bytes()
    assert second.out == f"{target}: already up to date\n"


def test_every_case_changes_something() -> None:
    for case in CASES:
        assert (DATA / case / "before.yaml").read_bytes() != (DATA / case / "after.yaml").read_bytes(), case
