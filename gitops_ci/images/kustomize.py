"""Set images in a kustomization's text, touching only the lines that have to change.

Pure: text in, text out. ruamel composes the document into nodes whose start/end marks are exact character
offsets into the original text; every edit is a splice at those offsets, so comments, quoting, indentation,
line endings, BOM and document markers outside the edited entries are never re-emitted. After splicing, the
result is parsed again and compared with the intended data (kustomize_verify); a mismatch is a bug and
nothing is returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ruamel.yaml.nodes import Node, ScalarNode, SequenceNode

from gitops_ci.errors import KustomizationError
from gitops_ci.images import yamlconf
from gitops_ci.images.kustomize_parse import Document, Entry, parse
from gitops_ci.images.kustomize_text import (
    Splice,
    TextLayout,
    apply_splices,
    content_end,
    insert_lines,
    line_end,
    line_start,
)
from gitops_ci.images.reference import MANAGED_FIELDS, ImageUpdate

_RANK = {"name": 0, "newName": 1, "newTag": 2, "digest": 3}


@dataclass(frozen=True)
class EntryChange:
    """One images entry before and after (managed fields only); `before` is None for an appended entry."""

    name: str
    before: dict[str, str] | None
    after: dict[str, str]


@dataclass(frozen=True)
class EditResult:
    """The edited text and what changed in it (no change: the text as it was)."""

    text: str
    changes: tuple[EntryChange, ...]

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def set_images(
    text: str, updates: Sequence[ImageUpdate], *, strict: bool = False, source: str = "kustomization.yaml"
) -> EditResult:
    """Apply `updates` in order; unmatched names append an entry (or fail with `strict`)."""
    from gitops_ci.images.kustomize_verify import Plan, verify

    plan = Plan()
    changes: dict[int, EntryChange] = {}
    result = text
    original = doc = parse(text, source)
    for update in updates:
        if doc.text is not result:  # the previous update changed the text: its offsets are stale
            doc = parse(result, source)
        matched = [e for e in doc.entries if e.name == update.name]
        if not matched and strict:
            raise KustomizationError(
                f"{source}: no images entry is named {update.name!r} (--strict); "
                "check the name or drop --strict to append one"
            )
        splices: list[Splice] = []
        for entry in matched:
            before = entry.managed()
            after = update.apply(before)
            entry_splices = _edit_entry(doc, entry, after)
            plan.record(entry.index, after)
            if entry_splices:
                splices += entry_splices
                _record_change(changes, entry.index, EntryChange(update.name, before, after))
        if not matched:
            after = update.apply({})
            splices += _append_entry(doc, update.name, after)
            plan.record(None, {"name": update.name, **after})
            _record_change(changes, len(doc.entries), EntryChange(update.name, None, after))
        result = apply_splices(result, splices)
    if result != text:
        verify(original.root, result, plan, source)
    return EditResult(result, tuple(changes[i] for i in sorted(changes)))


def _record_change(changes: dict[int, EntryChange], index: int, change: EntryChange) -> None:
    """Several updates of one entry read as one change: the first `before`, the last `after`."""
    first = changes.get(index)
    changes[index] = change if first is None else EntryChange(change.name, first.before, change.after)


def read_images(text: str, source: str = "kustomization.yaml") -> list[dict[str, str]]:
    """The images entries of a kustomization (name plus managed fields, as written)."""
    return [{"name": e.name, **e.managed()} for e in parse(text, source).entries]


def _edit_entry(doc: Document, entry: Entry, after: dict[str, str]) -> list[Splice]:
    text = doc.text
    splices: list[Splice] = []
    keys = list(entry.fields)
    removed: set[str] = {f for f in MANAGED_FIELDS if f in entry.fields and f not in after}
    for name, value in after.items():
        if name not in entry.fields:
            continue
        node = entry.fields[name][1]
        if yamlconf.is_string_node(node) and node.value == value:
            continue
        splices.append(_replace_value(text, entry.fields[name], value))
    splices += _removals(text, entry, keys, removed)
    kept = [k for k in keys if k not in removed]
    inserts = [(f, after[f]) for f in MANAGED_FIELDS if f in after and f not in entry.fields]
    by_anchor: dict[str, list[tuple[str, str]]] = {}
    for name, value in inserts:
        by_anchor.setdefault(_anchor(kept, name), []).append((name, value))
    for anchor, pairs in by_anchor.items():
        anchor_value = entry.fields[anchor][1]
        if entry.node.flow_style:
            added = "".join(f", {k}: {yamlconf.render_scalar(v, _preferred_style(doc, k))}" for k, v in pairs)
            splices.append(Splice(anchor_value.end_mark.index, anchor_value.end_mark.index, added))
        else:
            indent = " " * entry.fields[kept[0]][0].start_mark.column
            lines = [f"{indent}{k}: {yamlconf.render_scalar(v, _preferred_style(doc, k))}" for k, v in pairs]
            splices.append(insert_lines(text, line_end(text, content_end(text, anchor_value)), lines))
    return splices


def _replace_value(text: str, pair: tuple[ScalarNode, Node], value: str) -> Splice:
    key, node = pair
    style = node.style if isinstance(node, ScalarNode) and node.style in ("'", '"') else None
    rendered = yamlconf.render_scalar(value, style)
    start, end = node.start_mark.index, content_end(text, node)
    if start == end:  # an empty (null) value: write after the colon that follows the key
        start = end = text.index(":", key.end_mark.index) + 1
        rendered = " " + rendered
    return Splice(start, end, rendered)


def _removals(text: str, entry: Entry, keys: list[str], removed: set[str]) -> list[Splice]:
    """Remove runs of consecutive removed keys; a run at the head of the entry pulls the next key up."""
    splices: list[Splice] = []
    flow = bool(entry.node.flow_style)
    i = 0
    while i < len(keys):
        if keys[i] not in removed:
            i += 1
            continue
        j = i
        while j + 1 < len(keys) and keys[j + 1] in removed:
            j += 1
        first_key = entry.fields[keys[i]][0]
        last_value = entry.fields[keys[j]][1]
        if i == 0:
            next_key = entry.fields[keys[j + 1]][0]
            splices.append(Splice(first_key.start_mark.index, next_key.start_mark.index, ""))
        elif flow:
            previous_value = entry.fields[keys[i - 1]][1]
            splices.append(Splice(previous_value.end_mark.index, last_value.end_mark.index, ""))
        else:
            start = line_start(text, first_key.start_mark.index)
            splices.append(Splice(start, line_end(text, content_end(text, last_value)), ""))
        i = j + 1
    return splices


def _anchor(kept: list[str], new_field: str) -> str:
    """The kept field a new field goes after: the latest in kustomize's order that precedes it."""
    candidates = [k for k in kept if _RANK.get(k, 99) < _RANK[new_field]]
    return max(candidates, key=lambda k: _RANK[k]) if candidates else kept[-1]


