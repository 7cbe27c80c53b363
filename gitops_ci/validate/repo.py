"""The kustomizations of a manifest repo and how they include each other: one walk of the tree.

An *overlay* is a kustomization that no other kustomization of the repo includes (a root, as Argo CD or Flux
would point at it); bases and components are built through their overlays. References are resolved the way
kustomize does, relative to the kustomization's directory; remote ones (URLs, `github.com/...`) are kept
but not followed. `layout_of` builds the same from a file list (a git tree) and reuses what is unchanged.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from gitops_ci.images.editor import KUSTOMIZATION_NAMES
from gitops_ci.manifest_repo import paths as repo_paths
from gitops_ci.validate import yaml_files as validate_yaml

RefKind = Literal["kustomization", "dir", "file", "missing", "remote", "outside"]
_SKIP_DIRS = {".git", "node_modules"}
_SCP_LIKE = re.compile(r"[^/@:]+@[^/:]+:")
_REMOTE_PREFIXES = ("git@", "git::", "github.com/", "gitlab.com/", "bitbucket.org/", "ssh:", "oci:", "http:")
# Fields that name other kustomizations (or files) to include, and fields that name files kustomize reads.
_INCLUDE_FIELDS = ("resources", "bases", "components")
_FILE_LIST_FIELDS = ("patchesStrategicMerge", "crds", "configurations")
_PLUGIN_FIELDS = ("transformers", "generators", "validators")  # files, or kustomizations built for plugins
_GENERATOR_FIELDS = ("configMapGenerator", "secretGenerator")
_PATH_LIST_FIELDS = ("patches", "patchesJson6902", "replacements")


@dataclass(frozen=True)
class Reference:
    field: str  # where the kustomization names it: `resources[2]`
    value: str  # as written
    target: str  # repo-relative path it resolves to ("" for remote)
    kind: RefKind
    includes: bool  # names a kustomization to build as part of this one (resources, components, plugins)


@dataclass
class Kustomization:
    dir: str  # repo-relative posix path, "." for the root
    file: str
    text: str
    data: dict[str, Any] | None
    error: str = ""
    references: list[Reference] = field(default_factory=list)

    @property
    def is_component(self) -> bool:
        return self.data is not None and self.data.get("kind") == "Component"

    def included_dirs(self) -> list[str]:
        return [r.target for r in self.references if r.kind == "kustomization"]


@dataclass
class RepoLayout:
    root: Path
    kustomizations: dict[str, Kustomization]
    files: set[str]  # every file of the walk, repo-relative (symlinks to files inside the repo included)
    dirs: set[str]
    duplicates: dict[str, list[str]] = field(default_factory=dict)  # dir -> kustomization files (>1)
    links: dict[str, str] = field(default_factory=dict)  # symlink path -> its target, as stored

    def resolve(self, path: str) -> str | None:
        """`path` with the repo's symlinks followed; None when it leaves the repo."""
        return repo_paths.resolve(path, self.links) if self.links else posixpath.normpath(path)

    @cached_property
    def parents(self) -> dict[str, set[str]]:
        parents: dict[str, set[str]] = {d: set() for d in self.kustomizations}
        for k in self.kustomizations.values():
            for child in k.included_dirs():
                parents.setdefault(child, set()).add(k.dir)
        return parents

    @cached_property
    def overlays(self) -> list[str]:
        return sorted(
            d for d, k in self.kustomizations.items() if not self.parents.get(d) and not k.is_component
        )

    @cached_property
    def unused_components(self) -> list[str]:
        return sorted(d for d, k in self.kustomizations.items() if not self.parents.get(d) and k.is_component)

    def closure(self, directory: str) -> list[str]:
        """The kustomization dirs a build of `directory` reads, itself first (cycles are cut)."""
        seen: dict[str, None] = {}
        stack = [directory]
        while stack:
            current = stack.pop()
            if current in seen or current not in self.kustomizations:
                continue
            seen[current] = None
            stack.extend(reversed(self.kustomizations[current].included_dirs()))
        return list(seen)

    def read_paths(self, directory: str) -> set[str]:
        """Dirs and files a build of `directory` reads: its kustomization dirs and the paths they name."""
        paths: set[str] = set()
        for k in self.closure(directory):
            paths.add(k)
            paths.update(r.target for r in self.kustomizations[k].references if r.kind in ("file", "dir"))
        return paths

    def affected_overlays(self, changed: Iterable[str]) -> list[str]:
        """Overlays whose build may change with these repo-relative paths."""
        changed = list(changed)
        nested = set(self.kustomizations)
        result = []
        for overlay in self.overlays:
            paths = self.read_paths(overlay)
            if any(_depends(path, paths, nested) for path in changed):
                result.append(overlay)
        return result


