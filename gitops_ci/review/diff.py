"""What an MR does to one overlay's rendered manifests: a unified diff, and the images it changes.

Renders are diffed as kustomize prints them (its output is sorted and stable), except Secrets: their values
are replaced by a short hash before diffing, so a note never publishes them but still shows that they
changed. The diff is cut at a number of lines and each line at a number of characters; the cut says how
much is not shown.
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from gitops_ci.logs import one_line
from gitops_ci.validate import yaml_files as validate_yaml
from gitops_ci.validate.objects import Document, object_id

MAX_LINE_CHARS = 500
MAX_DIFF_INPUT = 40_000  # lines between the common head and tail, both sides
_HUNK = re.compile(r"^@@ -(\d+)(,\d+)? \+(\d+)(,\d+)? @@")
_DOC_SPLIT = re.compile(r"^---[ \t]*\n", re.MULTILINE)
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


@dataclass(frozen=True)
class Render:
    """One side of an overlay: absent (the MR adds or removes it), failed, or its text and objects."""

    present: bool
    ok: bool = True
    text: str = ""
    error: str = ""
    objects: tuple[Document, ...] = ()


@dataclass(frozen=True)
class ImageChange:
    workload: str  # "Deployment/shop"
    container: str
    before: str | None
    after: str | None


@dataclass(frozen=True)
class RenderedDiff:
    text: str  # the unified diff as shown (possibly cut)
    added: int
    removed: int
    lines: int  # diff lines in all
    hidden: int  # diff lines not shown
    objects_changed: int
    objects_added: int
    objects_removed: int

    @property
    def empty(self) -> bool:
        return self.lines == 0

    def summary(self) -> str:
        parts = [
            f"{n} object{'' if n == 1 else 's'} {what}"
            for n, what in (
                (self.objects_changed, "changed"),
                (self.objects_added, "added"),
                (self.objects_removed, "removed"),
            )
            if n
        ]
        return f"{', '.join(parts) or 'no object changed'} (+{self.added} −{self.removed})"


def render_from_output(output: str, key: bytes) -> Render:
    """A build's output as the review shows it (Secret values fingerprinted with `key`); a render YAML
    refuses to read (nested past the bound, an alias bomb) is a failed render, as validate reports it, not a
    crash."""
    try:
        docs = tuple(d for d in validate_yaml.load_all(output) if isinstance(d, dict))
    except validate_yaml.YAMLError as err:
        reason = validate_yaml.describe_error(err)
        return Render(True, False, error=f"its output is not readable YAML ({reason})")
    return Render(True, True, redact_secrets(output, key), "", docs)


def redact_secrets(stream: str, key: bytes) -> str:
    """The stream with every Secret's data/stringData values replaced by `<redacted hmac:…>`: a fingerprint
    keyed with `key`, so that a change still shows while a reader of the note cannot test a guess against it
    (a plain hash of a short password is looked up in no time)."""
    chunks = _DOC_SPLIT.split(stream)
    out = []
    for chunk in chunks:
        if "Secret" in chunk:
            try:
                doc = validate_yaml.load_one(chunk)
            except validate_yaml.YAMLError:
                doc = None
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                for field in ("data", "stringData"):
                    if isinstance(doc.get(field), dict):
                        doc[field] = {k: _redacted(v, key) for k, v in doc[field].items()}
                chunk = validate_yaml.dump(doc)
        out.append(chunk)
    return "---\n".join(out)


def _redacted(value: Any, key: bytes) -> str:
    return f"<redacted hmac:{hmac.new(key, str(value).encode(), hashlib.sha256).hexdigest()[:12]}>"


def diff_renders(overlay: str, before: Render, after: Render, max_lines: int) -> RenderedDiff:
    old, new = before.text.splitlines(keepends=True), after.text.splitlines(keepends=True)
    name = one_line(overlay)
    lines = unified_diff(old, new, f"a/{name} (target)", f"b/{name} (merge request)")
    added = sum(1 for line in lines if line.startswith("+") and not line.startswith("+++"))
    removed = sum(1 for line in lines if line.startswith("-") and not line.startswith("---"))
    shown = [_cut(line) for line in lines[:max_lines]]
    changed, gained, lost = _object_changes(before.objects, after.objects)
    return RenderedDiff(
        "".join(shown), added, removed, len(lines), max(0, len(lines) - max_lines), changed, gained, lost
    )


def unified_diff(old: list[str], new: list[str], a: str, b: str) -> list[str]:
    """difflib's unified diff (3 lines of context) of what lies between the renders' common head and tail, so
    one changed line in a render of 100,000 costs what it costs in a short one; past MAX_DIFF_INPUT lines of
    difference difflib's matching would take minutes, and the middle is shown replaced as a whole."""
    head, limit = 0, min(len(old), len(new))
    while head < limit and old[head] == new[head]:
        head += 1
    tail = 0
    while tail < limit - head and old[-1 - tail] == new[-1 - tail]:
        tail += 1
    start, keep = max(0, head - 3), max(0, tail - 3)
    old_mid, new_mid = old[start : len(old) - keep], new[start : len(new) - keep]
    if len(old_mid) + len(new_mid) > MAX_DIFF_INPUT:
        removed, added = old_mid[head - start : len(old_mid) - (tail - keep)], new_mid[head - start :]
        added = added[: len(added) - (tail - keep)]
        header = f"@@ -{head + 1},{len(removed)} +{head + 1},{len(added)} @@\n"
        return [f"--- {a}\n", f"+++ {b}\n", header, *("-" + x for x in removed), *("+" + x for x in added)]
    lines = list(difflib.unified_diff(old_mid, new_mid, a, b, n=3))
    shifted = partial(_shifted, by=start)  # hunk headers count from the slice: move them to where it starts
    return [_HUNK.sub(shifted, line, count=1) for line in lines]


