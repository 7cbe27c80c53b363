"""In a repo laid out by `gitops-ci init`, an app's overlay renders the app, not the GitOps engine's own
objects. Each child is confined (the cluster's AppProject; a Flux child's environment account), but what it
applies is reconciled again by the engine, with the engine's rights: a Flux Kustomization or HelmRelease
without an account applies as its controller, an Argo CD Application in Argo CD's namespace may name any
project. Checked on every render, so review sees it in the merge request that adds one."""

from __future__ import annotations

import functools
import re

from gitops_ci.errors import GitopsCiError
from gitops_ci.naming import SETTINGS_FILE
from gitops_ci.onboard.conventions import Conventions, parse_conventions
from gitops_ci.onboard.manifests import ARGOCD_KINDS
from gitops_ci.validate.findings import ENGINE_OBJECT, Finding, Severity
from gitops_ci.validate.objects import Document, ManifestFiles, find_source, object_id


def engine_objects(files: ManifestFiles, overlay: str, docs: list[Document]) -> list[Finding]:
    if SETTINGS_FILE not in files.layout.files:
        return []
    conventions = _conventions(files.text(SETTINGS_FILE))
    if conventions is None or not _is_app_overlay(conventions, overlay):
        return []
    out = []
    for obj in docs:
        group, kind = str(obj.get("apiVersion", "")).rpartition("/")[0], str(obj.get("kind", ""))
        if not (group.endswith(".toolkit.fluxcd.io") or (group == "argoproj.io" and kind in ARGOCD_KINDS)):
            continue
        source = find_source(files, files.layout.closure(overlay), obj)
        file = source.file if source else files.layout.kustomizations[overlay].file
        message = (
            f"an app's overlay must not ship the engine's own {kind[:60]}: the engine would reconcile it "
            "with its own rights, around the confinement of the app's child"
        )
        out.append(
            Finding(Severity.ERROR, ENGINE_OBJECT, file, message, object=object_id(obj), overlay=overlay)
        )
    return out


@functools.lru_cache(maxsize=8)
def _conventions(text: str) -> Conventions | None:
    try:
        return parse_conventions(text)
    except GitopsCiError:  # layout_rules reports it
        return None


def _is_app_overlay(c: Conventions, overlay: str) -> bool:
    pattern = re.escape(c.path_template).replace(r"\{app\}", "[^/]+").replace(r"\{env\}", "(?P<env>[^/]+)")
    found = re.fullmatch(pattern, overlay)
    return found is not None and found["env"] in {e.name for e in c.environments}
