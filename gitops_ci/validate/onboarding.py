"""Rules for a repo laid out by `gitops-ci init` (it has gitops-ci.yaml): every overlay of an environment has
the object that makes its cluster run it, every such object points at an overlay of this repo, and Argo CD
Applications stay on their cluster (its AppProject and API server)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from gitops_ci.errors import GitopsCiError
from gitops_ci.naming import SETTINGS_FILE
from gitops_ci.onboard.conventions import Conventions, parse_conventions
from gitops_ci.validate.findings import (
    KUSTOMIZATION_INVALID,
    MISSING_APPLICATION,
    ORPHAN_APPLICATION,
    WRONG_PROJECT,
    Finding,
    Severity,
)
from gitops_ci.validate.flux_objects import unconfined_children
from gitops_ci.validate.objects import ManifestFiles, mapping_of
from gitops_ci.validate.root_objects import foreign_objects, unconfined_projects, unconfined_roots


@dataclass(frozen=True)
class _Child:
    cluster: str
    file: str
    name: str
    path: str
    project: str | None  # Argo CD only
    server: str | None


def layout_rules(files: ManifestFiles) -> list[Finding]:
    if SETTINGS_FILE not in files.layout.files:
        return []
    conventions = repo_conventions(files.text(SETTINGS_FILE))
    if isinstance(conventions, str):
        return [Finding(Severity.ERROR, KUSTOMIZATION_INVALID, SETTINGS_FILE, conventions)]
    children = _children(files, conventions)
    found = _system_environments(conventions)
    found += _missing(files, conventions, children) + _misplaced(files, conventions, children)
    confined = unconfined_roots(files, conventions) + unconfined_children(files, conventions)
    confined += unconfined_projects(files, conventions)
    return found + foreign_objects(files, conventions) + confined


@functools.lru_cache(maxsize=8)
def repo_conventions(text: str) -> Conventions | str:
    """gitops-ci.yaml parsed once (these rules and each overlay's engine objects read it): the conventions,
    or why they are not."""
    try:
        return parse_conventions(text)
    except GitopsCiError as err:
        return str(err)


def _system_environments(c: Conventions) -> list[Finding]:
    """init refuses them; gitops-ci.yaml is repo content, and a merge request may add one: its apps would go
    into a namespace the cluster or the engine owns."""
    return [
        Finding(
            Severity.ERROR,
            KUSTOMIZATION_INVALID,
            SETTINGS_FILE,
            f"environment {e.name[:63]} is named like the cluster's or the GitOps engine's own namespace (an "
            "environment's name is its namespace): rename it",
        )
        for e in c.environments
        if c.is_system_namespace(e.name)
    ]


def _children(files: ManifestFiles, conventions: Conventions) -> list[_Child]:
    found = []
    for cluster in conventions.clusters:
        prefix = f"clusters/{cluster.name}/apps/"
        for path in sorted(f for f in files.layout.files if f.startswith(prefix) and f.endswith(".yaml")):
            found += [child for doc in files.documents(path) if (child := _child(cluster.name, path, doc))]
    return found


def _child(cluster: str, path: str, doc: dict[str, Any]) -> _Child | None:
    spec, metadata = mapping_of(doc.get("spec")), mapping_of(doc.get("metadata"))
    name, api = str(metadata.get("name", "")), str(doc.get("apiVersion", ""))
    if doc.get("kind") == "Application" and api.startswith("argoproj.io/"):
        source, destination = mapping_of(spec.get("source")), mapping_of(spec.get("destination"))
        project, server = str(spec.get("project", "")), str(destination.get("server", ""))
        return _Child(cluster, path, name, str(source.get("path", "")), project, server)
    if doc.get("kind") == "Kustomization" and api.startswith("kustomize.toolkit.fluxcd.io/"):
        return _Child(cluster, path, name, str(spec.get("path", "")).removeprefix("./"), None, None)
    return None


def _missing(files: ManifestFiles, conventions: Conventions, children: list[_Child]) -> list[Finding]:
    out = []
    for overlay in files.layout.overlays:
        found = conventions.overlay_of(overlay)
        if found is None:
            continue
        app, env = found
        cluster = conventions.cluster_of(env).name
        if any(c.cluster == cluster and c.path == overlay for c in children):
            continue
        name = conventions.app_name(app, env)
        message = (
            f"no object in clusters/{cluster}/apps/ runs this overlay: add {name}.yaml "
            f"(gitops-ci new-app --app {app} --env {env} --update)"
        )
        file = files.layout.kustomizations[overlay].file
        out.append(Finding(Severity.ERROR, MISSING_APPLICATION, file, message, overlay=overlay))
    return out


def _misplaced(files: ManifestFiles, conventions: Conventions, children: list[_Child]) -> list[Finding]:
    servers = {c.name: c.server for c in conventions.clusters}
    out = []
    for child in children:
        if child.path not in files.layout.kustomizations:
            message = f"{child.name} points at {child.path or 'nothing'}, which is no overlay of this repo"
            out.append(
                Finding(Severity.ERROR, ORPHAN_APPLICATION, child.file, message + "; remove or fix it")
            )
        server = servers[child.cluster]
        if child.project is not None and (child.project != child.cluster or child.server != server):
            message = (
                f"{child.name} must use project {child.cluster} and server {server} (it has "
                f"{child.project or 'no project'} and {child.server or 'no server'})"
            )
            out.append(Finding(Severity.ERROR, WRONG_PROJECT, child.file, message))
    return out
