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
from gitops_ci.targets.fields import flag, items, number, obj, text, texts

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
    namespace = f"{ns}/" if (ns := text(item, "namespace")) else ""
    return f"{text(item, 'kind') or '?'} {namespace}{text(item, 'name') or '?'}"


def explain_application(status: Mapping[str, Any]) -> tuple[str, ...]:
    """What Argo CD says about why an app is not synced and healthy, most specific first."""
    out: list[str] = []
    operation = obj(status, "operationState")
    phase, message = text(operation, "phase"), text(operation, "message")
    if phase not in (None, "Succeeded") and message:
        out.append(f"operation {phase}: {message}")
    for item in items(operation, "syncResult", "resources"):
        if text(item, "status") == "SyncFailed" or text(item, "hookPhase") in ("Failed", "Error"):
            out.append(f"{_resource(item)}: {text(item, 'message') or 'sync failed'}")
    # Argo CD 2.x; 3.x leaves the app's health message empty and reports per resource
    if health := text(status, "health", "message"):
        out.append(f"health: {health}")
    for item in items(status, "resources"):
        state, detail = text(item, "health", "status"), text(item, "health", "message")
        if state not in (None, "Healthy"):
            out.append(f"{_resource(item)}: {state}" + (f": {detail}" if detail else ""))
    out.extend(f"{text(c, 'type')}: {text(c, 'message')}" for c in items(status, "conditions"))
    return tuple(dict.fromkeys(out))[:10]


def evaluate_application(
    name: str, app: Mapping[str, Any], wanted: str, contains: ContainsCheck | None = None
) -> TargetStatus:
    status = obj(app, "status")
    sync = obj(status, "sync")
    revisions = [r for r in [text(sync, "revision"), *texts(sync, "revisions")] if r]
    sync_status = text(sync, "status") or "Unknown"
    health = text(status, "health", "status") or "Unknown"
    operation = obj(status, "operationState")
    phase = text(operation, "phase")
    op_revision = text(operation, "syncResult", "revision") or text(
        operation, "operation", "sync", "revision"
    )
    summary = f"{sync_status}, {health}" + (f", operation {phase}" if phase else "")
    at_revision = any(revision_matches(r, wanted, contains) for r in revisions)
    running = phase in ("Running", "Terminating") or bool(obj(app, "operation"))

    def result(state: str) -> TargetStatus:
        messages = explain_application(status) if state != "ready" else ()
        return TargetStatus(
            name, "argocd-application", state, revisions[0] if revisions else None, summary, messages
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
    kustomization: Mapping[str, Any],
    wanted: str,
    contains: ContainsCheck | None = None,
    source: Mapping[str, Any] | None = None,
) -> TargetStatus:
    """`source` (its GitRepository, when readable) only explains: Flux applies what the source fetched."""
    status = obj(kustomization, "status")
    ready = flux.condition(kustomization, "Ready")
    ready_status, ready_reason = text(ready, "status"), text(ready, "reason")
    applied, attempted = text(status, "lastAppliedRevision"), text(status, "lastAttemptedRevision")
    observed = number(status, "observedGeneration")
    current = observed is not None and observed >= (number(kustomization, "metadata", "generation") or 0)
    summary = f"Ready={ready_status or 'Unknown'}" + (f" {ready_reason}" if ready_reason else "")
    messages = [
        _condition(c)
        for c in items(status, "conditions")
        if (text(c, "type"), text(c, "status")) != ("Ready", "True")
    ]
    note = ""
    if source is not None:
        source_name = f"{text(source, 'kind') or 'source'} {_namespaced(source)}"
        artifact = text(source, "status", "artifact", "revision")
        note = f"source {source_name} at {short(artifact)}" if artifact else f"source {source_name}"
        source_ready = flux.condition(source, "Ready")
        if text(source_ready, "status") != "True":
            messages.append(
                f"{source_name}: {_condition(source_ready)}" if source_ready else f"{source_name}: not ready"
            )

    def result(state: str, revision: str | None = applied, extra: tuple[str, ...] = ()) -> TargetStatus:
        explained = extra + tuple(messages) if state != "ready" else ()
        return TargetStatus(name, "flux-kustomization", state, revision, summary, explained, note)

    if flag(kustomization, "spec", "suspend"):
        namespace, _, short_name = name.rpartition("/")
        hint = f"suspended: resume it with `flux resume kustomization {short_name} -n {namespace}`"
        return result("failed", extra=(hint,))
    if current and ready_status == "True" and revision_matches(applied, wanted, contains):
        return result("ready")
    if (
        current
        and ready_status == "False"
        and ready_reason not in ("DependencyNotReady", "Progressing")
        and revision_matches(attempted, wanted, contains)
    ):
        return result("failed", attempted)
    return result("waiting")


def _condition(item: Mapping[str, Any]) -> str:
    reason = f" {r}" if (r := text(item, "reason")) else ""
    message = f": {m}" if (m := text(item, "message")) else ""
    return f"{text(item, 'type')}={text(item, 'status')}{reason}{message}"


def _namespaced(document: Mapping[str, Any]) -> str:
    return f"{text(document, 'metadata', 'namespace') or '?'}/{text(document, 'metadata', 'name') or '?'}"
