"""Pure status evaluation for `gitops-ci wait`: an Argo CD Application or a Flux Kustomization document in,
a `TargetStatus` out (waiting, ready or failed, with the messages that explain it). No I/O.

Argo CD: ready is `sync.status == Synced` at the revision with `health.status == Healthy` and no operation
running; failed is a Failed/Error sync operation for the revision, or Degraded once synced at it. Argo CD 3
no longer fills the app-level `health.message`, so the reasons come from `resources[].health` too.
Flux: ready is `lastAppliedRevision` at the revision with Ready=True for the current generation; failed is
Ready=False after an attempt at the revision (`lastAttemptedRevision`), or a suspended Kustomization.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gitops_ci.targets import flux

ContainsCheck = Callable[[str], bool]
"""Whether the commit given (a later revision the cluster reports) contains the awaited one."""

_SHA_IN = re.compile(r"(?:sha1|sha256):([0-9a-f]+)$|/([0-9a-f]{7,64})$|^([0-9a-f]{7,64})$")


# --------------------------------------------------------------------------- pure status evaluation


@dataclass(frozen=True)
class TargetStatus:
    name: str
    kind: str  # "argocd-application" or "flux-kustomization"
    state: str  # "waiting", "ready" or "failed"
    revision: str | None
    status: str  # one line: "Synced, Healthy, operation Succeeded" / "Ready=True ReconciliationSucceeded"
    messages: tuple[str, ...] = ()
    note: str = ""  # e.g. what the Kustomization's source holds

    def at(self) -> str:
        return f" at {short(self.revision)}" if self.revision else ""

    def line(self) -> str:
        """The progress line: it changes when the state does, not on every poll."""
        return f"{self.name}: {self.status}{self.at()}" + (f"; {self.note}" if self.note else "")

    def details(self) -> str:
        return "".join(f"\n  {m}" for m in self.messages)


def short(revision: str) -> str:
    sha = revision_sha(revision)
    return revision if sha is None else revision.replace(sha, sha[:12])


def revision_sha(reported: str | None) -> str | None:
    """The commit in `4f1c…`, `main@sha1:4f1c…` (Flux v2) or `main/4f1c…` (Flux v1)."""
    match = _SHA_IN.search((reported or "").lower())
    return next((g for g in match.groups() if g), None) if match else None


def revision_matches(reported: str | None, wanted: str, contains: ContainsCheck | None = None) -> bool:
    sha = revision_sha(reported)
    if sha is None:
        return False
    wanted = wanted.lower()
    if sha == wanted or (len(wanted) >= 7 and sha.startswith(wanted)):
        return True
    return contains is not None and contains(sha)


def _resource(item: Mapping[str, Any]) -> str:
    namespace = f"{item['namespace']}/" if item.get("namespace") else ""
    return f"{item.get('kind', '?')} {namespace}{item.get('name', '?')}"


def explain_application(status: Mapping[str, Any]) -> tuple[str, ...]:
    """What Argo CD says about why an app is not synced and healthy, most specific first."""
    out: list[str] = []
    operation = status.get("operationState") or {}
    if operation.get("phase") not in (None, "Succeeded") and operation.get("message"):
        out.append(f"operation {operation['phase']}: {operation['message']}")
    for item in (operation.get("syncResult") or {}).get("resources") or []:
        if item.get("status") == "SyncFailed" or item.get("hookPhase") in ("Failed", "Error"):
            out.append(f"{_resource(item)}: {item.get('message', 'sync failed')}")
    health = status.get("health") or {}
    if health.get("message"):  # Argo CD 2.x; 3.x leaves it empty and reports per resource
        out.append(f"health: {health['message']}")
    for item in status.get("resources") or []:
        resource_health = item.get("health") or {}
        if resource_health.get("status") not in (None, "Healthy"):
            message = resource_health.get("message")
            out.append(
                f"{_resource(item)}: {resource_health['status']}" + (f": {message}" if message else "")
            )
    out.extend(f"{c.get('type')}: {c.get('message')}" for c in status.get("conditions") or [])
    return tuple(dict.fromkeys(out))[:10]


def evaluate_application(
    name: str, app: Mapping[str, Any], wanted: str, contains: ContainsCheck | None = None
) -> TargetStatus:
    status = app.get("status") or {}
    sync = status.get("sync") or {}
    revisions = [r for r in [sync.get("revision"), *(sync.get("revisions") or [])] if r]
    sync_status = sync.get("status") or "Unknown"
    health = (status.get("health") or {}).get("status") or "Unknown"
    operation = status.get("operationState") or {}
    phase = operation.get("phase")
    op_revision = (operation.get("syncResult") or {}).get("revision") or (
        (operation.get("operation") or {}).get("sync") or {}
    ).get("revision")
    text = f"{sync_status}, {health}" + (f", operation {phase}" if phase else "")
    at_revision = any(revision_matches(r, wanted, contains) for r in revisions)
    running = phase in ("Running", "Terminating") or bool(app.get("operation"))

    def result(state: str) -> TargetStatus:
        messages = explain_application(status) if state != "ready" else ()
        return TargetStatus(
            name, "argocd-application", state, revisions[0] if revisions else None, text, messages
        )

    if phase in ("Failed", "Error") and revision_matches(op_revision, wanted, contains):
        return result("failed")
    if at_revision and sync_status == "Synced" and not running:
        if health == "Healthy":
            return result("ready")
        if health == "Degraded":
            return result("failed")
    return result("waiting")


def evaluate_kustomization(
    name: str,
    obj: Mapping[str, Any],
    wanted: str,
    contains: ContainsCheck | None = None,
    source: Mapping[str, Any] | None = None,
) -> TargetStatus:
    """`source` (its GitRepository, when readable) only explains: Flux applies what the source fetched."""
    status = obj.get("status") or {}
    ready = flux.condition(obj, "Ready")
    applied, attempted = status.get("lastAppliedRevision"), status.get("lastAttemptedRevision")
    generation = (obj.get("metadata") or {}).get("generation", 0)
    current = status.get("observedGeneration", -1) >= generation
    text = f"Ready={ready.get('status', 'Unknown')}" + (f" {ready['reason']}" if ready.get("reason") else "")
    messages = [
        _condition(c)
        for c in status.get("conditions") or []
        if (c.get("type"), c.get("status")) != ("Ready", "True")
    ]
    note = ""
    if source is not None:
        source_name = f"{source.get('kind', 'source')} {_namespaced(source)}"
        artifact = ((source.get("status") or {}).get("artifact") or {}).get("revision")
        note = f"source {source_name} at {short(artifact)}" if artifact else f"source {source_name}"
        source_ready = flux.condition(source, "Ready")
        if source_ready.get("status") != "True":
            messages.append(
                f"{source_name}: {_condition(source_ready)}" if source_ready else f"{source_name}: not ready"
            )

    def result(state: str, revision: str | None = applied, extra: tuple[str, ...] = ()) -> TargetStatus:
        explained = extra + tuple(messages) if state != "ready" else ()
        return TargetStatus(name, "flux-kustomization", state, revision, text, explained, note)

    if (obj.get("spec") or {}).get("suspend"):
        namespace, _, short_name = name.rpartition("/")
        hint = f"suspended: resume it with `flux resume kustomization {short_name} -n {namespace}`"
        return result("failed", extra=(hint,))
    if current and ready.get("status") == "True" and revision_matches(applied, wanted, contains):
        return result("ready")
    if (
        current
        and ready.get("status") == "False"
        and ready.get("reason") not in ("DependencyNotReady", "Progressing")
        and revision_matches(attempted, wanted, contains)
    ):
        return result("failed", attempted)
    return result("waiting")


def _condition(item: Mapping[str, Any]) -> str:
    reason = f" {item['reason']}" if item.get("reason") else ""
    message = f": {item['message']}" if item.get("message") else ""
    return f"{item.get('type')}={item.get('status')}{reason}{message}"


def _namespaced(obj: Mapping[str, Any]) -> str:
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace', '?')}/{metadata.get('name', '?')}"