def _depends(changed: str, paths: set[str], kustomization_dirs: set[str]) -> bool:
    # A change under a kustomization dir counts unless it is under a nested kustomization that the build
    # does not include (base/ and base/extra/ are two kustomizations).
    parent = changed
    while True:
        if parent in paths:
            return True
        if parent != changed and parent in kustomization_dirs:
            return False
        if parent == ".":
            return False
        parent = parent.rpartition("/")[0] or "."


def discover(root: Path) -> RepoLayout:
    """Walk `root` once: every kustomization file, parsed, with its references resolved. Symlinks are not
    followed by the walk; one that stays inside the repo counts as the file or directory it names."""
    files: set[str] = set()
    dirs: set[str] = {"."}
    links: dict[str, str] = {}
    pending = [(root, ".")]
    while pending:
        directory, rel = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                path = _join(rel, entry.name)
                if entry.is_symlink():
                    links[path] = str(Path(entry.path).readlink())
                elif entry.is_dir():
                    if entry.name not in _SKIP_DIRS:
                        dirs.add(path)
                        pending.append((Path(entry.path), path))
                elif entry.is_file():
                    files.add(path)
    for link in links:
        target = repo_paths.resolve(link, links)
        if target in files:
            files.add(link)
        elif target in dirs:
            dirs.add(link)
    return layout_of(root, files, dirs, lambda path: (root / path).read_bytes().decode("utf-8"), links=links)


def layout_of(
    root: Path,
    files: set[str],
    dirs: set[str] | None,
    read: Callable[[str], str],
    *,
    reuse: RepoLayout | None = None,
    unchanged: Callable[[str], bool] = lambda path: False,
    links: dict[str, str] | None = None,
) -> RepoLayout:
    """The layout of a tree given as its file list (`dirs` default to the files' parents) and a reader.

    Kustomizations of `reuse` whose file is `unchanged` are not read or parsed again (a review's base tree
    differs from its head only in the changed paths); their references are resolved again, in this tree.
    """
    if dirs is None:
        dirs = {"."} | {parent for f in files for parent in _parents(f)}
    found: dict[str, list[str]] = {}
    for path in files:
        directory, _, name = path.rpartition("/")
        if name in KUSTOMIZATION_NAMES:
            found.setdefault(directory or ".", []).append(path)
    for candidates in found.values():
        candidates.sort(key=lambda f: KUSTOMIZATION_NAMES.index(f.rpartition("/")[2]))
    duplicates = {d: f for d, f in found.items() if len(f) > 1}
    layout = RepoLayout(root, {}, files, dirs, duplicates, dict(links or {}))
    for directory, kustomization_files in sorted(found.items()):
        file = kustomization_files[0]
        known = reuse.kustomizations.get(directory) if reuse is not None else None
        if known is not None and known.file == file and unchanged(file):
            k = Kustomization(directory, file, known.text, known.data, known.error)
            if k.data is not None:
                k.references = list(_references(layout, directory, k.data))
        else:
            k = _read(layout, directory, file, read)
        layout.kustomizations[directory] = k
    return layout


def _parents(path: str) -> Iterator[str]:
    while "/" in path:
        path = path.rpartition("/")[0]
        yield path


def _read(layout: RepoLayout, directory: str, file: str, read: Callable[[str], str]) -> Kustomization:
    real = layout.resolve(file)
    if real is None:
        return Kustomization(directory, file, "", None, "a symlink that points outside the repository")
    try:
        text = read(real)
    except (OSError, UnicodeDecodeError) as err:
        return Kustomization(directory, file, "", None, f"cannot read: {err}")
    try:
        data = validate_yaml.load_one(text)
    except validate_yaml.YAMLError as err:
        return Kustomization(
            directory, file, text, None, f"not valid YAML ({validate_yaml.describe_error(err)})"
        )
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return Kustomization(directory, file, text, None, "the top level is not a mapping")
    k = Kustomization(directory, file, text, data)
    k.references = list(_references(layout, directory, data))
    return k


