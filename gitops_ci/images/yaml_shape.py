"""Refuse YAML that is cheap to write and ruinous to read: alias bombs ("billion laughs"), recursive aliases
and very deep nesting. Pure; works on the node graphs of both parsers we use (ruamel.yaml and PyYAML share
the node model: `value` is a string, a list of nodes, or a list of (key, value) pairs).

A parser keeps an alias as a second reference to the anchored node, so loading a bomb is instant; what
hangs is whatever walks the data afterwards. The walk here visits each distinct node once.
"""

from __future__ import annotations

from typing import Any

MAX_DEPTH = 100
MAX_ALIAS_NODES = 10_000  # nodes that aliases may add on top of the document's own


class YAMLShapeError(ValueError):
    """The document nests too deeply, or its aliases expand too far."""


def check(root: Any) -> None:
    """Raise YAMLShapeError when the document under `root` is too deep or expands too far."""
    sizes: dict[int, int] = {}
    depths: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if not children_done:
            if key in open_nodes:
                raise YAMLShapeError("an alias refers to a node that contains it (a recursive alias)")
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        if any(id(child) not in sizes for child in children):
            raise YAMLShapeError("an alias refers to a node that contains it (a recursive alias)")
        open_nodes.discard(key)
        sizes[key] = 1 + sum(sizes[id(child)] for child in children)
        depths[key] = 1 + max((depths[id(child)] for child in children), default=0)
        if depths[key] > MAX_DEPTH:
            raise YAMLShapeError(f"it nests deeper than {MAX_DEPTH} levels")
    if root is not None and sizes[id(root)] - len(sizes) > MAX_ALIAS_NODES:
        raise YAMLShapeError(
            f"its aliases expand to {sizes[id(root)]:,} nodes from {len(sizes):,} (at most "
            f"{MAX_ALIAS_NODES:,} more are accepted)"
        )


def _children(node: Any) -> list[Any]:
    value = getattr(node, "value", None)
    if not isinstance(value, list):
        return []
    out: list[Any] = []
    for item in value:
        if isinstance(item, tuple):
            out.extend(item)
        else:
            out.append(item)
    return out
