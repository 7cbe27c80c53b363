"""Flux notification-controller receiver double (``Receiver`` of type ``gitlab``).

Mirrors fluxcd/notification-controller ``internal/server/receiver_handlers.go``:

* the webhook path is ``/hook/`` + hex sha256 of ``token + name + namespace``
  (``Receiver.GetWebhookPath``) and is looked up by the raw request URI, so a query string
  means 404; any HTTP method is accepted;
* suspended or not-ready receiver -> 503; a wrong ``X-Gitlab-Token`` or an ``X-Gitlab-Event``
  outside ``spec.events`` (case-insensitive; empty list = any event) -> **400**, not 401;
* each ``spec.resources`` entry is annotated with ``reconcile.fluxcd.io/requestedAt``; an entry
  that cannot be annotated (missing object, no default apiVersion for its kind) -> 500;
* every answer has an empty body.

Hand ``annotate=kube_api.request_reconcile`` to make the annotations land on the kube double.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from servers.argo_status import LoopbackServer, Request, Response

WEBHOOK_PATH_PREFIX = "/hook/"
REQUESTED_AT_ANNOTATION = "reconcile.fluxcd.io/requestedAt"
# defaultFluxAPIVersions: kinds that may omit apiVersion (Kustomization is not one of them)
DEFAULT_API_VERSIONS = {
    "Bucket": "source.toolkit.fluxcd.io/v1",
    "HelmChart": "source.toolkit.fluxcd.io/v1",
    "HelmRepository": "source.toolkit.fluxcd.io/v1",
    "GitRepository": "source.toolkit.fluxcd.io/v1",
    "OCIRepository": "source.toolkit.fluxcd.io/v1beta2",
    "ImageRepository": "image.toolkit.fluxcd.io/v1beta2",
}
_STARTED = time.monotonic()


@dataclass(frozen=True)
class ResourceRef:
    kind: str
    name: str
    namespace: str | None = None  # defaults to the receiver's namespace
    api_version: str | None = None  # defaults per DEFAULT_API_VERSIONS


@dataclass(frozen=True)
class ReconcileRequest:
    api_version: str
    kind: str
    namespace: str
    name: str
    requested_at: str
    receiver: str  # "<namespace>/<name>" of the receiver that asked


Annotator = Callable[[ReconcileRequest], None]
"""Sets the annotation on the object; raises ``LookupError`` when the object does not exist."""


@dataclass
class Receiver:
    name: str
    resources: tuple[ResourceRef, ...]
    token: str
    namespace: str = "flux-system"
    type: str = "gitlab"
    events: tuple[str, ...] = ("Push Hook", "Tag Push Hook")
    suspend: bool = False
    ready: bool = True

    @property
    def webhook_path(self) -> str:
        digest = hashlib.sha256((self.token + self.name + self.namespace).encode()).hexdigest()
        return WEBHOOK_PATH_PREFIX + digest


def flux_now() -> str:
    """``metav1.Now().String()``: Go's time format, monotonic reading included."""
    now = datetime.now(UTC)
    return f"{now:%Y-%m-%d %H:%M:%S.%f}000 +0000 UTC m=+{time.monotonic() - _STARTED:.9f}"


