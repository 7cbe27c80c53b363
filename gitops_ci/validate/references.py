"""What a kustomization names, resolved the way kustomize resolves it: relative to its directory, through
the repo's symlinks, and classified (another kustomization, a file, missing, remote, or outside the repo's
content)."""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from gitops_ci.errors import GitopsCiError
from gitops_ci.images.editor import KUSTOMIZATION_NAMES
from gitops_ci.validate import yaml_files as validate_yaml

RefKind = Literal["kustomization", "dir", "file", "missing", "remote", "outside"]
_SCP_LIKE = re.compile(r"[^/@:]+@[^/:]+:")
_REMOTE_PREFIXES = ("git@", "git::", "github.com/", "gitlab.com/", "bitbucket.org/", "ssh:", "oci:", "http:")
# Fields that name other kustomizations (or files) to include, and fields that name files kustomize reads.
_INCLUDE_FIELDS = ("resources", "bases", "components")
_FILE_LIST_FIELDS = ("patchesStrategicMerge", "crds", "configurations")
_PLUGIN_FIELDS = ("transformers", "generators", "validators")  # files, or kustomizations built for plugins
_GENERATOR_FIELDS = ("configMapGenerator", "secretGenerator")
_PATH_LIST_FIELDS = ("patches", "patchesJson6902", "replacements")


class Tree(Protocol):
    """The part of a repo layout references are resolved in."""

    root: Path
    files: set[str]
    dirs: set[str]
    walked: bool  # files and dirs come from a walk that skipped some directories (look those up on disk)

    def resolve(self, path: str) -> str | None: ...


@dataclass(frozen=True)
class Reference:
    field: str  # where the kustomization names it: `resources[2]`
    value: str  # as written
    target: str  # repo-relative path it resolves to ("" for remote)
    kind: RefKind
    includes: bool  # names a kustomization to build as part of this one (resources, components, plugins)
    data: bool = False  # read as bytes (a generator's files, Helm's values), never parsed as YAML


def references_of(
    layout: Tree, directory: str, data: dict[str, Any], read: Callable[[str], str] | None = None
) -> Iterator[Reference]:
    """Every path or URL the kustomization `data` in `directory` names, resolved; with `read`, also the
    files that the builtin plugins configured in its plugin files read."""
    for name in _INCLUDE_FIELDS:
        for i, value in _strings(data.get(name)):
            yield _resolve(layout, directory, f"{name}[{i}]", value, includes=True)
    for name in (*_FILE_LIST_FIELDS, *_PLUGIN_FIELDS):
        for i, value in _strings(data.get(name)):
            where = f"{name}[{i}]"
            if "\n" in value:  # an inline patch, or an inline plugin config that reads files as generators do
                if name in _PLUGIN_FIELDS:
                    yield from _plugin_config_files(layout, directory, where, value)
                continue
            found = _resolve(layout, directory, where, value, includes=name in _PLUGIN_FIELDS)
            yield found
            if name in _PLUGIN_FIELDS and read is not None:
                for config in _plugin_configs(layout, found):
                    yield from _plugin_config_files(layout, directory, where, _text(read, config))
    for name in _PATH_LIST_FIELDS:
        for i, item in _items(data.get(name)):
            if isinstance(item.get("path"), str):
                yield _resolve(layout, directory, f"{name}[{i}].path", item["path"], includes=False)
    for name in _GENERATOR_FIELDS:
        for i, item in _items(data.get(name)):
            yield from _generator_files(layout, directory, f"{name}[{i}]", item)
    for i, item in _items(data.get("helmCharts")):
        if isinstance(item.get("valuesFile"), str):
            yield _resolve(layout, directory, f"helmCharts[{i}].valuesFile", item["valuesFile"], False, True)
    openapi = data.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        yield _resolve(layout, directory, "openapi.path", openapi["path"], includes=False)
    globals_ = data.get("helmGlobals")
    if isinstance(globals_, dict) and isinstance(globals_.get("chartHome"), str):
        yield _resolve(layout, directory, "helmGlobals.chartHome", globals_["chartHome"], False, True)


