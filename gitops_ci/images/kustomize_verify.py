"""The safety net behind every splice: the edited text must hold exactly the intended data.

Both texts are composed (not constructed) and compared as plain trees, so values with no equality of
their own in ruamel (tagged scalars, NaN) still compare, and a plain `11` differs from a quoted "11".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gitops_ci.errors import InternalError
from gitops_ci.images import yaml_shape, yamlconf
from gitops_ci.images.reference import MANAGED_FIELDS


@dataclass
class Plan:
    """What the edit meant: per images entry index (None = appended), its managed fields afterwards."""

    ops: list[tuple[int | None, dict[str, str]]] = field(default_factory=list)

    def record(self, index: int | None, fields: dict[str, str]) -> None:
        self.ops.append((index, dict(fields)))

    def expected_images(self, before: list[Any]) -> list[Any]:
        images = [dict(entry) for entry in before]
        for index, fields in self.ops:
            if index is None:
                images.append(dict(fields))
                continue
            entry = images[index]
            for name in MANAGED_FIELDS:
                entry.pop(name, None)
            entry.update(fields)
        return images


def plain(node: Node | None, depth: int = 0) -> Any:
    """A comparable tree: strings for str scalars, (tag, text) for other scalars, dicts and lists."""
    if node is None:
        return {}
    if depth > 2 * yaml_shape.MAX_DEPTH:  # compose() refused deeper documents: this is a bug
        raise InternalError(f"the kustomization nests deeper than {2 * yaml_shape.MAX_DEPTH} levels")
    if isinstance(node, ScalarNode):
        return node.value if yamlconf.is_string_node(node) else (yamlconf.tag_of(node), node.value)
    if isinstance(node, SequenceNode):
        return [plain(item, depth + 1) for item in node.value]
    if isinstance(node, MappingNode):
        return {plain(k, depth + 1): plain(v, depth + 1) for k, v in node.value}
    raise InternalError(f"unexpected YAML node {type(node).__name__}")


def verify(original: Node | None, edited: str, plan: Plan, source: str) -> None:
    """Raise InternalError unless `edited` differs from the `original` document only by the planned images."""
    before = plain(original)
    try:
        after = plain(yamlconf.compose(edited))
    except YAMLError as err:
        raise _bug(source, f"the result does not parse ({str(err).splitlines()[0]})") from None
    expected_keys = list(before) + ([] if "images" in before else ["images"])
    if list(after) != expected_keys:
        raise _bug(source, "top-level keys changed")
    for key in before:
        if key != "images" and after[key] != before[key]:
            raise _bug(source, f"{key!r} changed")
    images = before.get("images")
    expected = plan.expected_images(images if isinstance(images, list) else [])
    if after["images"] != expected:
        raise _bug(source, f"images would be {after['images']!r}, expected {expected!r}")


def _bug(source: str, detail: str) -> InternalError:
    return InternalError(
        f"{source}: refusing to write an edit that does not match its intent: {detail}. "
        "This is a gitops-ci bug; please report it with the file"
    )
