"""What an app's overlay may render, in a repo laid out by `gitops-ci init`: the app, in its environment's
namespace. Each child is confined (the cluster's AppProject; a Flux child's environment account), but
- the engine reconciles its own objects again, with its own rights: a Flux Kustomization or HelmRelease
  without an account applies as its controller, an Argo CD Application may name any project;
- Argo CD's AppProject keeps children on their cluster, not on their environment, and lets them adopt a
  Namespace (which a later merge request that drops it would prune).
Checked on every render of an app's overlay, so review sees it in the merge request that adds one."""

from __future__ import annotations

from gitops_ci.naming import SETTINGS_FILE
from gitops_ci.onboard.manifests import ARGOCD_KINDS
from gitops_ci.validate.findings import ENGINE_OBJECT, OUTSIDE_ENVIRONMENT, Finding, Severity
from gitops_ci.validate.objects import Document, ManifestFiles, find_source, object_id
from gitops_ci.validate.onboarding import repo_conventions

_FLUX_GROUPS = (".toolkit.fluxcd.io", ".extensions.fluxcd.io", "fluxcd.controlplane.io")
_SCANNING = {("image.toolkit.fluxcd.io", "ImageRepository"), ("image.toolkit.fluxcd.io", "ImagePolicy")}


def engine_objects(files: ManifestFiles, overlay: str, docs: list[Document]) -> list[Finding]:
    if SETTINGS_FILE not in files.layout.files:
        return []
    conventions = repo_conventions(files.text(SETTINGS_FILE))  # layout_rules reports what is wrong with it
    found = None if isinstance(conventions, str) else conventions.overlay_of(overlay)
    if found is None:
        return []
    env, out = found[1], []
    for obj in docs:
        problem = _problem(obj, env)
        if problem is not None:
            rule, message = problem
            source = find_source(files, files.layout.closure(overlay), obj)
            file = source.file if source else files.layout.kustomizations[overlay].file
            out.append(Finding(Severity.ERROR, rule, file, message, object=object_id(obj), overlay=overlay))
    return out


def _problem(obj: Document, env: str) -> tuple[str, str] | None:
    group, kind = str(obj.get("apiVersion", "")).rpartition("/")[0], str(obj.get("kind", ""))
    flux = group.endswith(_FLUX_GROUPS) and (group, kind) not in _SCANNING  # scanning tags writes nothing
    if flux or (group == "argoproj.io" and kind in ARGOCD_KINDS):
        return ENGINE_OBJECT, (
            f"an app's overlay must not ship the engine's own {kind[:60]}: the engine would reconcile it "
            "with its own rights, around the confinement of the app's child"
        )
    metadata = obj.get("metadata")
    namespace = metadata.get("namespace") if isinstance(metadata, dict) else None
    if (group, kind) == ("", "Namespace") or (namespace is not None and namespace != env):
        return OUTSIDE_ENVIRONMENT, (
            f"an app's overlay of {env[:60]} puts its objects in namespace {env[:60]} (its `namespace:`) and "
            "ships no Namespace: the environment's namespace belongs to the cluster's layout"
        )
    return None