def _generator_files(layout: Tree, directory: str, where: str, item: dict[str, Any]) -> Iterator[Reference]:
    """The files a ConfigMap/SecretGenerator reads as data: its files, envs and env."""
    for key in ("files", "envs"):
        for j, value in _strings(item.get(key)):
            yield _resolve(layout, directory, f"{where}.{key}[{j}]", value.split("=")[-1], False, True)
    if isinstance(item.get("env"), str):
        yield _resolve(layout, directory, f"{where}.env", item["env"], False, True)


def _config_files(layout: Tree, directory: str, where: str, item: dict[str, Any]) -> Iterator[Reference]:
    """The files one builtin plugin config reads: a generator's, the Helm inflator's values and charts (as
    data), the builtin transformers' patches and replacements (as YAML)."""
    yield from _generator_files(layout, directory, where, item)
    for key in ("valuesFile", "chartHome"):
        if isinstance(item.get(key), str):
            yield _resolve(layout, directory, f"{where}.{key}", item[key], False, True)
    for j, value in _strings(item.get("paths")):
        yield _resolve(layout, directory, f"{where}.paths[{j}]", value, includes=False)
    if isinstance(item.get("path"), str):
        yield _resolve(layout, directory, f"{where}.path", item["path"], includes=False)
    for j, replacement in _items(item.get("replacements")):
        if isinstance(replacement.get("path"), str):
            yield _resolve(layout, directory, f"{where}.replacements[{j}].path", replacement["path"], False)


def _plugin_configs(layout: Tree, found: Reference) -> list[str]:
    """The plugin config files a plugin field's entry names: a file, or every YAML file under a
    kustomization that makes them (a superset of its resources: each is read against the outer root)."""
    if found.kind == "file":
        return [found.target]
    if found.kind != "kustomization":
        return []
    prefix = f"{found.target}/".removeprefix("./")
    return sorted(f for f in layout.files if f.startswith(prefix) and f.endswith((".yaml", ".yml", ".json")))


def _text(read: Callable[[str], str], path: str) -> str:
    try:
        return read(path)
    except (OSError, UnicodeDecodeError, GitopsCiError):  # kustomize fails to read it as well
        return ""


def _plugin_config_files(layout: Tree, directory: str, where: str, text: str) -> Iterator[Reference]:
    """The files builtin plugin configs in `text` read (resolved against the kustomization, as kustomize
    does)."""
    try:
        documents = validate_yaml.load_all(text)
    except validate_yaml.YAMLError:
        return  # kustomize refuses it as well
    for document in documents:
        if isinstance(document, dict):
            yield from _config_files(layout, directory, where, document)


def _resolve(
    layout: Tree, directory: str, where: str, value: str, includes: bool, data: bool = False
) -> Reference:
    if _is_remote(value):
        return Reference(where, value, "", "remote", includes, data)
    lexical = posixpath.normpath(f"{directory}/{value}")
    joined = layout.resolve(f"{directory}/{value}") if not value.startswith("/") else None
    if joined is None or joined == ".." or joined.startswith("../") or ".git" in joined.split("/"):
        return Reference(where, value, lexical, "outside", includes, data)  # .git: the clone's, not content
    kind: RefKind
    on_disk = layout.root / joined if layout.walked else None
    if joined in layout.dirs or (joined not in layout.files and on_disk is not None and on_disk.is_dir()):
        has_kustomization = any(
            f"{joined}/{n}".removeprefix("./") in layout.files for n in KUSTOMIZATION_NAMES
        )
        kind = "kustomization" if has_kustomization and includes else "dir"
    elif joined in layout.files or (on_disk is not None and on_disk.is_file()):
        kind = "file"
    else:
        kind = "missing"
    return Reference(where, value, joined, kind, includes, data)


def _is_remote(value: str) -> bool:
    return (
        "://" in value
        or value.startswith(_REMOTE_PREFIXES)
        or "?ref=" in value
        or "//" in value
        or _SCP_LIKE.match(value) is not None  # user@host:path, which kustomize fetches with git over ssh
    )


def _strings(value: Any) -> Iterator[tuple[int, str]]:
    if isinstance(value, list):
        yield from ((i, v) for i, v in enumerate(value) if isinstance(v, str))


def _items(value: Any) -> Iterator[tuple[int, dict[str, Any]]]:
    if isinstance(value, list):
        yield from ((i, v) for i, v in enumerate(value) if isinstance(v, dict))
