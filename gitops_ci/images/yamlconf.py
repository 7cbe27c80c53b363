"""Every ruamel.yaml setting gitops-ci uses, and the rules for writing one scalar.

We never let ruamel dump a kustomization: edits are spliced into the original text at the positions the
composer reports (see kustomize_edit). ruamel is the parser, and the judge of whether a plain scalar would
be read back as a string.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.error import YAMLError as RuamelYAMLError
from ruamel.yaml.nodes import Node, ScalarNode
from ruamel.yaml.resolver import VersionedResolver

from gitops_ci.images import yaml_shape

STR_TAG = "tag:yaml.org,2002:str"
NULL_TAG = "tag:yaml.org,2002:null"

# Characters that may not start a plain scalar (YAML 1.2 §7.3.3, c-indicator).
_PLAIN_FORBIDDEN_FIRST = set("-?:,[]{}#&*!|>'\"%@`")


_local = threading.local()


def _yaml() -> YAML:
    """One parser per thread: a ruamel YAML object keeps parser state, and threads sharing one corrupt it."""
    yaml: YAML | None = getattr(_local, "yaml", None)
    if yaml is None:
        yaml = _local.yaml = _new_yaml()
    return yaml


def _new_yaml() -> YAML:
    yaml = YAML(typ="rt", pure=True)
    yaml.preserve_quotes = True
    yaml.allow_duplicate_keys = False
    yaml.width = 4096  # never fold; only used if anything ever dumps
    return yaml


@cache
def _resolvers() -> tuple[VersionedResolver, ...]:
    # YAML 1.1 readers (many Go and Python tools) see `yes`, `on`, `12:30` as non-strings; 1.2 readers do
    # not. A value must read as a string under both.
    return (VersionedResolver(version=(1, 1)), VersionedResolver(version=(1, 2)))


def compose(text: str) -> Node | None:
    """Parse one YAML document into ruamel's node graph (with exact start/end marks); refuse one whose
    nesting or aliases would make walking it ruinous (yaml_shape.YAMLShapeError)."""
    try:
        node: Node | None = _yaml().compose(text)
    except RecursionError:
        raise yaml_shape.YAMLShapeError(f"it nests deeper than {yaml_shape.MAX_DEPTH} levels") from None
    yaml_shape.check(node)
    return node


def load(text: str) -> Any:
    """Parse one YAML document into data (round-trip types; compares equal to plain dicts and lists), after
    the same shape check as `compose`: repo content must not expand a few aliases into gigabytes."""
    compose(text)
    try:
        return _yaml().load(text)
    except RecursionError:
        raise yaml_shape.YAMLShapeError(f"it nests deeper than {yaml_shape.MAX_DEPTH} levels") from None


def tag_of(node: Node) -> str:
    tag = node.tag
    return str(getattr(tag, "value", tag))


def is_string_node(node: Node) -> bool:
    return isinstance(node, ScalarNode) and tag_of(node) == STR_TAG


def is_null_node(node: Node) -> bool:
    return isinstance(node, ScalarNode) and tag_of(node) == NULL_TAG


def reads_as_string(value: str) -> bool:
    """True if `value` written plain is read back as the same string by YAML 1.1 and 1.2 readers."""
    return all(r.resolve(ScalarNode, value, (True, False)) == STR_TAG for r in _resolvers())


def can_be_plain(value: str) -> bool:
    if not value or value != value.strip() or value[0] in _PLAIN_FORBIDDEN_FIRST or _unprintable(value):
        return False
    if ": " in value or " #" in value or value.endswith(":") or "\t" in value:
        return False
    return reads_as_string(value)


def render_scalar(value: str, style: str | None) -> str:
    """Write `value` as a YAML scalar in `style` (None plain, '"' or "'"), quoting when plain would lie."""
    if style is None and can_be_plain(value):
        return value
    if style == "'" and not _unprintable(value):
        return "'" + value.replace("'", "''") + "'"
    return (
        '"' + "".join(_ESCAPES.get(c) or (f"\\u{ord(c):04x}" if _unprintable(c) else c) for c in value) + '"'
    )


_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t"}


def _unprintable(value: str) -> bool:
    """Control characters, line and paragraph separators, the BOM, surrogates and the non-characters YAML
    refuses: never written raw into a YAML file."""
    return any(
        ord(c) < 0x20
        or 0x7F <= ord(c) <= 0x9F
        or 0xD800 <= ord(c) <= 0xDFFF
        or c in "\u2028\u2029\ufeff\ufffe\uffff"
        for c in value
    )


def describe_yaml_error(err: MarkedYAMLError, source: str) -> str:
    """`file:line:col: problem` from a ruamel error (1-based line and column)."""
    mark = err.problem_mark or err.context_mark
    problem = err.problem or err.context or "invalid YAML"
    if mark is None:
        return f"{source}: {problem}"
    return f"{source}:{mark.line + 1}:{mark.column + 1}: {problem}"


AnyYAMLError = RuamelYAMLError  # ruamel's base: MarkedYAMLError, and ReaderError for a control character
YAMLError = MarkedYAMLError
