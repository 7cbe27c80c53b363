"""The review note in GitLab Markdown: a table of the changed overlays, then one section each with the image
changes, the validation result and the rendered diff collapsed in `<details>`.

The note starts with a hidden marker, so a re-run finds it and edits it instead of adding another. GitLab
refuses notes over 1,000,000 characters: once the note is near that, further diffs are left out (and say so).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

from gitops_ci.review.diff import ImageChange, Render, RenderedDiff
from gitops_ci.review.markdown import block_lines, check_note, code, fence_for
from gitops_ci.validate.findings import Finding, Severity

MARKER = "<!-- gitops-ci:review -->"
NOTE_BUDGET = 900_000
NOTE_LIMIT = 1_000_000  # GitLab refuses a longer note
MAX_FINDINGS_SHOWN = 20
MAX_IMAGES_SHOWN = 50
LEFT_OUT = "… left out: this note reached GitLab's size limit; `gitops-ci review --dry-run` shows everything."


@dataclass(frozen=True)
class OverlayReview:
    overlay: str
    app: str
    env: str
    before: Render
    after: Render
    diff: RenderedDiff
    images: list[ImageChange]
    findings: list[Finding] = field(default_factory=list)  # of the merge request's head

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]


def app_and_env(overlay: str) -> tuple[str, str]:
    """`kustomize/<app>/overlays/<env>` → (app, env); otherwise the last two path components."""
    parts = overlay.split("/")
    if len(parts) >= 3 and parts[-2] == "overlays":
        return parts[-3], parts[-1]
    return (parts[-2], parts[-1]) if len(parts) >= 2 else (overlay, "")


def is_review_note(body: str) -> bool:
    return body.lstrip().startswith(MARKER)


def render_note(
    reviews: Sequence[OverlayReview],
    unchanged: Sequence[str],
    *,
    base: str,
    head: str,
    changed_files: int,
    layout: Sequence[str] = (),
) -> str:
    out = [MARKER, "### gitops-ci review: rendered manifests", ""]
    span = f"`{base[:8]}` → `{head[:8]}`, {changed_files} file{'' if changed_files == 1 else 's'} changed"
    if layout:
        out += [_layout_warning(layout), ""]
    if not reviews:
        out.append(f"This merge request changes no overlay's rendered manifests ({span}).")
    else:
        count = len(reviews)
        out += [f"This merge request changes **{count}** overlay{'' if count == 1 else 's'} ({span}).", ""]
        out += ["| App | Env | Images | Rendered diff | Validation |", "| --- | --- | --- | --- | --- |"]
        out += [_row(r) for r in reviews]
        budget = NOTE_BUDGET - sum(len(line) + 1 for line in out)
        for review in reviews:
            section = _section(review, with_diff=True)
            if len(section) > budget:
                section = _section(review, with_diff=False)
            if len(section) > budget:
                section = f"#### {code(review.app)} / {code(review.env)}: {LEFT_OUT}"
            budget -= len(section)
            out += ["", section]
    if unchanged:
        shown = ", ".join(code(o) for o in unchanged[:20]) + (" …" if len(unchanged) > 20 else "")
        out += ["", f"Rendered again without change: {shown} ({len(unchanged)})."]
    out += [
        "",
        f"<sub>gitops-ci renders each overlay at the merge base and at `{head[:8]}`; "
        "re-runs edit this note.</sub>",
    ]
    return check_note(_within_limit("\n".join(out) + "\n"))


def _layout_warning(paths: Sequence[str]) -> str:
    shown = ", ".join(code(p) for p in paths[:20]) + (" …" if len(paths) > 20 else "")
    return (
        f"⚠️ **It changes what the clusters' roots apply with the GitOps engine's own rights:** {shown}. The "
        "validate job checks their shape; an environment added to `gitops-ci.yaml` is a namespace its "
        "cluster's root creates and hands to that environment's apps: make sure no one else uses it."
    )


def _within_limit(note: str) -> str:
    """The note cut at a line before GitLab's limit (a table of thousands of overlays can pass it alone)."""
    if len(note) <= NOTE_LIMIT:
        return note
    kept = note[: NOTE_LIMIT - len(LEFT_OUT) - 8].rpartition("\n")[0]
    return f"{kept}\n\n{LEFT_OUT}\n"


