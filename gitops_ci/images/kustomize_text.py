"""Offsets, lines and splices over a kustomization's original text (no parsing, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gitops_ci.errors import InternalError
from gitops_ci.images import yamlconf


@dataclass(frozen=True)
class Splice:
    """Replace text[start:end] with `text` (an insertion when start == end)."""

    start: int
    end: int
    text: str


def apply_splices(text: str, splices: Iterable[Splice]) -> str:
    # Back to front, so earlier offsets stay valid; on equal spans the first listed ends up first.
    ordered = sorted(enumerate(splices), key=lambda p: (p[1].start, p[1].end, p[0]), reverse=True)
    limit = len(text)
    for _, splice in ordered:
        if splice.end > limit or splice.start > splice.end:
            raise InternalError(f"overlapping edits at offset {splice.start} (a gitops-ci bug)")
        text = text[: splice.start] + splice.text + text[splice.end :]
        limit = splice.start
    return text


def newline_of(text: str) -> str:
    return "\r\n" if "\r\n" in text else "\n"


def line_start(text: str, index: int) -> int:
    return text.rfind("\n", 0, index) + 1


def line_end(text: str, index: int) -> int:
    """The offset just past the newline that ends the line holding `index` (or the end of the text)."""
    newline = text.find("\n", index)
    return len(text) if newline < 0 else newline + 1


def content_end(text: str, node: Node) -> int:
    """Where a node's own text ends: block scalars and block collections exclude trailing blank lines."""
    if isinstance(node, ScalarNode):
        if node.style in ("|", ">"):
            span = text[node.start_mark.index : node.end_mark.index]
            return int(node.start_mark.index) + len(span.rstrip())
        return int(node.end_mark.index)
    if isinstance(node, MappingNode | SequenceNode) and not node.flow_style and node.value:
        last = node.value[-1]
        return content_end(text, last[1] if isinstance(last, tuple) else last)
    return int(node.end_mark.index)


def insert_lines(text: str, index: int, lines: list[str]) -> Splice:
    """Insert whole lines at a line start, keeping the file's newline style and a missing final newline."""
    newline = newline_of(text)
    if index == len(text) and text and not text.endswith("\n"):
        return Splice(index, index, newline + newline.join(lines))
    return Splice(index, index, "".join(line + newline for line in lines))


@dataclass(frozen=True)
class TextLayout:
    """How the file lays out block lists: dash column under the parent key, and key column after the dash."""

    seq_indent: int = 0
    key_offset: int = 2

    @classmethod
    def of(cls, root: MappingNode | None, images: Node | None) -> TextLayout:
        candidates: list[tuple[Node, Node]] = []
        if root is not None:
            candidates = [(k, v) for k, v in root.value if v is images] + [
                (k, v) for k, v in root.value if v is not images
            ]
        for key, value in candidates:
            if isinstance(value, SequenceNode) and not value.flow_style and value.value:
                seq_indent = value.start_mark.column - key.start_mark.column
                first = value.value[0]
                offset = 2
                if isinstance(first, MappingNode) and not first.flow_style and first.value:
                    first_key = first.value[0][0]
                    if first_key.start_mark.line == value.start_mark.line:
                        offset = first_key.start_mark.column - value.start_mark.column
                return cls(max(seq_indent, 0), max(offset, 2))
        return cls()

    def entry_lines(
        self, pairs: list[tuple[str, str]], dash_col: int, styles: dict[str, str | None]
    ) -> list[str]:
        head = " " * dash_col + "-" + " " * (self.key_offset - 1)
        indent = " " * (dash_col + self.key_offset)
        return [
            (head if i == 0 else indent) + f"{key}: {yamlconf.render_scalar(value, styles.get(key))}"
            for i, (key, value) in enumerate(pairs)
        ]
