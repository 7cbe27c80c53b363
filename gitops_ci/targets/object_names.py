"""Kubernetes names as options give them (`--flux-kustomization NAMESPACE/NAME`, `--app-namespace`), checked
before any request: a namespace is a DNS-1123 label, an object's name a DNS-1123 subdomain."""

from __future__ import annotations

import re

from gitops_ci.errors import ConfigurationError

_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_SUBDOMAIN = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*")


def parse_object_ref(value: str, option: str) -> tuple[str, str]:
    """`NAMESPACE/NAME` → (namespace, name)."""
    namespace, slash, name = value.partition("/")
    if not slash or not namespace or not name or "/" in name:
        raise ConfigurationError(f"{option} {value[:80]!r} must be NAMESPACE/NAME, e.g. flux-system/apps")
    check_namespace(namespace, option)
    if len(name) > 253 or not _SUBDOMAIN.fullmatch(name):
        raise ConfigurationError(
            f"{option}: {name[:80]!r} is not a Kubernetes object name (DNS-1123 subdomain)"
        )
    return namespace, name


def check_namespace(value: str, option: str) -> str:
    if not _LABEL.fullmatch(value):
        raise ConfigurationError(f"{option}: {value[:80]!r} is not a Kubernetes namespace (DNS-1123 label)")
    return value