def _append_entry(doc: Document, name: str, fields: dict[str, str]) -> list[Splice]:
    text, images = doc.text, doc.images
    pairs = [("name", name), *fields.items()]
    styles = {k: _preferred_style(doc, k) for k, _ in pairs}
    flow_entry = "{" + ", ".join(f"{k}: {yamlconf.render_scalar(v, styles[k])}" for k, v in pairs) + "}"
    layout = TextLayout.of(doc.root, images)
    if isinstance(images, SequenceNode) and images.value:
        last = images.value[-1]
        if images.flow_style:
            return [Splice(last.end_mark.index, last.end_mark.index, f", {flow_entry}")]
        dash_col = images.start_mark.column
        if last.flow_style:
            lines = [" " * dash_col + "- " + flow_entry]
        else:
            lines = layout.entry_lines(pairs, dash_col, styles)
        return [insert_lines(text, line_end(text, content_end(text, last)), lines)]
    if doc.root is not None and doc.root.flow_style:
        last_value = doc.root.value[-1][1]
        return [Splice(last_value.end_mark.index, last_value.end_mark.index, f", images: [{flow_entry}]")]
    key_col = doc.root.value[0][0].start_mark.column if doc.root is not None and doc.root.value else 0
    lines = layout.entry_lines(pairs, key_col + layout.seq_indent, styles)
    if doc.images_key is not None and images is not None:
        return _fill_empty_images(doc, images, lines)
    lines = [" " * key_col + "images:", *lines]
    if doc.root is None or not doc.root.value:
        return [insert_lines(text, len(text), lines)]
    return [insert_lines(text, line_end(text, content_end(text, doc.root.value[-1][1])), lines)]


def _fill_empty_images(doc: Document, images: Node, lines: list[str]) -> list[Splice]:
    """`images:`, `images: ~` or `images: []` becomes a block list under the key."""
    text = doc.text
    assert doc.images_key is not None
    key_end = doc.images_key.end_mark.index
    colon = text.index(":", key_end) + 1
    splices = []
    if images.end_mark.index > images.start_mark.index:  # an explicit `[]`, `~` or `null`
        splices.append(Splice(colon, images.end_mark.index, ""))
    splices.append(insert_lines(text, line_end(text, colon), lines))
    return splices


def _preferred_style(doc: Document, field_name: str) -> str | None:
    """Quote a new value like the same field of the other entries when they all quote it one way."""
    styles = {
        value.style
        for entry in doc.entries
        if field_name in entry.fields and isinstance(value := entry.fields[field_name][1], ScalarNode)
    }
    return styles.pop() if len(styles) == 1 and styles <= {"'", '"'} else None


__all__ = ["EditResult", "EntryChange", "read_images", "set_images"]
