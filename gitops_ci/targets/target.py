"""Where a change goes after it lands, as one value: which kind of target, and its option's value.

Every command and setting that names targets (sync, wait, deploy --sync/--wait) chooses through `choose`,
and `sync` and `wait` dispatch on `Target.kind` through one table each.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from gitops_ci.errors import ConfigurationError

TargetKind = Literal["argocd-webhook", "argocd-server", "argocd-kube", "flux-receiver", "flux-kustomization"]
SYNC_KINDS: tuple[TargetKind, ...] = (
    "argocd-webhook",
    "argocd-server",
    "flux-receiver",
    "flux-kustomization",
)
WAIT_KINDS: tuple[TargetKind, ...] = ("argocd-server", "argocd-kube", "flux-kustomization")
# A deploy that may sync several ways takes the cheapest: a webhook needs no token and no API round trip.
SYNC_PREFERENCE: tuple[TargetKind, ...] = (
    "argocd-webhook",
    "flux-receiver",
    "argocd-server",
    "flux-kustomization",
)


# The settings field that names each kind: SyncSettings, WaitSettings and FollowUpSettings all use these.
FIELDS: dict[TargetKind, str] = {
    "argocd-webhook": "argocd_webhook",
    "argocd-server": "argocd_server",
    "argocd-kube": "argocd_kube",
    "flux-receiver": "flux_receiver",
    "flux-kustomization": "flux_kustomizations",
}


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    value: object  # the URL, the NAMESPACE/NAME list, or True for --argocd-kube


def given(settings: object) -> dict[TargetKind, object]:
    """Every kind the settings object names, with its value (unset ones falsy)."""
    return {kind: getattr(settings, field, None) for kind, field in FIELDS.items()}


def choose(given: Mapping[TargetKind, object], allowed: Sequence[TargetKind], message: str) -> Target:
    """The one `allowed` kind set in `given`; none or several is bad input: `message` and the options."""
    chosen = [Target(kind, value) for kind, value in given.items() if kind in allowed and value]
    if len(chosen) != 1:
        options = ", ".join(f"--{kind}" for kind in allowed)
        got = ", ".join(f"--{t.kind}" for t in chosen) or "none"
        raise ConfigurationError(f"{message} {options} (got {got})")
    return chosen[0]


def preferred(
    given: Mapping[TargetKind, object], order: Sequence[TargetKind] = SYNC_PREFERENCE
) -> Target | None:
    """The first kind in `order` that is set in `given`."""
    return next((Target(kind, given[kind]) for kind in order if given.get(kind)), None)
