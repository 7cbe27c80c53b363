"""`gitops-ci set-image`: edit images in local overlays, all or nothing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gitops_ci.images.files import OverlayEdit, plan_edits, write_edits
from gitops_ci.images.reference import parse_image_arguments


@dataclass(frozen=True, kw_only=True)
class SetImageSettings:
    overlays: tuple[Path, ...] = (Path(),)
    images: tuple[str, ...]
    dry_run: bool = False
    strict: bool = False


@dataclass(frozen=True)
class SetImageReport:
    edits: tuple[OverlayEdit, ...]
    dry_run: bool

    @property
    def changed(self) -> bool:
        return any(edit.changed for edit in self.edits)


def set_image(settings: SetImageSettings) -> SetImageReport:
    updates = parse_image_arguments(settings.images)
    edits = plan_edits(settings.overlays, updates, strict=settings.strict)
    if not settings.dry_run:
        write_edits(edits)
    return SetImageReport(tuple(edits), settings.dry_run)
