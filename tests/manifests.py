"""A manifest repo in the seed's layout, as a dict of files, for tests and benchmarks."""

from __future__ import annotations

OVERLAY = """\
# {app} in {env}
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: {env}
resources:
  - ../../base
images:
  - name: {app} # renovate: datasource=docker depName=registry.example.com/shop/{app}
    newName: registry.example.com/shop/{app}
    newTag: "1.0.0"
"""

BASE = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - deployment.yaml
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {app}
spec:
  selector:
    matchLabels: {{app: {app}}}
  template:
    metadata:
      labels: {{app: {app}}}
    spec:
      containers:
        - name: {app}
          image: {app}
"""

ENVIRONMENTS = ("dev", "staging", "prod")


def manifest_files(apps: list[str] | tuple[str, ...], envs: tuple[str, ...] = ENVIRONMENTS) -> dict[str, str]:
    files = {"README.md": "# manifests\n"}
    for app in apps:
        files[f"kustomize/{app}/base/kustomization.yaml"] = BASE
        files[f"kustomize/{app}/base/deployment.yaml"] = DEPLOYMENT.format(app=app)
        for env in envs:
            files[f"kustomize/{app}/overlays/{env}/kustomization.yaml"] = OVERLAY.format(app=app, env=env)
    return files


def overlay(app: str, env: str) -> str:
    return f"kustomize/{app}/overlays/{env}/kustomization.yaml"
