"""What may live in clusters/<cluster>/apps/ of a repo laid out by `gitops-ci init`.

Each cluster's root (an Argo CD Application, a Flux Kustomization) applies that directory with the engine's
rights — an Argo CD root laid out before its own AppProject existed, or Flux's kustomize-controller, with
all of them — so a merge request that adds a ClusterRoleBinding there, widens the cluster's AppProject or
points a child at another repo or cluster would reach the cluster unconfined. Only what init and new-app
write belongs there, in the shape they write it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gitops_ci.onboard.conventions import Cluster, Conventions
from gitops_ci.onboard.manifests import (
    FLUX_NAMESPACE,
    RECONCILER,
    SOURCE_NAME,
    apps_dir,
    flux_namespace,
    reconciler_account,
    reconciler_binding,
    root_project,
)
from gitops_ci.validate.findings import (
    FOREIGN_OBJECT,
    UNCONFINED_CHILD,
    UNCONFINED_ROOT,
    Finding,
    Severity,
)
from gitops_ci.validate.objects import ManifestFiles

_ALLOWED = {
    "argocd": {("argoproj.io", "Application"), ("argoproj.io", "AppProject")},
    "flux": {
        ("kustomize.toolkit.fluxcd.io", "Kustomization"),
        ("", "Namespace"),
        ("", "ServiceAccount"),
        ("rbac.authorization.k8s.io", "RoleBinding"),
    },
}
_NAMES = {
    "argocd": "Argo CD Applications and the cluster's AppProject",
    "flux": "Flux Kustomizations and the environments' Namespaces and RoleBindings",
}
_KUSTOMIZATION_FILES = {"kustomization.yaml", "kustomization.yml", "Kustomization"}


def foreign_objects(files: ManifestFiles, conventions: Conventions) -> list[Finding]:
    out = []
    for cluster in conventions.clusters:
        prefix = f"{apps_dir(cluster)}/"
        for path in sorted(f for f in files.layout.files if f.startswith(prefix)):
            problem = _file_problem(path.rpartition("/")[2])
            if problem is not None:
                out.append(Finding(Severity.ERROR, FOREIGN_OBJECT, path, problem))
                continue
            if not path.endswith(".yaml"):
                continue
            for doc in files.documents(path):
                for problem in _problems(doc, conventions, cluster):
                    name = str(mapping_of(doc.get("metadata")).get("name", ""))
                    shown = f"{str(doc.get('kind', 'object'))[:60]}/{name[:60]}"
                    out.append(Finding(Severity.ERROR, FOREIGN_OBJECT, path, problem, object=shown))
    return out


def unconfined_roots(files: ManifestFiles, c: Conventions) -> list[Finding]:
    """An Argo CD root.yaml that is not in its own AppProject, in the shape init writes: one laid out by an
    earlier version (Argo CD's default project allows any object anywhere), or one changed since. It is
    applied by hand, so a merge does not reach the cluster: a warning that says how to replace it."""
    if c.engine != "argocd":
        return []
    out = []
    for cluster in c.clusters:
        path = f"clusters/{cluster.name}/root.yaml"
        if path not in files.layout.files:
            continue
        docs, expected = files.documents(path), root_project(c, cluster)
        name = expected["metadata"]["name"]
        roots = [d for d in docs if d.get("kind") == "Application"]
        if not roots or any(mapping_of(d.get("spec")).get("project") != name for d in roots):
            problem = f"the root of {cluster.name} is not in its own AppProject {name}"
        elif not any(_same_project(d, expected) for d in docs if d.get("kind") == "AppProject"):
            problem = f"the AppProject {name} is not the one init writes (it may let the root apply more)"
        else:
            continue
        fix = f"; delete {path}, run gitops-ci init again and kubectl apply it"
        out.append(Finding(Severity.WARNING, UNCONFINED_ROOT, path, problem + fix))
    return out


def _same_project(doc: dict[str, Any], expected: dict[str, Any]) -> bool:
    def rules(spec: dict[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in spec.items() if key != "description"}

    named = mapping_of(doc.get("metadata")).get("name") == expected["metadata"]["name"]
    return named and rules(mapping_of(doc.get("spec"))) == rules(expected["spec"])


def _file_problem(name: str) -> str | None:
    """Argo CD reads .yml, .json and .jsonnet here too, and a kustomization file makes both engines build
    the directory with kustomize: init and new-app write .yaml files and a README only."""
    if name in _KUSTOMIZATION_FILES:
        return "a kustomization file here would make the root build this directory with kustomize"
    if not name.endswith(".yaml") and name != "README.md":
        return "only the .yaml files init and new-app write belong here (Argo CD reads .yml, .json, .jsonnet)"
    return None


def _problems(doc: dict[str, Any], c: Conventions, cluster: Cluster) -> Iterator[str]:
    group, kind = str(doc.get("apiVersion", "")).rpartition("/")[0], str(doc.get("kind", ""))
    spec = mapping_of(doc.get("spec"))
    if (group, kind) not in _ALLOWED[c.engine]:
        yield (
            f"the root of {cluster.name} applies {apps_dir(cluster)}/ with {c.engine}'s own rights: only "
            f"{_NAMES[c.engine]} belong there, not a {kind[:60] or 'kindless object'}"
        )
    elif kind == "Application":
        source = mapping_of(spec.get("source"))
        if "sources" in spec or source.get("repoURL") != c.repo_url:
            yield f"an Application here must take its one source from {c.repo_url}"
    elif kind == "AppProject":
        yield from _project_problems(doc, c, cluster)
    elif kind == "Kustomization":
        ref = mapping_of(spec.get("sourceRef"))
        origin = (ref.get("kind"), ref.get("name"), ref.get("namespace", FLUX_NAMESPACE))
        if origin != ("GitRepository", SOURCE_NAME, FLUX_NAMESPACE) or "kubeConfig" in spec:
            yield f"a Kustomization here must reconcile GitRepository {SOURCE_NAME} (this repo), here"
        if spec.get("serviceAccountName", RECONCILER) != RECONCILER:
            yield f"a Kustomization here reconciles as {RECONCILER}, which is confined to its environment"
    else:
        yield from _flux_access_problems(doc, kind, c, cluster)


def _flux_access_problems(doc: dict[str, Any], kind: str, c: Conventions, cluster: Cluster) -> Iterator[str]:
    """Namespaces, the children's account and its RoleBindings: exactly as new-app writes them, for this
    cluster's environments only (a binding in flux-system would let a child write Flux's own objects)."""
    metadata = mapping_of(doc.get("metadata"))
    envs = {e.name for e in c.environments if e.cluster == cluster.name}
    if kind == "ServiceAccount":
        expected, env = reconciler_account(), None
    elif kind == "Namespace":
        env = str(metadata.get("name"))
        expected = flux_namespace(env)
    else:
        env = str(metadata.get("namespace"))
        expected = reconciler_binding(env)
    if doc != expected or (env is not None and env not in envs):
        yield (
            f"a {kind} here is one new-app writes for an environment of {cluster.name} "
            f"({', '.join(sorted(envs)) or 'none'}), in that shape"
        )


def unconfined_children(files: ManifestFiles, c: Conventions) -> list[Finding]:
    """Flux children written before they had a service account reconcile with kustomize-controller's own
    rights: an overlay they apply can change anything in the cluster. Its own rule, so that a repo laid out
    by an earlier version can --ignore it until its children are changed."""
    if c.engine != "flux":
        return []
    out = []
    for cluster in c.clusters:
        prefix = f"{apps_dir(cluster)}/"
        for path in sorted(f for f in files.layout.files if f.startswith(prefix) and f.endswith(".yaml")):
            for doc in files.documents(path):
                spec, name = mapping_of(doc.get("spec")), mapping_of(doc.get("metadata")).get("name", "")
                if doc.get("kind") == "Kustomization" and "serviceAccountName" not in spec:
                    problem = (
                        f"it reconciles with kustomize-controller's own rights: add serviceAccountName: "
                        f"{RECONCILER} (new-app writes that account and its RoleBindings)"
                    )
                    shown = f"Kustomization/{str(name)[:60]}"
                    out.append(Finding(Severity.ERROR, UNCONFINED_CHILD, path, problem, object=shown))
    return out


def _project_problems(doc: dict[str, Any], c: Conventions, cluster: Cluster) -> Iterator[str]:
    spec = mapping_of(doc.get("spec"))
    if mapping_of(doc.get("metadata")).get("name") != cluster.name:
        yield f"the one AppProject here is {cluster.name}'s own (a root's, or another, would widen it)"
    if "roles" in spec or "sourceNamespaces" in spec:
        yield "the AppProject grants no roles and no Applications outside Argo CD's namespace"
    destinations, whitelist = spec.get("destinations"), spec.get("clusterResourceWhitelist") or []
    confined = isinstance(destinations, list) and all(
        mapping_of(d).get("server") == cluster.server and "name" not in mapping_of(d) for d in destinations
    )
    if spec.get("sourceRepos") != [c.repo_url] or not confined:
        yield (
            f"the AppProject of {cluster.name} must keep {c.repo_url} as its only source and "
            f"{cluster.server} as its only destination"
        )
    if not isinstance(whitelist, list) or any(
        mapping_of(w) != {"group": "", "kind": "Namespace"} for w in whitelist
    ):
        yield "the AppProject may allow only Namespace among cluster-scoped kinds"


def mapping_of(value: object) -> dict[str, Any]:
    """`value` when it is a mapping, else an empty one (repo content has any shape)."""
    return value if isinstance(value, dict) else {}
