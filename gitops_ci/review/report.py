"""What `gitops-ci review` prints: the note itself on a dry run, else one line per action; or JSON."""

from __future__ import annotations

from typing import Any

from gitops_ci.review.run import ReviewResult
from gitops_ci.validate.report import finding_json


def result_text(result: ReviewResult) -> str:
    if result.action == "printed":
        return result.note
    count = len(result.reviews)
    what = f"{count} overlay{'' if count == 1 else 's'} changed"
    messages = {
        "created": f"review note created: {what}",
        "updated": f"review note updated: {what}",
        "unchanged": f"review note already up to date: {what}",
        "skipped": "no overlay's rendered manifests change; no note posted",
    }
    return messages[result.action] + "\n"


def result_json(result: ReviewResult) -> dict[str, Any]:
    data: dict[str, Any] = {
        "action": result.action,
        "note_id": result.note_id,
        "base": result.base,
        "head": result.head,
        "changed_files": result.changed_files,
        "unchanged_overlays": result.unchanged,
        "timings": result.timings,
        "overlays": [
            {
                "overlay": r.overlay,
                "app": r.app,
                "env": r.env,
                "status": _status(r.before.present, r.after.present, r.after.ok),
                "images": [
                    {"workload": c.workload, "container": c.container, "before": c.before, "after": c.after}
                    for c in r.images
                ],
                "diff": {
                    "added": r.diff.added,
                    "removed": r.diff.removed,
                    "objects_changed": r.diff.objects_changed,
                    "objects_added": r.diff.objects_added,
                    "objects_removed": r.diff.objects_removed,
                },
                "errors": len(r.errors),
                "warnings": len(r.warnings),
                "findings": [finding_json(f) for f in r.findings],
            }
            for r in result.reviews
        ],
    }
    if result.action == "printed":
        data["note"] = result.note
    return data


def _status(before: bool, after: bool, builds: bool) -> str:
    if not after:
        return "removed"
    if not builds:
        return "does not build"
    return "changed" if before else "added"
