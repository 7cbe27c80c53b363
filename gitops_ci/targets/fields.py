"""Typed reads of a JSON document a server sent (an Argo CD Application, a Flux object): a field of another
shape than the API's reads as absent, so a wrong answer waits or fails with a message, never crashes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _at(document: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(document, Mapping):
            return None
        document = document.get(key)
    return document


def obj(document: Any, *keys: str) -> Mapping[str, Any]:
    """The object at `keys`, or an empty one."""
    found = _at(document, keys)
    return found if isinstance(found, Mapping) else {}


def text(document: Any, *keys: str) -> str | None:
    found = _at(document, keys)
    return found if isinstance(found, str) else None


def number(document: Any, *keys: str) -> int | None:
    found = _at(document, keys)
    return found if isinstance(found, int) and not isinstance(found, bool) else None


def flag(document: Any, *keys: str) -> bool:
    return _at(document, keys) is True


def texts(document: Any, *keys: str) -> list[str]:
    found = _at(document, keys)
    return [item for item in found if isinstance(item, str)] if isinstance(found, list) else []


def items(document: Any, *keys: str) -> list[Mapping[str, Any]]:
    """The objects in the list at `keys`."""
    found = _at(document, keys)
    return [item for item in found if isinstance(item, Mapping)] if isinstance(found, list) else []
