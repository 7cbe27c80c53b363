"""The cluster files onboarding writes, as text: Argo CD AppProjects, root and child Applications; Flux
GitRepository and Kustomizations; the GitLab agent's configuration (an app's own files: app_files; a Flux
environment's namespace and rights: flux_tenancy).

Shapes follow the projects' CRDs (argo-cd manifests/crds/{application,appproject}-crd.yaml, Flux
source-controller and kustomize-controller v1 CRDs) and GitLab's agent configuration (agentcfg.proto, strict:
unknown keys fail); tests check them against those schemas' subsets.
"""

from __future__ import annotations

from typing import Any

from gitops_ci.onboard.conventions import Cluster, Conventions
from gitops_ci.onboard.emit import to_yaml

ARGOCD_API = "argoproj.io/v1alpha1"
IN_CLUSTER = "https://kubernetes.default.svc"  # where Argo CD runs: its Application objects live there
FINALIZER = "resources-finalizer.argocd.argoproj.io"
ARGOCD_KINDS = ("Application", "ApplicationSet", "AppProject")  # argoproj.io's Rollout, Workflow are apps'
FLUX_NAMESPACE = "flux-system"
SOURCE_NAME = "manifests"


def apps_dir(cluster: Cluster) -> str:
    return f"clusters/{cluster.name}/apps"


def argocd_cluster_files(c: Conventions, cluster: Cluster) -> dict[str, str]:
    root = {
        "apiVersion": ARGOCD_API,
        "kind": "Application",
        "metadata": {
            "name": f"{cluster.name}-root",
            "namespace": c.argocd_namespace,
            "finalizers": [FINALIZER],
        },
        "spec": {
            "project": f"{cluster.name}-root",
            "source": {"repoURL": c.repo_url, "targetRevision": c.branch, "path": apps_dir(cluster)},
            "destination": {"server": IN_CLUSTER, "namespace": c.argocd_namespace},
            "syncPolicy": {"automated": {"prune": True, "selfHeal": True}},
        },
    }
    comment = _root_comment(cluster, "kubectl apply -n argocd -f")
    root_file = to_yaml(root_project(c, cluster), comment) + "---\n" + to_yaml(root)
    return {
        f"clusters/{cluster.name}/root.yaml": root_file,
        f"{apps_dir(cluster)}/project.yaml": to_yaml(
            cluster_project(c, cluster), "Keeps every app of this cluster on this cluster."
        ),
    }


def cluster_project(c: Conventions, cluster: Cluster) -> dict[str, Any]:
    """The children's project: this repo, that cluster, Namespace the only cluster-scoped kind; not Argo CD's
    namespace nor the cluster's kube-* ones (deny entries, Argo CD >= 2.5), and no Argo CD objects, which
    Argo CD would reconcile again outside this project."""
    server = cluster.server
    return {
        "apiVersion": ARGOCD_API,
        "kind": "AppProject",
        "metadata": {"name": cluster.name, "namespace": c.argocd_namespace},
        "spec": {
            "description": f"Apps of cluster {cluster.name}: this repo only, that cluster only",
            "sourceRepos": [c.repo_url],
            "destinations": [
                {"server": server, "namespace": f"!{c.argocd_namespace}"},
                {"server": server, "namespace": "!kube-*"},
                {"server": server, "namespace": "*"},
            ],
            "clusterResourceWhitelist": [{"group": "", "kind": "Namespace"}],
            "namespaceResourceBlacklist": [{"group": "argoproj.io", "kind": kind} for kind in ARGOCD_KINDS],
        },
    }


def root_project(c: Conventions, cluster: Cluster) -> dict[str, Any]:
    """The root's own project: what a merge into apps/ can make it apply is Applications and AppProjects in
    Argo CD's namespace, not any object anywhere (Argo CD's default project allows everything)."""
    return {
        "apiVersion": ARGOCD_API,
        "kind": "AppProject",
        "metadata": {"name": f"{cluster.name}-root", "namespace": c.argocd_namespace},
        "spec": {
            "description": f"The root of {cluster.name}: the Applications in {apps_dir(cluster)}/ only",
            "sourceRepos": [c.repo_url],
            "destinations": [{"server": IN_CLUSTER, "namespace": c.argocd_namespace}],
            "clusterResourceWhitelist": [],
            "namespaceResourceWhitelist": [
                {"group": "argoproj.io", "kind": "Application"},
                {"group": "argoproj.io", "kind": "AppProject"},
            ],
        },
    }


