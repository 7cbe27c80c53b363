"""Text files on disk as gitops-ci reads and writes them: a size cap, UTF-8, and atomic replacement of a
whole set (stage every file, then rename). Light: no YAML here, so the git adapter imports it cheaply."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from gitops_ci.errors import KustomizationError, OperationalError

MAX_FILE_BYTES = 1024 * 1024  # real kustomizations are a few KB; ruamel parses ~0.3 MB/s


def read_text(path: Path) -> str:
    """The file's text exactly as stored (BOM and line endings included)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise OperationalError(f"{path}: cannot read: {err.strerror}") from None
    if len(data) > MAX_FILE_BYTES:
        raise KustomizationError(
            f"{path}: larger than {MAX_FILE_BYTES // 1024} KiB; gitops-ci edits kustomizations up to "
            "that size"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise KustomizationError(f"{path}: not UTF-8 (byte {err.start}); kustomize needs UTF-8") from None


def write_files(files: Mapping[Path, str]) -> None:
    """Write every file atomically (temp file + rename, mode kept); stage all before renaming any."""
    staged: list[tuple[Path, Path]] = []
    try:
        for path, text in files.items():
            target = path.resolve()
            staged.append((_stage(target, text), target))
        for temp, target in staged:
            temp.replace(target)
    except OSError as err:
        for temp, _ in staged:
            with contextlib.suppress(OSError):
                temp.unlink()
        raise OperationalError(f"{err.filename or 'kustomization'}: cannot write: {err.strerror}") from None


def _stage(target: Path, text: str) -> Path:
    mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else 0o644
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        temp.chmod(mode)
    except OSError:
        temp.unlink(missing_ok=True)
        raise
    return temp
