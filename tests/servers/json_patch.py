"""JSON Merge Patch (RFC 7386) and JSON Patch (RFC 6902), as the kube-apiserver applies them."""

from __future__ import annotations

import copy
from typing import Any

JSON = dict[str, Any]


class JsonPatchError(ValueError):
    """An RFC 6902 operation that cannot be applied (the apiserver answers 422)."""


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (``null`` deletes); the result must stay an object."""
    if not isinstance(patch, dict):
        raise ValueError(
            f"json: cannot unmarshal {type(patch).__name__} into Go value of type map[string]interface {{}}"
        )
    merged = copy.deepcopy(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = (
                apply_merge_patch(merged.get(name), value)
                if isinstance(value, dict)
                else copy.deepcopy(value)
            )
    return merged


def apply_json_patch(target: JSON, operations: Any) -> JSON:
    """RFC 6902 JSON patch; like the apiserver, parents are never created implicitly."""
    if not isinstance(operations, list) or not all(isinstance(op, dict) for op in operations):
        raise ValueError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    document: Any = copy.deepcopy(target)
    for op in operations:
        name, path = op.get("op"), _pointer(op.get("path"))
        if name in ("add", "replace", "test") and "value" not in op:
            raise ValueError(f"missing value for operation {name!r}")
        if name == "add":
            document = _add(document, path, copy.deepcopy(op["value"]))
        elif name == "remove":
            _remove(document, path)
        elif name == "replace":
            _remove(document, path)
            document = _add(document, path, copy.deepcopy(op["value"]))
        elif name in ("move", "copy"):
            source = _pointer(op.get("from"))
            value = _remove(document, source) if name == "move" else copy.deepcopy(_get(document, source))
            document = _add(document, path, value)
        elif name == "test":
            if _get(document, path) != op["value"]:
                raise JsonPatchError(f"testing value {op.get('path')} failed: test failed")
        else:
            raise ValueError(f"unexpected kind of operation: {name!r}")
    return document  # type: ignore[no-any-return]


def _pointer(pointer: Any) -> list[str]:
    if not isinstance(pointer, str) or (pointer and not pointer.startswith("/")):
        raise ValueError(f"invalid JSON pointer: {pointer!r}")
    return [token.replace("~1", "/").replace("~0", "~") for token in pointer.split("/")[1:]]


def _get(document: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(document, dict) and token in document:
            document = document[token]
        elif isinstance(document, list) and token.isdigit() and int(token) < len(document):
            document = document[int(token)]
        else:
            raise JsonPatchError(f"doc is missing path: /{'/'.join(tokens)}: missing value")
    return document


def _add(document: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent, last = _get(document, tokens[:-1]), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list) and (last == "-" or (last.isdigit() and int(last) <= len(parent))):
        parent.insert(len(parent) if last == "-" else int(last), value)
    else:
        raise JsonPatchError(f"doc is missing path: /{'/'.join(tokens)}: missing value")
    return document


def _remove(document: Any, tokens: list[str]) -> Any:
    value = _get(document, tokens)
    if not tokens:
        raise JsonPatchError("cannot remove the whole document")
    parent = _get(document, tokens[:-1])
    if isinstance(parent, dict):
        del parent[tokens[-1]]
    else:
        del parent[int(tokens[-1])]
    return value