def _references(layout: RepoLayout, directory: str, data: dict[str, Any]) -> Iterator[Reference]:
    for name in _INCLUDE_FIELDS:
        for i, value in _strings(data.get(name)):
            yield _resolve(layout, directory, f"{name}[{i}]", value, includes=True)
    for name in (*_FILE_LIST_FIELDS, *_PLUGIN_FIELDS):
        for i, value in _strings(data.get(name)):
            if "\n" not in value:  # not an inline patch or plugin config
                yield _resolve(layout, directory, f"{name}[{i}]", value, includes=name in _PLUGIN_FIELDS)
            elif name in _PLUGIN_FIELDS:  # an inline builtin generator reads files like configMapGenerator
                yield from _inline_plugin_files(layout, directory, f"{name}[{i}]", value)
    for name in _PATH_LIST_FIELDS:
        for i, item in _items(data.get(name)):
            if isinstance(item.get("path"), str):
                yield _resolve(layout, directory, f"{name}[{i}].path", item["path"], includes=False)
    for name in _GENERATOR_FIELDS:
        for i, item in _items(data.get(name)):
            yield from _generator_files(layout, directory, f"{name}[{i}]", item)
    for i, item in _items(data.get("helmCharts")):
        if isinstance(item.get("valuesFile"), str):
            yield _resolve(layout, directory, f"helmCharts[{i}].valuesFile", item["valuesFile"], False)
    openapi = data.get("openapi")
    if isinstance(openapi, dict) and isinstance(openapi.get("path"), str):
        yield _resolve(layout, directory, "openapi.path", openapi["path"], includes=False)
    globals_ = data.get("helmGlobals")
    if isinstance(globals_, dict) and isinstance(globals_.get("chartHome"), str):
        yield _resolve(layout, directory, "helmGlobals.chartHome", globals_["chartHome"], includes=False)


def _generator_files(
    layout: RepoLayout, directory: str, where: str, item: dict[str, Any]
) -> Iterator[Reference]:
    for key in ("files", "envs"):
        for j, value in _strings(item.get(key)):
            yield _resolve(layout, directory, f"{where}.{key}[{j}]", value.split("=")[-1], False)
    if isinstance(item.get("env"), str):
        yield _resolve(layout, directory, f"{where}.env", item["env"], includes=False)


def _inline_plugin_files(layout: RepoLayout, directory: str, where: str, text: str) -> Iterator[Reference]:
    try:
        documents = validate_yaml.load_all(text)
    except validate_yaml.YAMLError:
        return  # kustomize refuses it as well
    for document in documents:
        if isinstance(document, dict):
            yield from _generator_files(layout, directory, where, document)


def _resolve(layout: RepoLayout, directory: str, where: str, value: str, includes: bool) -> Reference:
    if _is_remote(value):
        return Reference(where, value, "", "remote", includes)
    lexical = posixpath.normpath(f"{directory}/{value}")
    joined = layout.resolve(f"{directory}/{value}") if not value.startswith("/") else None
    if joined is None or joined == ".." or joined.startswith("../") or ".git" in joined.split("/"):
        return Reference(where, value, lexical, "outside", includes)  # .git: the clone's config, not content
    kind: RefKind
    if joined in layout.dirs or (joined not in layout.files and (layout.root / joined).is_dir()):
        has_kustomization = any(
            f"{joined}/{n}".removeprefix("./") in layout.files for n in KUSTOMIZATION_NAMES
        )
        kind = "kustomization" if has_kustomization and includes else "dir"
    elif joined in layout.files or (layout.root / joined).is_file():
        kind = "file"
    else:
        kind = "missing"
    return Reference(where, value, joined, kind, includes)


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


def _join(rel: str, name: str) -> str:
    return name if rel == "." else f"{rel}/{name}"
