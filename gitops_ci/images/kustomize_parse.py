"""Parsing a kustomization for the editor: ruamel nodes with exact offsets, and its images entries checked."""

from __future__ import annotations

from dataclasses import dataclass, field

from ruamel.yaml.error import YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from gitops_ci.errors import KustomizationError
from gitops_ci.images import yaml_shape, yamlconf
from gitops_ci.images.reference import MANAGED_FIELDS


@dataclass
class Entry:
    """One item of `images:`: its mapping node, position and fields."""

    node: MappingNode
    index: int
    fields: dict[str, tuple[ScalarNode, Node]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.fields["name"][1].value)

    def managed(self) -> dict[str, str]:
        return {f: str(self.fields[f][1].value) for f in MANAGED_FIELDS if f in self.fields}


@dataclass
class Document:
    """A parsed kustomization: its root mapping and its `images:` list, if any."""

    text: str
    source: str
    root: MappingNode | None
    images_key: ScalarNode | None = None
    images: Node | None = None
    entries: list[Entry] = field(default_factory=list)


def parse(text: str, source: str) -> Document:
    try:
        root = yamlconf.compose(text)
    except YAMLError as err:
        raise KustomizationError(_yaml_message(err, source)) from None
    except yaml_shape.YAMLShapeError as err:
        raise KustomizationError(f"{source}: refusing to edit it: {err}") from None
    if root is not None and not isinstance(root, MappingNode):
        raise KustomizationError(f"{source}: the top level is not a mapping; is this a kustomization file?")
    doc = Document(text, source, root)
    if root is None:
        return doc
    seen: set[str] = set()
    for key, value in root.value:
        if not isinstance(key, ScalarNode):
            raise KustomizationError(
                f"{position(doc, key)}: a key that is not a string; kustomize refuses it"
            )
        if key.value in seen:
            raise KustomizationError(f"{position(doc, key)}: duplicate key {key.value!r}; remove one of them")
        seen.add(key.value)
        if key.value == "images":
            doc.images_key, doc.images = key, value
    _collect_entries(doc)
    return doc


def _collect_entries(doc: Document) -> None:
    images = doc.images
    if images is None or yamlconf.is_null_node(images):
        return
    if not isinstance(images, SequenceNode):
        raise KustomizationError(f"{position(doc, images)}: images must be a list of entries with a name")
    if anchored := _first_anchored(images):
        raise KustomizationError(
            f"{position(doc, anchored)}: the images list uses a YAML anchor or alias (&{anchored.anchor}); "
            "an edit there would change every place that shares it: write the entries out in full"
        )
    for index, item in enumerate(images.value):
        if not isinstance(item, MappingNode):
            raise KustomizationError(f"{position(doc, item)}: images entry {index + 1} is not a mapping")
        entry = Entry(item, index)
        for key, value in item.value:
            entry.fields[str(key.value)] = (key, value)
        if "name" not in entry.fields or not isinstance(entry.fields["name"][1], ScalarNode):
            raise KustomizationError(f"{position(doc, item)}: images entry {index + 1} has no name")
        for name in MANAGED_FIELDS:
            if name in entry.fields and not isinstance(entry.fields[name][1], ScalarNode):
                raise KustomizationError(f"{position(doc, entry.fields[name][1])}: {name} must be a string")
        doc.entries.append(entry)


def _first_anchored(node: Node) -> Node | None:
    """The first node under `node` (itself included) that carries an anchor, which aliases may share."""
    stack = [node]
    while stack:
        current = stack.pop()
        if getattr(current, "anchor", None):
            return current
        if isinstance(current, SequenceNode):
            stack.extend(current.value)
        elif isinstance(current, MappingNode):
            stack.extend(n for pair in current.value for n in pair)
    return None


def position(doc: Document, node: Node) -> str:
    return f"{doc.source}:{node.start_mark.line + 1}:{node.start_mark.column + 1}"


def _yaml_message(err: YAMLError, source: str) -> str:
    if isinstance(err, yamlconf.YAMLError):
        return yamlconf.describe_yaml_error(err, source) + "; fix the YAML and retry"
    return f"{source}: {str(err).splitlines()[0]}; fix the YAML and retry"
