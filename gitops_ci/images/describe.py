"""Turn results into what stdout shows: human text, unified diffs, or JSON for machines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: reporting a result needs no YAML parser
    from gitops_ci.images.files import OverlayEdit
    from gitops_ci.images.kustomize import EntryChange


def image_of(name: str, fields: Mapping[str, str] | None) -> str:
    """The image an entry makes kustomize write: newName (or name), then :newTag and @digest."""
    if fields is None:
        return "(none)"
    ref = fields.get("newName", name)
    if "newTag" in fields:
        ref += f":{fields['newTag']}"
    if "digest" in fields:
        ref += f"@{fields['digest']}"
    return ref


def describe_change(change: EntryChange) -> str:
    before = "(new entry)" if change.before is None else image_of(change.name, change.before)
    return f"{change.name}: {before} → {image_of(change.name, change.after)}"


def unified_diff(edit: OverlayEdit, name: str | None = None) -> str:
    """The edit as a unified diff of `name` (default: the file's path as edited)."""
    import difflib

    name = name or str(edit.file)
    lines = difflib.unified_diff(
        edit.before.splitlines(keepends=True), edit.after.splitlines(keepends=True), f"a/{name}", f"b/{name}"
    )
    text = "".join(
        line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines
    )
    return text


def edit_json(edit: OverlayEdit, *, with_diff: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "overlay": str(edit.overlay),
        "file": str(edit.file),
        "changed": edit.changed,
        "entries": [
            {"name": c.name, "before": c.before, "after": c.after, "image": image_of(c.name, c.after)}
            for c in edit.changes
        ],
    }
    if with_diff:
        data["diff"] = unified_diff(edit)
    return data


def render_edits_text(edits: Sequence[OverlayEdit], *, dry_run: bool) -> str:
    out: list[str] = []
    for edit in edits:
        if not edit.changed:
            out.append(f"{edit.file}: already up to date\n")
        elif dry_run:
            out.append(unified_diff(edit))
        else:
            out.extend(f"{edit.file}: {describe_change(c)}\n" for c in edit.changes)
    return "".join(out)


def to_json(data: Any) -> str:
    import json

    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