def flux_cluster_files(c: Conventions, cluster: Cluster) -> dict[str, str]:
    source = {
        "apiVersion": "source.toolkit.fluxcd.io/v1",
        "kind": "GitRepository",
        "metadata": {"name": SOURCE_NAME, "namespace": FLUX_NAMESPACE},
        "spec": {
            "interval": "1m",
            "url": c.repo_url,
            "ref": {"branch": c.branch},
            "secretRef": {"name": "manifests-auth"},
        },
    }
    apps = _flux_kustomization("apps", f"./{apps_dir(cluster)}")
    readme = f"# {apps_dir(cluster)}\n\nOne Flux Kustomization per app and environment of {cluster.name}.\n"
    return {
        f"clusters/{cluster.name}/source.yaml": to_yaml(source, _root_comment(cluster, "kubectl apply -f")),
        f"clusters/{cluster.name}/apps.yaml": to_yaml(
            apps, "Reconciles every app of this cluster from apps/."
        ),
        f"{apps_dir(cluster)}/README.md": readme,
    }


def reserved_names(c: Conventions) -> set[str]:
    """Names a child may not take: a root's (the child's spec would replace it) and the AppProject's file."""
    if c.engine == "flux":
        return {"apps"}  # the root Kustomization, in the children's namespace
    return {f"{cluster.name}-root" for cluster in c.clusters} | {"project"}  # apps/project.yaml


def agent_config(c: Conventions) -> dict[str, str]:
    if not c.agent:
        return {}
    config: dict[str, Any] = {"ci_access": {"groups": [{"id": group} for group in c.ci_access_groups]}}
    if c.engine == "flux":
        config["flux"] = {"webhook_receiver_url": "http://webhook-receiver.flux-system.svc.cluster.local"}
    comment = "The GitLab agent for Kubernetes: which CI/CD jobs may use it (ci_access)."
    return {f".gitlab/agents/{c.agent}/config.yaml": to_yaml(config, comment)}


def child(c: Conventions, app: str, env: str, overlay: str) -> tuple[str, str]:
    """The object that makes the cluster run `overlay`: an Application (Argo CD) or a Kustomization (Flux)."""
    cluster, name = c.cluster_of(env), c.app_name(app, env)
    if c.engine == "flux":
        child = _flux_kustomization(name, f"./{overlay}", reconciler_name(env))
        return f"{apps_dir(cluster)}/{name}.yaml", to_yaml(child)
    application = {
        "apiVersion": ARGOCD_API,
        "kind": "Application",
        "metadata": {"name": name, "namespace": c.argocd_namespace, "finalizers": [FINALIZER]},
        "spec": {
            "project": cluster.name,
            "source": {"repoURL": c.repo_url, "targetRevision": c.branch, "path": overlay},
            "destination": {"server": cluster.server, "namespace": env},
            "syncPolicy": {
                "automated": {"prune": True, "selfHeal": True},
                "syncOptions": ["CreateNamespace=true"],
            },
        },
    }
    return f"{apps_dir(cluster)}/{name}.yaml", to_yaml(application)


def reconciler_name(env: str) -> str:
    """The service account a Flux child of `env` reconciles as (flux_tenancy writes it and its rights)."""
    return f"gitops-ci-{env}"


def _flux_kustomization(name: str, path: str, account: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "interval": "10m",
        "path": path,
        "prune": True,
        "sourceRef": {"kind": "GitRepository", "name": SOURCE_NAME},
    }
    if account is not None:  # a child: it retries a failed apply (its RoleBinding not there yet) sooner
        spec |= {"retryInterval": "1m", "serviceAccountName": account}
    return {
        "apiVersion": "kustomize.toolkit.fluxcd.io/v1",
        "kind": "Kustomization",
        "metadata": {"name": name, "namespace": FLUX_NAMESPACE},
        "spec": spec,
    }


def _root_comment(cluster: Cluster, apply: str) -> str:
    return (
        f"The one object applied by hand, once, for cluster {cluster.name}; everything else it reaches from\n"
        f"this repo:  {apply} clusters/{cluster.name}/{'root' if 'argocd' in apply else 'source'}.yaml"
    )
