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
from gitops_ci.onboard.manifests import apps_dir, cluster_project, root_project
from gitops_ci.validate.findings import FOREIGN_OBJECT, UNCONFINED_CHILD, UNCONFINED_ROOT, Finding, Severity
from gitops_ci.validate.flux_objects import access_problems, child_problems, confined
from gitops_ci.validate.objects import ManifestFiles, mapping_of

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
    "flux": "Flux Kustomizations and the environments' Namespaces, accounts and RoleBindings",
}
_KUSTOMIZATION_FILES = {"kustomization.yaml", "kustomization.yml", "Kustomization"}


def foreign_objects(files: ManifestFiles, conventions: Conventions) -> list[Finding]:
    out = []
    for cluster in conventions.clusters:
        prefix = f"{apps_dir(cluster)}/"
        has_accounts = conventions.engine == "flux" and confined(files, cluster)
        for path in sorted(f for f in files.layout.files if f.startswith(prefix)):
            problem = _file_problem(path.rpartition("/")[2])
            if problem is not None:
                out.append(Finding(Severity.ERROR, FOREIGN_OBJECT, path, problem))
                continue
            if not path.endswith(".yaml"):
                continue
            docs = files.documents(path)
            if path in files.refused or path in files.unreadable:  # the engine may read what we cannot
                why = files.refused.get(path) or files.unreadable[path]
                out.append(Finding(Severity.ERROR, FOREIGN_OBJECT, path, f"{why}: nothing here is checked"))
            for doc in docs:
                for problem in _problems(doc, conventions, cluster, has_accounts):
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


_OPEN_PROJECT = (
    "lets its apps write Argo CD's namespace, kube-* namespaces or Argo CD's own objects: edit it to what "
    "init writes now (the deny destinations and namespaceResourceBlacklist in the README); a deleted file is "
    "a pruned project"
)


def unconfined_projects(files: ManifestFiles, c: Conventions) -> list[Finding]:
    """A cluster's AppProject without the deny entries and the blacklist init writes (an earlier version's):
    its apps may write Argo CD's namespace (repository and cluster Secrets), kube-* and Argo CD's own objects.
    init writes the file anew once it is deleted."""
    if c.engine != "argocd":
        return []
    out = []
    for cluster in c.clusters:
        path = f"{apps_dir(cluster)}/project.yaml"
        expected = cluster_project(c, cluster)["spec"]
        docs = files.documents(path) if path in files.layout.files else []
        for doc in docs:
            if doc.get("kind") == "AppProject" and not _confines(mapping_of(doc.get("spec")), expected):
                problem = f"the AppProject of {cluster.name} {_OPEN_PROJECT}"
                shown = f"AppProject/{cluster.name}"
                out.append(Finding(Severity.ERROR, UNCONFINED_CHILD, path, problem, object=shown))
    return out


def _confines(spec: dict[str, Any], expected: dict[str, Any]) -> bool:
    destinations, blacklist = spec.get("destinations"), spec.get("namespaceResourceBlacklist")
    if not isinstance(destinations, list) or not isinstance(blacklist, list):
        return False
    denies = [d for d in expected["destinations"] if d["namespace"].startswith("!")]
    return all(d in destinations for d in denies) and all(
        b in blacklist for b in expected["namespaceResourceBlacklist"]
    )


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


def _problems(doc: dict[str, Any], c: Conventions, cluster: Cluster, has_accounts: bool) -> Iterator[str]:
    group, kind = str(doc.get("apiVersion", "")).rpartition("/")[0], str(doc.get("kind", ""))
    spec = mapping_of(doc.get("spec"))
    if (group, kind) not in _ALLOWED[c.engine]:
        yield (
            f"the root of {cluster.name} applies {apps_dir(cluster)}/ with {c.engine}'s own rights: only "
            f"{_NAMES[c.engine]} belong there, not a {kind[:60] or 'kindless object'}"
        )
    elif kind == "Application":
        yield from _application_problems(spec, c, cluster)
    elif kind == "AppProject":
        yield from _project_problems(doc, c, cluster)
    elif kind == "Kustomization":
        yield from child_problems(doc, c, cluster, has_accounts)
    else:
        yield from access_problems(doc, kind, c, cluster)


def _application_problems(spec: dict[str, Any], c: Conventions, cluster: Cluster) -> Iterator[str]:
    """A child runs the overlay of an app in one of its cluster's environments, into that environment's
    namespace: a base or another directory would render unchecked (layout/engine-object), and the AppProject
    confines a child to its cluster, not to its environment."""
    source = mapping_of(spec.get("source"))
    if "sources" in spec or source.get("repoURL") != c.repo_url:
        yield f"an Application here must take its one source from {c.repo_url}"
    found = c.overlay_of(str(source.get("path", "")))
    env = found[1] if found else None
    if env is None or c.cluster_of(env).name != cluster.name:
        yield f"an Application here runs the overlay of an app in an environment of {cluster.name}"
    elif mapping_of(spec.get("destination")).get("namespace") != env:
        yield f"an Application of {env} deploys into namespace {env}"


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
