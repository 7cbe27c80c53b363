"""The Flux objects clusters/<cluster>/apps/ may hold (see root_objects): children that reconcile an overlay
of this repo as their environment's account, and each environment's Namespace, account and RoleBinding in
the shape new-app writes them (onboard/flux_tenancy). The environments are the cluster's in gitops-ci.yaml,
never a namespace the cluster or Flux owns: a merge request that adds `flux-system` as an environment gets
no binding there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from gitops_ci.onboard.conventions import Cluster, Conventions
from gitops_ci.onboard.flux_tenancy import (
    earlier_namespace,
    flux_namespace,
    reconciler_account,
    reconciler_binding,
)
from gitops_ci.onboard.manifests import FLUX_NAMESPACE, SOURCE_NAME, apps_dir, reconciler_name, reserved_names
from gitops_ci.validate.findings import UNCONFINED_CHILD, Finding, Severity
from gitops_ci.validate.objects import ManifestFiles, mapping_of

# postBuild.substituteFrom and decryption read Secrets with the controller's own client, targetNamespace
# moves everything elsewhere, kubeConfig reaches another cluster, dependsOn waits on anything: a child sets
# only these
_CHILD_FIELDS = frozenset(
    [
        "interval",
        "retryInterval",
        "timeout",
        "path",
        "prune",
        "sourceRef",
        "serviceAccountName",
        "wait",
        "suspend",
    ]
)


_NO_ACCOUNT = (
    "it reconciles with kustomize-controller's own rights, anything anywhere: run gitops-ci new-app --update "
    "for an app of each environment (it writes <env>.reconciler.yaml), then add serviceAccountName: "
    "gitops-ci-<env> to every child in the same commit"
)
_NO_LABEL = (
    "it has no Pod Security label, so its apps may run privileged pods: add the label "
    "pod-security.kubernetes.io/enforce: baseline (edit it: a deleted file is a pruned namespace)"
)


def child_problems(
    doc: dict[str, Any], c: Conventions, cluster: Cluster, has_accounts: bool
) -> Iterator[str]:
    """`has_accounts`: whether new-app wrote the environments' accounts in this cluster (see `confined`)."""
    spec, metadata = mapping_of(doc.get("spec")), mapping_of(doc.get("metadata"))
    if metadata.get("namespace") != FLUX_NAMESPACE or metadata.get("name") in reserved_names(c):
        # elsewhere its sourceRef and account resolve in another namespace; named `apps`, it replaces the root
        yield f"a Kustomization here lives in {FLUX_NAMESPACE} and is not named like the cluster's root"
    ref = mapping_of(spec.get("sourceRef"))
    origin = (ref.get("kind"), ref.get("name"), ref.get("namespace", FLUX_NAMESPACE))
    if origin != ("GitRepository", SOURCE_NAME, FLUX_NAMESPACE):
        yield f"a Kustomization here must reconcile GitRepository {SOURCE_NAME} (this repo), here"
    extra = sorted(str(key)[:40] for key in spec if key not in _CHILD_FIELDS)
    if extra:
        yield f"a Kustomization here sets only {', '.join(sorted(_CHILD_FIELDS))}; not {', '.join(extra)}"
    found = c.overlay_of(str(spec.get("path", "")))
    env = found[1] if found else None
    if env is None or env not in environments(c, cluster):
        # a base or another directory: its render is not checked as an app's (layout/engine-object)
        yield f"a Kustomization here runs the overlay of an app in an environment of {cluster.name}"
    account = spec.get("serviceAccountName")
    earlier = account is None and not has_accounts  # unconfined_children reports it
    if env is not None and not earlier and account != reconciler_name(env):
        yield f"a Kustomization of {env} reconciles as {reconciler_name(env)}, confined to namespace {env}"


def access_problems(doc: dict[str, Any], kind: str, c: Conventions, cluster: Cluster) -> Iterator[str]:
    metadata = mapping_of(doc.get("metadata"))
    envs = environments(c, cluster)
    if kind == "Namespace":
        env = str(metadata.get("name"))
        expected = [flux_namespace(env), earlier_namespace(env)]
    elif kind == "ServiceAccount":
        env = str(metadata.get("name")).removeprefix(reconciler_name(""))
        expected = [reconciler_account(env)]
    else:
        env = str(metadata.get("namespace"))
        expected = [reconciler_binding(env)]
    if env not in envs or doc not in expected:
        yield (
            f"a {kind} here is one new-app writes for an environment of {cluster.name} "
            f"({', '.join(sorted(envs)) or 'none'}), in that shape"
        )


def unconfined_children(files: ManifestFiles, c: Conventions) -> list[Finding]:
    """What an earlier version wrote: children without an account, in a cluster that has none (they apply
    with kustomize-controller's own rights), and namespaces without their Pod Security label. A rule of its
    own, so that such a repo can --ignore it until new-app has added the accounts and the children name them;
    once a cluster has them, a child without one is a foreign object."""
    if c.engine != "flux":
        return []
    out = []
    for cluster in c.clusters:
        has_accounts = confined(files, cluster)
        for path, doc in _documents(files, cluster):
            kind, name = doc.get("kind"), str(mapping_of(doc.get("metadata")).get("name", ""))[:60]
            problem = None
            if kind == "Kustomization" and "serviceAccountName" not in mapping_of(doc.get("spec")):
                if not has_accounts:
                    problem = _NO_ACCOUNT
            elif kind == "Namespace" and doc == earlier_namespace(name):
                problem = _NO_LABEL
            if problem:
                shown = f"{kind}/{name}"
                out.append(Finding(Severity.ERROR, UNCONFINED_CHILD, path, problem, object=shown))
    return out


def environments(c: Conventions, cluster: Cluster) -> set[str]:
    return {e.name for e in c.environments if e.cluster == cluster.name and not c.is_system_namespace(e.name)}


def confined(files: ManifestFiles, cluster: Cluster) -> bool:
    """Whether new-app has written the environments' accounts in this cluster (then every child names one)."""
    prefix = f"{apps_dir(cluster)}/"
    return any(f.startswith(prefix) and f.endswith(".reconciler.yaml") for f in files.layout.files)


def _documents(files: ManifestFiles, cluster: Cluster) -> Iterator[tuple[str, dict[str, Any]]]:
    prefix = f"{apps_dir(cluster)}/"
    for path in sorted(f for f in files.layout.files if f.startswith(prefix) and f.endswith(".yaml")):
        for doc in files.documents(path):
            yield path, doc