def _shifted(match: re.Match[str], *, by: int) -> str:
    old_at, old_len, new_at, new_len = match.groups()
    return f"@@ -{int(old_at) + by}{old_len or ''} +{int(new_at) + by}{new_len or ''} @@"


def _cut(line: str) -> str:
    body = line.rstrip("\n")
    if len(body) > MAX_LINE_CHARS:
        body = body[:MAX_LINE_CHARS] + f" … ({len(body) - MAX_LINE_CHARS} more characters)"
    return body + "\n"


def _object_changes(before: tuple[Document, ...], after: tuple[Document, ...]) -> tuple[int, int, int]:
    old = {_key(d): d for d in before}
    new = {_key(d): d for d in after}
    changed = sum(1 for k in old.keys() & new.keys() if old[k] != new[k])
    return changed, len(new.keys() - old.keys()), len(old.keys() - new.keys())


def _key(doc: Document) -> str:
    return f"{doc.get('apiVersion')}|{object_id(doc)}"


def image_changes(before: Render, after: Render) -> list[ImageChange]:
    """Containers whose image differs; none when a side failed to build (its images are unknown)."""
    if not (before.ok and after.ok):
        return []
    old = dict(_images(before.objects))
    new = dict(_images(after.objects))
    return [
        ImageChange(workload, container, old.get((workload, container)), new.get((workload, container)))
        for workload, container in sorted(old.keys() | new.keys())
        if old.get((workload, container)) != new.get((workload, container))
    ]


def _images(objects: tuple[Document, ...]) -> Iterator[tuple[tuple[str, str], str]]:
    for obj in objects:
        for container in _containers(obj):
            yield (object_id(obj), str(container.get("name", "?"))), str(container["image"])


def _containers(value: Any) -> Iterator[dict[str, Any]]:
    """Containers anywhere in an object: Pods, workloads' templates, CronJobs, CRDs like Rollouts."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _CONTAINER_LISTS and isinstance(item, list):
                yield from (c for c in item if isinstance(c, dict) and "image" in c)
            else:
                yield from _containers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _containers(item)
