"""`gitops-ci set-image` through the real entry point: exit codes, output, all-or-nothing writes."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CliRunner

BASE = 'images:\n  - name: app  # keep me\n    newTag: "1.0"\n'


@pytest.fixture
def overlays(tmp_path: Path) -> list[Path]:
    dirs = []
    for env in ("dev", "prod"):
        d = tmp_path / env
        d.mkdir()
        (d / "kustomization.yaml").write_text(BASE)
        dirs.append(d)
    return dirs


def test_sets_every_image_in_every_overlay(overlays: list[Path], gitops: CliRunner) -> None:
    result = gitops("set-image", "--overlay", overlays[0], "--overlay", overlays[1], "app:2.0", "side:1")
    assert result.code == 0, result.err
    for d in overlays:
        text = (d / "kustomization.yaml").read_text()
        assert '    newTag: "2.0"\n' in text
        assert '  - name: side\n    newTag: "1"\n' in text
        assert "# keep me" in text
    assert f"{overlays[0]}/kustomization.yaml: app: app:1.0 → app:2.0" in result.out
    assert f"{overlays[1]}/kustomization.yaml: side: (new entry) → side:1" in result.out


def test_default_overlay_is_current_directory(
    overlays: list[Path], gitops: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(overlays[0])
    assert gitops("set-image", "app:3").code == 0
    assert 'newTag: "3"' in (overlays[0] / "kustomization.yaml").read_text()


def test_dry_run_prints_diff_and_writes_nothing(overlays: list[Path], gitops: CliRunner) -> None:
    result = gitops("set-image", "--dry-run", "--overlay", overlays[0], "app:2.0")
    assert result.code == 0
    assert (overlays[0] / "kustomization.yaml").read_text() == BASE
    assert '-    newTag: "1.0"\n+    newTag: "2.0"\n' in result.out
    assert result.out.startswith(f"--- a/{overlays[0]}/kustomization.yaml\n")


def test_json_output(overlays: list[Path], gitops: CliRunner) -> None:
    result = gitops("set-image", "--format", "json", "--overlay", overlays[0], "app=reg.io/app:2.0")
    data = json.loads(result.out)
    assert data["changed"] is True
    assert data["overlays"] == [
        {
            "overlay": str(overlays[0]),
            "file": str(overlays[0] / "kustomization.yaml"),
            "changed": True,
            "entries": [
                {
                    "name": "app",
                    "before": {"newTag": "1.0"},
                    "after": {"newName": "reg.io/app", "newTag": "2.0"},
                    "image": "reg.io/app:2.0",
                }
            ],
        }
    ]


def test_rerun_says_already_up_to_date(overlays: list[Path], gitops: CliRunner) -> None:
    assert gitops("set-image", "--overlay", overlays[0], "app:2.0").code == 0
    mtime = (overlays[0] / "kustomization.yaml").stat().st_mtime_ns
    again = gitops("set-image", "--overlay", overlays[0], "app:2.0")
    assert again.code == 0
    assert again.out == f"{overlays[0]}/kustomization.yaml: already up to date\n"
    assert (overlays[0] / "kustomization.yaml").stat().st_mtime_ns == mtime


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["app:bad tag"], "whitespace"),
        (["app=Bad/Name:1"], "not a valid image repository"),
        (["app@sha256:1234"], "is not valid"),
        (["--strict", "other:1"], "no images entry is named 'other'"),
        (["app:1", "app:2"], "conflict on newTag"),
        (["--format", "xml", "app:1"], "'xml' is not one of"),
        (["--nope", "app:1"], "No such option '--nope'"),
        ([], "Missing argument"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_nothing(
    overlays: list[Path], gitops: CliRunner, args: list[str], fragment: str
) -> None:
    result = gitops("set-image", "--overlay", overlays[0], "--overlay", overlays[1], *args)
    assert result.code == 2
    assert fragment in result.err
    assert result.err.count("\n") == 1 and result.err.startswith("gitops-ci: error: ")
    assert "Traceback" not in result.err
    assert result.out == ""
    for d in overlays:
        assert (d / "kustomization.yaml").read_text() == BASE


def test_one_broken_overlay_means_no_overlay_is_written(overlays: list[Path], gitops: CliRunner) -> None:
    (overlays[1] / "kustomization.yaml").write_text("images: [\n")
    result = gitops("set-image", "--overlay", overlays[0], "--overlay", overlays[1], "app:2.0")
    assert result.code == 2
    assert f"{overlays[1]}/kustomization.yaml:2:1: " in result.err
    assert (overlays[0] / "kustomization.yaml").read_text() == BASE


@pytest.mark.parametrize(
    ("files", "fragment"),
    [
        ([], "no kustomization file (kustomization.yaml, kustomization.yml, Kustomization)"),
        (["kustomization.yaml", "kustomization.yml"], "both kustomization.yaml and kustomization.yml exist"),
    ],
)
def test_kustomization_file_must_be_unique(
    tmp_path: Path, gitops: CliRunner, files: list[str], fragment: str
) -> None:
    for name in files:
        (tmp_path / name).write_text(BASE)
    result = gitops("set-image", "--overlay", tmp_path, "app:2")
    assert result.code == 2
    assert fragment in result.err


def test_missing_overlay_directory(tmp_path: Path, gitops: CliRunner) -> None:
    result = gitops("set-image", "--overlay", tmp_path / "nope", "app:2")
    assert result.code == 2
    assert "no such overlay directory" in result.err


def test_non_utf8_file_is_refused(tmp_path: Path, gitops: CliRunner) -> None:
    (tmp_path / "kustomization.yaml").write_bytes(b"images:\n- name: \xff\n")
    result = gitops("set-image", "--overlay", tmp_path, "app:2")
    assert result.code == 2
    assert "not UTF-8" in result.err


def test_write_is_atomic_and_keeps_mode(overlays: list[Path], gitops: CliRunner) -> None:
    target = overlays[0] / "kustomization.yaml"
    target.chmod(0o640)
    inode = target.stat().st_ino
    assert gitops("set-image", "--overlay", overlays[0], "app:2.0").code == 0
    assert target.stat().st_mode & 0o777 == 0o640
    assert target.stat().st_ino != inode  # replaced by rename, never rewritten in place
    assert sorted(p.name for p in overlays[0].iterdir()) == ["kustomization.yaml"]


def test_write_failure_is_operational_and_leaves_files_intact(
    overlays: list[Path], gitops: CliRunner
) -> None:
    # A file-size limit makes the staged write fail even for root (EFBIG instead of a signal).
    previous_handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16, hard))
    try:
        result = gitops("set-image", "--overlay", overlays[0], "--overlay", overlays[1], "app:2.0")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous_handler)
    assert result.code == 1
    assert "cannot write" in result.err
    for d in overlays:
        assert (d / "kustomization.yaml").read_text() == BASE
        assert sorted(p.name for p in d.iterdir()) == ["kustomization.yaml"]


def test_debug_shows_traceback(overlays: list[Path], gitops: CliRunner) -> None:
    result = gitops("set-image", "--debug", "--overlay", overlays[0], "app:$")
    assert result.code == 2
    assert "Traceback" in result.err


def test_console_script_and_module_entry_points(overlays: list[Path]) -> None:
    for argv in ([sys.executable, "-m", "gitops_ci"], [str(Path(sys.executable).parent / "gitops-ci")]):
        proc = subprocess.run(
            [*argv, "set-image", "--overlay", str(overlays[0]), "app:9"], capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
    assert 'newTag: "9"' in (overlays[0] / "kustomization.yaml").read_text()
    version = subprocess.run([sys.executable, "-m", "gitops_ci", "--version"], capture_output=True, text=True)
    assert version.stdout.startswith("gitops-ci, version ")
