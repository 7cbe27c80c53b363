"""The kustomizations of a manifest repo and how they include each other: one walk of the tree.

An *overlay* is a kustomization that no other kustomization of the repo includes (a root, as Argo CD or Flux
would point at it); bases and components are built through their overlays. References are resolved the way
kustomize does, relative to the kustomization's directory; remote ones (URLs, `github.com/...`) are kept
but not followed. `layout_of` builds the same from a file list (a git tree) and reuses what is unchanged.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from gitops_ci.images.editor import KUSTOMIZATION_NAMES
from gitops_ci.manifest_repo import paths as repo_paths
from gitops_ci.validate import yaml_files as validate_yaml
from gitops_ci.validate.references import Reference, references_of

_SKIP_DIRS = {".git", "node_modules"}


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
    # From a walk that skipped .git and node_modules: a path it skipped is looked up on disk. A tree given by
    # git (a review) is complete: a file it does not hold is missing, whatever the checkout has besides.
    walked: bool = False

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
    return layout_of(root, files, dirs, disk_reader(root), links=links, walked=True)


def disk_reader(root: Path) -> Callable[[str], str]:
    """A reader of repo-relative paths under `root`, as UTF-8 text (for `layout_of`)."""

    def read(path: str) -> str:
        return (root / path).read_bytes().decode("utf-8")

    return read


def layout_of(
    root: Path,
    files: set[str],
    dirs: set[str] | None,
    read: Callable[[str], str],
    *,
    reuse: RepoLayout | None = None,
    unchanged: Callable[[str], bool] = lambda path: False,
    links: dict[str, str] | None = None,
    walked: bool = False,
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
    layout = RepoLayout(root, {}, files, dirs, duplicates, dict(links or {}), walked)
    read = cache(read)  # a plugin config several kustomizations name is read once
    for directory, kustomization_files in sorted(found.items()):
        file = kustomization_files[0]
        known = reuse.kustomizations.get(directory) if reuse is not None else None
        if known is not None and known.file == file and unchanged(file):
            k = Kustomization(directory, file, known.text, known.data, known.error)
            if k.data is not None:
                k.references = list(references_of(layout, directory, k.data, read))
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
    k.references = list(references_of(layout, directory, data, read))
    return k


def _join(rel: str, name: str) -> str:
    return name if rel == "." else f"{rel}/{name}"
