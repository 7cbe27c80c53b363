"""Reading manifests and kustomizations for validation: fast, and the way the API server reads them.

Validation reads every kustomization and manifest of a repo (12,000 kustomizations in a 3,000-app repo) and
renders of several MB; ruamel's round-trip parser, which the editor needs for its exact marks, takes ~2 ms
per small file where libyaml takes ~0.1 ms. So validation uses PyYAML (a dependency of the kubernetes
package) with libyaml when present. Its YAML 1.1 reading is also the API server's (sigs.k8s.io/yaml uses
go-yaml v2): an unquoted `yes` is a boolean there too, which is what a schema check must see. Timestamps stay
strings (JSON has no timestamp type, and the API server decodes YAML through JSON).

The only module that imports `yaml`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import yaml

from gitops_ci.images import yaml_shape

_BASE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BASE_LOADER):  # type: ignore[misc]
    pass


def _as_string(loader: Any, node: Any) -> str:
    return str(loader.construct_scalar(node))


# `=` resolves to YAML 1.1's value tag, which PyYAML's safe constructor refuses.
for _tag in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:value"):
    _Loader.add_constructor(_tag, _as_string)

YAMLError: type[Exception] = yaml.YAMLError
_BLOCK_PREFIX = re.compile(r"^[ ?-]*", re.MULTILINE)


class ShapeError(yaml.YAMLError):
    """A document too deep or with aliases that expand too far (see yaml_shape)."""


def load_one(text: str) -> Any:
    """The first document of `text` (None when empty); raises YAMLError."""
    loader = _Loader(text.removeprefix("\ufeff"))
    try:
        node = loader.get_single_node()
        return None if node is None else _construct(loader, node, text)
    finally:
        loader.dispose()


def load_all(text: str) -> list[Any]:
    """Every document of a stream, empty ones dropped; raises YAMLError."""
    loader = _Loader(text.removeprefix("\ufeff"))
    docs = []
    try:
        while loader.check_node():
            doc = _construct(loader, loader.get_node(), text)
            if doc is not None:
                docs.append(doc)
    finally:
        loader.dispose()
    return docs


def _construct(loader: Any, node: Any, text: str) -> Any:
    if _may_be_ruinous(text):
        try:
            yaml_shape.check(node)
        except yaml_shape.YAMLShapeError as err:
            raise ShapeError(str(err)) from None
    try:
        return loader.construct_document(node)
    except RecursionError:
        raise ShapeError(f"it nests deeper than {yaml_shape.MAX_DEPTH} levels") from None


def _may_be_ruinous(text: str) -> bool:
    """Whether the text may hold aliases or nest beyond MAX_DEPTH, by an upper bound that costs one scan:
    aliases need an anchor (`&`); each level of nesting needs a column of indentation, a `-` or `?` at the
    start of a line, or a bracket."""
    if "&" in text:
        return True
    brackets = text.count("[") + text.count("{")
    deepest = max((len(prefix) for prefix in _BLOCK_PREFIX.findall(text)), default=0)
    return brackets + deepest >= yaml_shape.MAX_DEPTH


def describe_error(err: Exception) -> str:
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or getattr(err, "context", None) or str(err).splitlines()[0]
    return f"line {mark.line + 1}: {problem}" if mark is not None else str(problem)


def dump(data: Any) -> str:
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text: str = yaml.dump(data, Dumper=dumper, sort_keys=False, default_flow_style=False, width=4096)
    return text


def line_of(text: str, document: int, path: Sequence[str | int]) -> int | None:
    """The 1-based line of `path` (keys and list indexes) in the `document`-th non-empty document.

    Walks as far as the path exists, so a missing field points at its closest present parent.
    """
    nodes = _compose_all(text)
    if document >= len(nodes):
        return None
    node = nodes[document]
    line: int = node.start_mark.line
    for part in path:
        child = _child(node, part)
        if child is None:
            break
        key_node, node = child
        line = (key_node or node).start_mark.line
    return line + 1


@lru_cache(maxsize=32)
def _compose_all(text: str) -> tuple[Any, ...]:
    try:
        return tuple(
            n for n in yaml.compose_all(text.removeprefix("\ufeff"), Loader=_Loader) if not _is_null(n)
        )
    except yaml.YAMLError:
        return ()


def _is_null(node: Any) -> bool:
    return (
        isinstance(node, yaml.ScalarNode)
        and node.tag == "tag:yaml.org,2002:null"
        and node.value in ("", "~", "null")
    )


def _child(node: Any, part: str | int) -> tuple[Any, Any] | None:
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == part:
                return key, value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
        return None, node.value[part]
    return None