class FluxReceiverServer(LoopbackServer):
    def __init__(
        self, *, receivers: Sequence[Receiver] = (), annotate: Annotator | None = None, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.annotate = annotate
        self.reconcile_requests: list[ReconcileRequest] = []
        self._receivers: dict[str, Receiver] = {}
        for receiver in receivers:
            self.add_receiver(receiver)

    @property
    def receivers(self) -> list[Receiver]:
        with self.lock:
            return list(self._receivers.values())

    def add_receiver(self, receiver: Receiver) -> Receiver:
        with self.lock:
            self._receivers[receiver.webhook_path] = receiver
        return receiver

    def webhook_url(self, receiver: Receiver | None = None) -> str:
        """Full URL of ``receiver`` (default: the first one registered)."""
        return self.url + (receiver or self.receivers[0]).webhook_path

    @staticmethod
    def new_token() -> str:
        return secrets.token_hex(20)

    def handle(self, request: Request) -> Response:
        if not request.path.startswith(WEBHOOK_PATH_PREFIX):
            return Response.text(404, "404 page not found")
        receiver = self._receivers.get(request.target)
        if receiver is None:
            return Response(404, b"", "text/plain", note="no receiver for this path")
        if receiver.suspend or not receiver.ready:
            return Response(503, b"", "text/plain", note="receiver is suspended or not ready")
        refusal = _validate(receiver, request)
        if refusal is not None:
            return Response(400, b"", "text/plain", note=refusal)
        failures = [error for ref in receiver.resources if (error := self._request_reconcile(receiver, ref))]
        if failures:
            return Response(500, b"", "text/plain", note="; ".join(failures))
        return Response(200, b"", "text/plain")

    def _request_reconcile(self, receiver: Receiver, ref: ResourceRef) -> str | None:
        api_version = ref.api_version or DEFAULT_API_VERSIONS.get(ref.kind)
        if api_version is None:
            return f"apiVersion must be specified for kind '{ref.kind}'"
        request = ReconcileRequest(
            api_version=api_version,
            kind=ref.kind,
            namespace=ref.namespace or receiver.namespace,
            name=ref.name,
            requested_at=flux_now(),
            receiver=f"{receiver.namespace}/{receiver.name}",
        )
        try:
            if self.annotate is not None:
                self.annotate(request)
        except LookupError as exc:
            return f"unable to read {ref.kind} '{request.namespace}/{ref.name}' error: {exc}"
        self.reconcile_requests.append(request)
        return None


def _validate(receiver: Receiver, request: Request) -> str | None:
    if receiver.type == "generic":
        return None
    if receiver.type != "gitlab":
        return f"receiver type '{receiver.type}' is not modelled by this double"
    if request.headers.get("X-Gitlab-Token") != receiver.token:
        return "the X-Gitlab-Token header value does not match the receiver token"
    event = request.headers.get("X-Gitlab-Event") or ""
    if receiver.events and not any(event.casefold() == allowed.casefold() for allowed in receiver.events):
        return f"the GitLab event '{event}' is not authorised"
    return None


# --------------------------------------------------------------------------- Flux controller status
# How kustomize-controller / source-controller report a reconciliation (kustomizations.md,
# "Kustomization Status"): Reconciling=True + Ready=Unknown while working, then Ready=True
# (ReconciliationSucceeded, "Applied revision: <rev>") or Ready=False (reason, message) with
# Reconciling=True/ProgressingWithRetry; lastHandledReconcileAt is written with the result.


@dataclass(frozen=True)
class FluxFailure:
    reason: str = "HealthCheckFailed"
    message: str = (
        "health check failed after 30s: timeout waiting for: [Deployment/apps/web status: 'InProgress']"
    )


def condition(type_: str, status: str, reason: str, message: str) -> dict[str, str]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": _rfc3339(),
    }


def set_conditions(status: dict[str, Any], *conditions: tuple[str, str, str, str]) -> None:
    """Replace the given condition types; a Ready=True result also drops Reconciling."""
    replaced = {c[0] for c in conditions}
    if ("Ready", "True") in {c[:2] for c in conditions}:
        replaced.add("Reconciling")
    kept = [c for c in status.get("conditions", []) if c["type"] not in replaced]
    status["conditions"] = [condition(*c) for c in conditions] + kept


def source_status(revision: str) -> dict[str, Any]:
    """A GitRepository that stored ``revision`` (``<branch>@sha1:<sha>``)."""
    status: dict[str, Any] = {"observedGeneration": 1}
    source_ready(status, revision)
    return status


def kustomization_status(revision: str) -> dict[str, Any]:
    """A Kustomization that applied ``revision``."""
    status: dict[str, Any] = {"observedGeneration": 1}
    kustomization_done(status, revision, None)
    return status


def mark_progressing(status: dict[str, Any]) -> None:
    message = "Reconciliation in progress"
    set_conditions(
        status, ("Reconciling", "True", "Progressing", message), ("Ready", "Unknown", "Progressing", message)
    )


def source_ready(status: dict[str, Any], revision: str) -> bool:
    """GitRepository stored a new artifact; returns whether the revision moved."""
    moved = bool(status.get("artifact", {}).get("revision") != revision)
    status["artifact"] = {"revision": revision, "lastUpdateTime": _rfc3339()}
    set_conditions(status, ("Ready", "True", "Succeeded", f"stored artifact for revision '{revision}'"))
    return moved


def kustomization_done(status: dict[str, Any], revision: str, failure: FluxFailure | None) -> None:
    status["lastAttemptedRevision"] = revision
    if failure is not None:
        set_conditions(
            status,
            ("Ready", "False", failure.reason, failure.message),
            ("Reconciling", "True", "ProgressingWithRetry", failure.message),
        )
    else:
        status["lastAppliedRevision"] = revision
        set_conditions(status, ("Ready", "True", "ReconciliationSucceeded", f"Applied revision: {revision}"))


def _rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
