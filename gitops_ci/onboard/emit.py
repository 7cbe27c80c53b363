"""A small YAML emitter for the objects onboarding writes: block style, two-space indents, and every string
quoted exactly when a YAML 1.1 or 1.2 reader would read it plain as something else (yamlconf's rule)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gitops_ci.images.yamlconf import render_scalar


def to_yaml(data: Mapping[str, Any], comment: str = "") -> str:
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    lines += _mapping(data, 0)
    return "\n".join(lines) + "\n"


def documents(*parts: str) -> str:
    return "---\n".join(parts)


def _mapping(data: Mapping[str, Any], indent: int) -> list[str]:
    pad, out = " " * indent, []
    for key, value in data.items():
        if isinstance(value, Mapping) and value:
            out += [f"{pad}{key}:", *_mapping(value, indent + 2)]
        elif isinstance(value, Sequence) and not isinstance(value, str) and value:
            out += [f"{pad}{key}:", *_sequence(value, indent + 2)]
        else:
            out.append(f"{pad}{key}: {_scalar(value)}")
    return out


def _sequence(items: Sequence[Any], indent: int) -> list[str]:
    pad, out = " " * indent, []
    for item in items:
        if isinstance(item, Mapping) and item:
            first, *rest = _mapping(item, indent + 2)
            out += [f"{pad}- {first.lstrip()}", *rest]
        else:
            out.append(f"{pad}- {_scalar(item)}")
    return out


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping):
        return "{}"
    if isinstance(value, Sequence) and not isinstance(value, str):
        return "[]"
    return render_scalar(str(value), None)
