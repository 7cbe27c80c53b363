"""The files of an app that new-app writes: its base (a Deployment and a Service that pass the restricted Pod
Security Standard) and one overlay per environment that holds only what differs."""

from __future__ import annotations

import posixpath
from typing import Any

from gitops_ci.images.reference import ImageUpdate
from gitops_ci.onboard.emit import to_yaml


def base_files(base: str, app: str, image: ImageUpdate, port: int) -> dict[str, str]:
    labels = {"app.kubernetes.io/name": app}
    probe = {"tcpSocket": {"port": "http"}, "periodSeconds": 10}
    container = {
        "name": app,
        "image": app,  # replaced by the images entry below
        "ports": [{"name": "http", "containerPort": port}],
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "readinessProbe": probe,
        "livenessProbe": {**probe, "initialDelaySeconds": 10},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    pod_security = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": app, "labels": labels},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"securityContext": pod_security, "containers": [container]},
            },
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": app, "labels": labels},
        "spec": {"selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]},
    }
    kustomization = _kustomization(resources=["deployment.yaml", "service.yaml"], images=[_image(app, image)])
    return {
        f"{base}/deployment.yaml": to_yaml(deployment),
        f"{base}/service.yaml": to_yaml(service),
        f"{base}/kustomization.yaml": to_yaml(kustomization),
    }


def overlay_file(
    overlay: str, base: str, app: str, env: str, image: ImageUpdate, replicas: int | None
) -> dict[str, str]:
    """An overlay holds only what differs: the namespace, the image and, when asked, the replicas."""
    extra: dict[str, Any] = {"replicas": [{"name": app, "count": replicas}]} if replicas is not None else {}
    kustomization = _kustomization(
        namespace=env, resources=[posixpath.relpath(base, overlay)], images=[_image(app, image)], **extra
    )
    return {f"{overlay}/kustomization.yaml": to_yaml(kustomization)}


def _kustomization(**fields: Any) -> dict[str, Any]:
    return {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", **fields}


def _image(app: str, image: ImageUpdate) -> dict[str, str]:
    return {"name": app, **image.apply({})}
