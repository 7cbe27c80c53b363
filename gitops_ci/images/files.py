"""Kustomization files on disk: find, read, edit in memory, then write all of them or none."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gitops_ci.errors import KustomizationError
from gitops_ci.images.editor import KUSTOMIZATION_NAMES, editor_for, kustomization_name
from gitops_ci.images.kustomize import EntryChange
from gitops_ci.images.reference import ImageUpdate
from gitops_ci.images.text_io import read_text, write_files
from gitops_ci.manifest_repo.paths import relative_inside, work_tree_of, writable_file


@dataclass(frozen=True)
class OverlayEdit:
    """One overlay's kustomization before and after the edit (nothing written yet)."""

    overlay: Path
    file: Path
    before: str
    after: str
    changes: tuple[EntryChange, ...]

    @property
    def changed(self) -> bool:
        return self.before != self.after


def find_kustomization(root: Path, overlay: str) -> Path:
    """The kustomization file of `overlay` (relative to the repo `root`); neither it nor any directory on
    the way may be a symlink, so what is read and written is the file the repo holds there."""
    directory = writable_file(root, overlay)
    if not directory.is_dir():
        raise KustomizationError(
            f"{directory}: no such overlay directory; check --overlay or the path template"
        )
    present = [
        name
        for name in KUSTOMIZATION_NAMES
        if (directory / name).is_file() or (directory / name).is_symlink()
    ]
    return writable_file(root, f"{overlay}/{kustomization_name(present, str(directory))}")


def plan_edits(
    overlays: Sequence[Path],
    updates: Sequence[ImageUpdate],
    *,
    strict: bool = False,
    root: Path | None = None,
) -> list[OverlayEdit]:
    """Edit every overlay in memory; any error aborts before anything is written. Each overlay must lie in
    `root` (default: the git work tree it is in)."""
    edits: list[OverlayEdit] = []
    seen: set[Path] = set()
    for overlay in overlays:
        base = root if root is not None else work_tree_of(overlay)
        found = find_kustomization(base, relative_inside(base, overlay))
        path = found if root is not None else overlay / found.name
        real = path.resolve()
        if real in seen:
            continue
        seen.add(real)
        before = read_text(path)
        source = _display(path, root)
        after, changes = editor_for(path.name).edit(before, updates, strict=strict, source=source)
        edits.append(OverlayEdit(overlay, path, before, after, changes))
    return edits


def write_edits(edits: Sequence[OverlayEdit]) -> None:
    """Write every changed file (see write_files)."""
    write_files({edit.file: edit.after for edit in edits if edit.changed})


def _display(path: Path, root: Path | None) -> str:
    if root is not None:
        with contextlib.suppress(ValueError):
            return str(path.relative_to(root))
    return str(path)
