"""What a Flux cluster holds for each environment, applied by the cluster's root Kustomization beside the
children (a dot in a file's name: never a child's).

Flux creates no namespace (Argo CD's children say CreateNamespace=true), and a Kustomization without
`serviceAccountName` applies with kustomize-controller's own rights: anything, anywhere. So each environment
gets its namespace, labelled for the baseline Pod Security Standard (no privileged or host pods), and a
service account of its own bound to the `admin` ClusterRole in that namespace only: what an environment's
overlays apply cannot reach another environment, the cluster's scope, or the namespace object and its Pod
Security labels (the `admin` role reads namespaces, `cluster-admin` bound in a namespace could relabel or
delete its own). Argo CD's children get theirs from the cluster's AppProject: that cluster, without Argo CD's
and the kube-* namespaces; validate keeps them in their environment's namespace.
"""

from __future__ import annotations

from typing import Any

from gitops_ci.onboard.conventions import Conventions
from gitops_ci.onboard.emit import to_yaml
from gitops_ci.onboard.manifests import FLUX_NAMESPACE, apps_dir, reconciler_name

RBAC_API = "rbac.authorization.k8s.io"
POD_SECURITY = {"pod-security.kubernetes.io/enforce": "baseline"}


def environment_files(c: Conventions, env: str) -> dict[str, str]:
    if c.engine != "flux":
        return {}
    directory = apps_dir(c.cluster_of(env))
    rights = to_yaml(reconciler_account(env), f"The account the apps of {env} reconcile as.")
    rights += "---\n" + to_yaml(reconciler_binding(env), f"What they may change: namespace {env} only.")
    return {
        f"{directory}/{env}.namespace.yaml": to_yaml(
            flux_namespace(env), f"The namespace of environment {env}, where its apps' overlays put them."
        ),
        f"{directory}/{env}.reconciler.yaml": rights,
    }


def flux_namespace(env: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": env, "labels": dict(POD_SECURITY)}}


def earlier_namespace(env: str) -> dict[str, Any]:
    """The namespace as an earlier version wrote it: no Pod Security label."""
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": env}}


def reconciler_account(env: str) -> dict[str, Any]:
    name = reconciler_name(env)
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": FLUX_NAMESPACE},
    }


def reconciler_binding(env: str) -> dict[str, Any]:
    name = reconciler_name(env)
    return {
        "apiVersion": f"{RBAC_API}/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": env},
        "roleRef": {"apiGroup": RBAC_API, "kind": "ClusterRole", "name": "admin"},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": FLUX_NAMESPACE}],
    }