def _row(r: OverlayReview) -> str:
    images = "—"
    if r.images:
        first = r.images[0]
        images = f"{code(first.container, cell=True)} {_short(first.before)} → {_short(first.after)}"
        images += f" (+{len(r.images) - 1} more)" if len(r.images) > 1 else ""
    app, env = code(r.app, cell=True), code(r.env, cell=True)
    return f"| {app} | {env} | {images} | {_diff_summary(r)} | {_verdict(r, cell=True)} |"


def _section(r: OverlayReview, *, with_diff: bool) -> str:
    lines = [f"#### {code(r.app)} / {code(r.env)}", "", f"Overlay {code(r.overlay)}", ""]
    if r.images:
        lines.append("**Images**")
        lines += [
            f"- {code(c.workload)} {code(c.container)}: {_ref(c.before)} → {_ref(c.after)}"
            for c in r.images[:MAX_IMAGES_SHOWN]
        ]
        if len(r.images) > MAX_IMAGES_SHOWN:
            lines.append(f"- … and {len(r.images) - MAX_IMAGES_SHOWN} more")
        lines.append("")
    lines.append(f"**Validation**: {_verdict(r)}")
    lines += [f"- {_finding(f)}" for f in (r.errors + r.warnings)[:MAX_FINDINGS_SHOWN]]
    hidden = len(r.errors) + len(r.warnings) - MAX_FINDINGS_SHOWN
    if hidden > 0:
        lines.append(f"- … and {hidden} more (`gitops-ci validate` lists them all)")
    lines.append("")
    if not r.after.present or r.after.ok:
        lines += _diff_block(r, with_diff)
    else:
        lines.append("Rendered diff: not available, the merge request's version does not build.")
    return "\n".join(lines)


def _diff_block(r: OverlayReview, with_diff: bool) -> list[str]:
    summary = f"Rendered diff: {_diff_summary(r)}"
    if not with_diff:
        return [
            f"{summary}: left out, this note reached GitLab's size limit; run `gitops-ci review --dry-run`."
        ]
    body = block_lines(r.diff.text.rstrip("\n"))
    fence = fence_for(body)
    summary_tag = f"<details><summary>{html.escape(summary, quote=False)}</summary>"
    lines = [summary_tag, "", f"{fence}diff", body, fence]
    if r.diff.hidden:
        lines += [
            "",
            f"… {r.diff.hidden} more diff lines not shown ({r.diff.lines} in all); "
            "`gitops-ci review --dry-run --max-diff-lines N` shows more.",
        ]
    return [*lines, "", "</details>"]


def _diff_summary(r: OverlayReview) -> str:
    if r.after.present and not r.after.ok:
        return "—"
    if not r.after.present:
        return f"overlay removed (−{r.diff.removed})"
    if not r.before.present:
        return f"{r.diff.summary()} (new overlay)"
    if not r.before.ok:
        return f"{r.diff.summary()} (the target branch's version does not build)"
    return r.diff.summary()


def _verdict(r: OverlayReview, *, cell: bool = False) -> str:
    if not r.after.present:
        return "removed"
    if not r.after.ok:
        return f"❌ does not build: {code(r.after.error, cell=cell)}"
    if r.errors:
        return f"❌ {len(r.errors)} error{'' if len(r.errors) == 1 else 's'}"
    if r.warnings:
        return f"⚠️ {len(r.warnings)} warning{'' if len(r.warnings) == 1 else 's'}"
    count = len(r.after.objects)
    return f"✅ valid ({count} object{'' if count == 1 else 's'})"


def _finding(f: Finding) -> str:
    where = " ".join(code(part) for part in (f.location, f.object, f.field) if part)
    return f"{f.severity.value} {code(f.rule)} {where}: {code(f.message)}"


def _ref(image: str | None) -> str:
    return code(image) if image else "(none)"


def _short(image: str | None) -> str:
    """`registry/team/app:1.2` → `:1.2` in the table; the section shows the full reference."""
    if image is None:
        return "(none)"
    tail = image.rpartition("/")[2]
    version = tail[tail.find("@") :] if "@" in tail else tail[tail.find(":") :] if ":" in tail else tail
    return code(version, cell=True, limit=40)
