"""The seed's layout rules, as warnings: bases one level deep, environment differences only in overlays,
and Argo CD Application names that stay unique across environments.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from gitops_ci.validate import yaml_files as validate_yaml
from gitops_ci.validate.findings import (
    ARGOCD_NAME_COLLISION,
    DUPLICATED_IN_OVERLAYS,
    NESTED_BASE,
    OVERLAY_DUPLICATES_BASE,
    UNUSED_COMPONENT,
    Finding,
    Severity,
)
from gitops_ci.validate.kustomizations import parse_field
from gitops_ci.validate.objects import Document, ManifestFiles, metadata, name_of, object_id
from gitops_ci.validate.repo import RepoLayout
from gitops_ci.validate.schema import FieldPath, format_path

_MAX_LISTED = 5
_PATCH_FIELDS = ("patches[", "patchesStrategicMerge[")
_IDENTITY = {((), "apiVersion"), ((), "kind"), (("metadata",), "name"), (("metadata",), "namespace")}


def nested_bases(layout: RepoLayout) -> list[Finding]:
    """A base (included by another kustomization) that itself includes a base; components are fine."""
    findings = []
    for directory, k in layout.kustomizations.items():
        if not layout.parents.get(directory) or k.is_component:
            continue
        for ref in k.references:
            child = layout.kustomizations.get(ref.target)
            if (
                ref.kind == "kustomization"
                and ref.field.startswith(("resources[", "bases["))
                and child
                and not child.is_component
            ):
                findings.append(
                    Finding(
                        Severity.WARNING,
                        NESTED_BASE,
                        k.file,
                        f"base {directory} includes another base ({ref.target}); keep bases one level deep: "
                        "let the overlays include both, or make the shared part a Component",
                        ref.field,
                        line=validate_yaml.line_of(k.text, 0, parse_field(ref.field)),
                    )
                )
    return findings


def unused_components(layout: RepoLayout) -> list[Finding]:
    return [
        Finding(
            Severity.INFO,
            UNUSED_COMPONENT,
            layout.kustomizations[d].file,
            "no kustomization includes this Component",
        )
        for d in layout.unused_components
    ]


@dataclass(frozen=True)
class _Copy:
    file: str
    document: int
    obj: Document


def duplicated_content(files: ManifestFiles) -> list[Finding]:
    """Objects an overlay lists that equal one of its bases' (copied, not inherited), and objects copied
    identically into several overlays (common content belongs in a base)."""
    layout = files.layout
    findings: list[Finding] = []
    in_overlays: dict[str, dict[str, _Copy]] = defaultdict(dict)  # content -> file -> copy
    for overlay in layout.overlays:
        closure = layout.closure(overlay)
        base_content = {_canonical(c.obj): c for d in closure[1:] for c in _copies(files, d)}
        for copy in _copies(files, overlay):
            content = _canonical(copy.obj)
            if content in base_content:
                findings.append(
                    _finding(
                        files,
                        copy,
                        OVERLAY_DUPLICATES_BASE,
                        f"identical to the object in {base_content[content].file}; keep it in the base only",
                    )
                )
            else:
                in_overlays[content].setdefault(copy.file, copy)
    for copies in in_overlays.values():
        if len(copies) < 2:
            continue
        for copy in copies.values():
            others = sorted(f for f in copies if f != copy.file)
            message = f"the same object is in {_listed(others)}; move what the overlays share into a base"
            findings.append(_finding(files, copy, DUPLICATED_IN_OVERLAYS, message))
    return findings


def _copies(files: ManifestFiles, directory: str) -> Iterable[_Copy]:
    for path in files.resource_files(directory):
        for i, doc in enumerate(files.documents(path)):
            if doc.get("kind"):
                yield _Copy(path, i, doc)


def _finding(files: ManifestFiles, copy: _Copy, rule: str, message: str) -> Finding:
    line = validate_yaml.line_of(files.text(copy.file), copy.document, [])
    return Finding(Severity.WARNING, rule, copy.file, message, object=object_id(copy.obj), line=line)


def redundant_patches(files: ManifestFiles) -> list[Finding]:
    """Patches that restate values the base already has: the overlay copies base content instead of
    holding only what differs in its environment."""
    layout = files.layout
    findings: list[Finding] = []
    for directory, k in layout.kustomizations.items():
        patches = [r for r in k.references if r.kind == "file" and r.field.startswith(_PATCH_FIELDS)]
        if not patches:
            continue
        bases = {
            (doc.get("kind"), name_of(doc)): doc
            for d in layout.closure(directory)[1:]
            for path in files.resource_files(d)
            for doc in files.documents(path)
        }
        for ref in patches:
            for i, patch in enumerate(files.documents(ref.target)):
                base = bases.get((patch.get("kind"), name_of(patch)))
                same = list(_same_values(patch, base, ())) if base is not None else []
                if not same:
                    continue
                shown = ", ".join(format_path(p) for p in same[:3]) + (", ..." if len(same) > 3 else "")
                findings.append(
                    Finding(
                        Severity.WARNING,
                        OVERLAY_DUPLICATES_BASE,
                        ref.target,
                        f"the patch repeats {len(same)} value(s) the base already has ({shown}); "
                        "patch only what differs in this environment",
                        format_path(same[0]),
                        object_id(patch),
                        line=validate_yaml.line_of(files.text(ref.target), i, list(same[0])),
                    )
                )
    return findings


def _same_values(patch: Any, base: Any, path: FieldPath) -> Iterator[FieldPath]:
    if isinstance(patch, dict) and isinstance(base, dict):
        for key, value in patch.items():
            if key in base and (path, key) not in _IDENTITY and not str(key).startswith("$"):
                yield from _same_values(value, base[key], (*path, key))
    elif isinstance(patch, list) and isinstance(base, list):
        if all(isinstance(item, dict) and "name" in item for item in (*patch, *base)):
            # Strategic merge matches list items by their merge key (`name` for containers, env, volumes...).
            by_name = {item["name"]: item for item in base}
            for i, item in enumerate(patch):
                if item["name"] in by_name:
                    rest = {k: v for k, v in item.items() if k != "name"}
                    yield from _same_values(rest, by_name[item["name"]], (*path, i))
        elif patch == base:
            yield path
    elif patch == base and type(patch) is type(base):
        yield path


def argocd_collisions(apps: Iterable[tuple[str, str, Document]]) -> list[Finding]:
    """`apps` holds (where: overlay or file, file, Application). One name with different content in
    different places collides in one Argo CD; a file and the render that includes it unchanged are one place.
    """
    by_name: dict[tuple[str, str], dict[str, list[tuple[str, str, Document]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for where, file, app in apps:
        meta = metadata(app)
        by_name[(str(meta.get("namespace") or ""), str(meta.get("name") or ""))][_canonical(app)].append(
            (where, file, app)
        )
    findings = []
    for (_, name), contents in sorted(by_name.items()):
        if len(contents) < 2:
            continue
        shown = {content: _representative(places) for content, places in contents.items()}
        for content, places in contents.items():
            file = next((f for w, f, _ in places if w == f), places[0][1])
            overlay = next((w for w, f, _ in places if w != f), "")
            others = sorted(where for c, where in shown.items() if c != content)
            findings.append(
                Finding(
                    Severity.WARNING,
                    ARGOCD_NAME_COLLISION,
                    file,
                    f"Application {name!r} is also defined, differently, by {_listed(others)}; in one Argo "
                    "CD they would overwrite each other: put the environment in the name",
                    "metadata.name",
                    object_id(places[0][2]),
                    overlay=overlay,
                )
            )
    return findings


def _representative(places: list[tuple[str, str, Document]]) -> str:
    return next((f for w, f, _ in places if w == f), places[0][0])


def is_argocd_application(obj: Document) -> bool:
    return obj.get("kind") == "Application" and str(obj.get("apiVersion", "")).startswith("argoproj.io/")


def _canonical(obj: Document) -> str:
    return json.dumps(obj, sort_keys=True, default=str)


def _listed(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f" and {len(items) - _MAX_LISTED} more" if len(items) > _MAX_LISTED else "")
