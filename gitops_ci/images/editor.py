"""The file formats gitops-ci edits images in, behind one small protocol chosen by file name.

Today that is kustomize's `images:`; a Helm values file would be a second FileEditor and one more entry in
`EDITORS`, and every command that changes images would handle it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from gitops_ci.errors import KustomizationError
from gitops_ci.images.kustomize import EntryChange, read_images, set_images
from gitops_ci.images.reference import ImageUpdate

_BOM = "\ufeff"


class FileEditor(Protocol):
    def edit(
        self, text: str, updates: Sequence[ImageUpdate], *, strict: bool, source: str
    ) -> tuple[str, tuple[EntryChange, ...]]:
        """The text with `updates` applied (only the lines that must change) and what changed."""
        ...

    def images(self, text: str, source: str) -> list[dict[str, str]]:
        """The file's image entries (name, newName, newTag, digest as present)."""
        ...


class KustomizeEditor:
    """kustomization.yaml `images:`; the BOM is set aside (YAML parsers disagree on it) and put back."""

    def edit(
        self, text: str, updates: Sequence[ImageUpdate], *, strict: bool, source: str
    ) -> tuple[str, tuple[EntryChange, ...]]:
        bom = text.startswith(_BOM)
        result = set_images(text.removeprefix(_BOM), updates, strict=strict, source=source)
        return (_BOM if bom else "") + result.text, result.changes

    def images(self, text: str, source: str) -> list[dict[str, str]]:
        return read_images(text.removeprefix(_BOM), source)


KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
EDITORS: dict[str, FileEditor] = {name: KustomizeEditor() for name in KUSTOMIZATION_NAMES}


def editor_for(path: str) -> FileEditor:
    name = path.rsplit("/", 1)[-1]
    try:
        return EDITORS[name]
    except KeyError:
        raise KustomizationError(f"{path}: gitops-ci edits images in {', '.join(EDITORS)} only") from None


def kustomization_name(present: Collection[str], directory: str) -> str:
    """The one kustomization file name among `present` (the names in `directory`), as kustomize requires."""
    names = [name for name in KUSTOMIZATION_NAMES if name in present]
    if not names:
        raise KustomizationError(
            f"{directory}: no kustomization file ({', '.join(KUSTOMIZATION_NAMES)}); is this an overlay?"
        )
    if len(names) > 1:
        raise KustomizationError(
            f"{directory}: both {' and '.join(names)} exist; kustomize refuses that too, remove one"
        )
    return names[0]
