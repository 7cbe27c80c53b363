"""Minimal kube-apiserver double for the custom resources a GitOps CI job reads and patches.

Serves what ``kubernetes.client.CustomObjectsApi`` calls for Argo CD ``applications``
(argoproj.io/v1alpha1), Flux ``kustomizations`` (kustomize.toolkit.fluxcd.io/v1) and
``gitrepositories`` (source.toolkit.fluxcd.io/v1): GET/LIST/PATCH (merge-patch and json-patch;
anything else is 415 as for real CRs), ``metav1.Status`` errors (401, 403, 404, 409, 415, 422),
``resourceVersion`` bumped on every change and ``generation`` on spec changes (the Flux CRDs
have a status subresource, so their ``status`` cannot be patched here; the Argo CD CRD has none).

A GET is a controller "poll".  Flux: a new ``reconcile.fluxcd.io/requestedAt`` is picked up over
two polls (Reconciling, then Ready plus ``lastHandledReconcileAt``); a Kustomization applies its
GitRepository's artifact revision when that object exists (so ask the source first, like
``flux reconcile --with-source``), else ``<branch>@sha1:<head(branch)>``.  Argo CD: the
``argocd.argoproj.io/refresh`` annotation and the ``operation`` field drive ``ArgoStatusMachine``.
"""

from __future__ import annotations

import copy
import json
import re
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from servers.argo_status import (
    JSON,
    ZERO_SHA,
    ArgoStatusMachine,
    HeadResolver,
    LoopbackServer,
    Request,
    Response,
    Scenario,
    application_spec,
    resolve_revision,
    utc_now,
)
from servers.flux_receiver import (
    REQUESTED_AT_ANNOTATION,
    FluxFailure,
    ReconcileRequest,
    kustomization_done,
    kustomization_status,
    mark_progressing,
    source_ready,
    source_status,
)
from servers.json_patch import JsonPatchError, apply_json_patch, apply_merge_patch

REFRESH_ANNOTATION = "argocd.argoproj.io/refresh"
MERGE_PATCH, JSON_PATCH = "application/merge-patch+json", "application/json-patch+json"
PATH = re.compile(
    r"/apis/(?P<group>[^/]+)/(?P<version>[^/]+)/namespaces/(?P<ns>[^/]+)/(?P<plural>[^/]+)(?:/(?P<name>[^/]+))?"
)
VERSION = {"major": "1", "minor": "31", "gitVersion": "v1.31.0", "platform": "linux/amd64"}
UNSUPPORTED_MEDIA = (
    "the body of the request was in an unknown format - accepted media types include: "
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
)


@dataclass(frozen=True)
class Kind:
    group: str
    version: str
    plural: str
    kind: str
    status_subresource: bool

    @property
    def resource(self) -> str:
        return f"{self.plural}.{self.group}"


APPLICATIONS = Kind("argoproj.io", "v1alpha1", "applications", "Application", False)
KUSTOMIZATIONS = Kind("kustomize.toolkit.fluxcd.io", "v1", "kustomizations", "Kustomization", True)
GIT_REPOSITORIES = Kind("source.toolkit.fluxcd.io", "v1", "gitrepositories", "GitRepository", True)
KINDS = {kind.plural: kind for kind in (APPLICATIONS, KUSTOMIZATIONS, GIT_REPOSITORIES)}
Key = tuple[str, str, str]  # plural, namespace, name


@dataclass(frozen=True)
class Grant:
    """A token's RBAC: verbs on plurals (None = all) in namespaces (None = all)."""

    user: str
    verbs: frozenset[str] = frozenset({"get", "list", "patch"})
    plurals: frozenset[str] | None = None
    namespaces: frozenset[str] | None = None

    def allows(self, verb: str, plural: str, namespace: str) -> bool:
        return (
            verb in self.verbs
            and (self.plurals is None or plural in self.plurals)
            and (self.namespaces is None or namespace in self.namespaces)
        )


class KubeAPIServer(LoopbackServer):
    def __init__(
        self,
        *,
        head: HeadResolver,
        token: str | None = None,
        default_branch: str = "main",
        polls_per_step: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.head = head
        self.default_branch = default_branch
        self.token = token or secrets.token_urlsafe(24)
        self.polls_per_step = polls_per_step
        self._grants = {self.token: Grant("system:admin")}
        self._objects: dict[Key, JSON] = {}
        self._resource_version = 1000
        self._argo: dict[Key, ArgoStatusMachine] = {}
        self._pending_refresh: set[Key] = set()
        self._flux_steps: dict[Key, deque[Callable[[JSON], None]]] = {}
        self._flux_polls: dict[Key, int] = {}
        self._flux_failures: dict[Key, FluxFailure] = {}
        self._branches: dict[Key, str] = {}

    # -- knobs -------------------------------------------------------------------------------

    def add_token(
        self,
        user: str,
        *,
        verbs: Iterable[str] = ("get",),
        plurals: Iterable[str] | None = None,
        namespaces: Iterable[str] | None = None,
    ) -> str:
        token = secrets.token_urlsafe(24)
        grant = Grant(user, frozenset(verbs), _frozen(plurals), _frozen(namespaces))
        with self.lock:
            self._grants[token] = grant
        return token

    def add_application(
        self,
        name: str,
        *,
        repo_url: str,
        namespace: str = "argocd",
        target_revision: str = "main",
        path: str = ".",
        auto_sync: bool = False,
        scenario: Scenario = Scenario.HEALTHY,
        revision: str = ZERO_SHA,
    ) -> JSON:
        spec = application_spec(repo_url, target_revision, path, auto_sync=auto_sync)
        machine = ArgoStatusMachine(
            name, revision=revision, scenario=scenario, polls_per_step=self.polls_per_step
        )
        with self.lock:
            self._argo[(APPLICATIONS.plural, namespace, name)] = machine
            return self._create(
                APPLICATIONS, namespace, name, spec, machine.status(spec["source"], spec["destination"])
            )

    def add_git_repository(
        self,
        name: str,
        *,
        url: str,
        namespace: str = "flux-system",
        branch: str = "main",
        revision: str = ZERO_SHA,
    ) -> JSON:
        spec = {"interval": "1m0s", "url": url, "ref": {"branch": branch}}
        with self.lock:
            return self._create(
                GIT_REPOSITORIES, namespace, name, spec, source_status(f"{branch}@sha1:{revision}")
            )

    def add_kustomization(
        self,
        name: str,
        *,
        namespace: str = "flux-system",
        source: str = "flux-system",
        branch: str = "main",
        revision: str = ZERO_SHA,
    ) -> JSON:
        """``branch`` is what the head resolver is asked when no GitRepository ``source`` exists."""
        spec = {
            "interval": "10m0s",
            "path": "./",
            "prune": True,
            "sourceRef": {"kind": "GitRepository", "name": source},
        }
        with self.lock:
            self._branches[(KUSTOMIZATIONS.plural, namespace, name)] = branch
            status = kustomization_status(f"{branch}@sha1:{revision}")
            return self._create(KUSTOMIZATIONS, namespace, name, spec, status)

    def fail_kustomization(
        self, name: str, namespace: str = "flux-system", failure: FluxFailure | None = None
    ) -> None:
        """Make the next reconciliations end in Ready=False (``clear_failure`` undoes it)."""
        with self.lock:
            self._flux_failures[(KUSTOMIZATIONS.plural, namespace, name)] = failure or FluxFailure()

    def clear_failure(self, name: str, namespace: str = "flux-system") -> None:
        with self.lock:
            self._flux_failures.pop((KUSTOMIZATIONS.plural, namespace, name), None)

    def set_scenario(self, name: str, scenario: Scenario, namespace: str = "argocd") -> None:
        with self.lock:
            self._argo[(APPLICATIONS.plural, namespace, name)].scenario = scenario

    def get_object(self, plural: str, namespace: str, name: str) -> JSON:
        """The stored object, without counting as a poll."""
        with self.lock:
            return copy.deepcopy(self._objects[(plural, namespace, name)])

    def request_reconcile(self, request: ReconcileRequest) -> None:
        """Annotator for ``FluxReceiverServer``: merge-patches ``requestedAt`` like the receiver does."""
        group = request.api_version.split("/")[0]
        plural = next((k.plural for k in KINDS.values() if (k.group, k.kind) == (group, request.kind)), "")
        with self.lock:
            key = (plural, request.namespace, request.name)
            if key not in self._objects:
                raise LookupError(f'{plural or request.kind} "{request.name}" not found')
            before = self._objects[key]
            after = apply_merge_patch(
                before, {"metadata": {"annotations": {REQUESTED_AT_ANNOTATION: request.requested_at}}}
            )
            self._commit(key, after)
            self._react(
                key, before, self._objects[key], "system:serviceaccount:flux-system:notification-controller"
            )

    # -- routing -----------------------------------------------------------------------------

    def handle(self, request: Request) -> Response:
        if request.path == "/version":
            return Response.json(200, VERSION)
        header = request.headers.get("Authorization") or ""
        grant = self._grants.get(header.removeprefix("Bearer ")) if header.startswith("Bearer ") else None
        if grant is None:
            return _status(401, "Unauthorized", "Unauthorized")
        match = PATH.fullmatch(request.path)
        kind = KINDS.get(match["plural"]) if match else None
        if match is None or kind is None or (match["group"], match["version"]) != (kind.group, kind.version):
            return _status(404, "NotFound", "the server could not find the requested resource")
        namespace, name = match["ns"], match["name"]
        verb = {"GET": "get" if name else "list", "PATCH": "patch" if name else ""}.get(request.method)
        if not verb:
            return _status(
                405, "MethodNotAllowed", "the server does not allow this method on the requested resource"
            )
        if not grant.allows(verb, kind.plural, namespace):
            target = f'{kind.resource} "{name}"' if name else kind.resource
            message = (
                f'{target} is forbidden: User "{grant.user}" cannot {verb} resource "{kind.plural}" '
                f'in API group "{kind.group}" in the namespace "{namespace}"'
            )
            return _status(403, "Forbidden", message, _details(kind, name))
        if verb == "list":
            items = [self._poll(key) for key in sorted(self._objects) if key[:2] == (kind.plural, namespace)]
            listing = {
                "apiVersion": f"{kind.group}/{kind.version}",
                "kind": f"{kind.kind}List",
                "metadata": {"resourceVersion": str(self._resource_version)},
                "items": items,
            }
            return Response.json(200, listing, principal=grant.user)
        key = (kind.plural, namespace, name)
        if key not in self._objects:
            return _status(404, "NotFound", f'{kind.resource} "{name}" not found', _details(kind, name))
        if verb == "get":
            return Response.json(200, self._poll(key), principal=grant.user)
        return self._patch(request, kind, key, grant.user)

    def _patch(self, request: Request, kind: Kind, key: Key, user: str) -> Response:
        content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type not in (MERGE_PATCH, JSON_PATCH):
            return _status(415, "UnsupportedMediaType", UNSUPPORTED_MEDIA)
        before = self._objects[key]
        try:
            document = json.loads(request.body)
            apply = apply_merge_patch if content_type == MERGE_PATCH else apply_json_patch
            after = apply(before, document)
        except JsonPatchError as exc:
            return _status(422, "Invalid", str(exc))
        except (ValueError, TypeError) as exc:
            return _status(400, "BadRequest", str(exc))
        metadata = after.get("metadata")
        if not isinstance(metadata, dict) or (metadata.get("name"), metadata.get("namespace")) != (
            key[2],
            key[1],
        ):
            return _status(
                400, "BadRequest", "metadata.name and metadata.namespace cannot be changed by a patch"
            )
        if (
            metadata.get("resourceVersion", before["metadata"]["resourceVersion"])
            != before["metadata"]["resourceVersion"]
        ):
            message = (
                f'Operation cannot be fulfilled on {kind.resource} "{key[2]}": the object has been modified; '
                "please apply your changes to the latest version and try again"
            )
            return _status(409, "Conflict", message, _details(kind, key[2]))
        for field in ("uid", "creationTimestamp", "generation", "resourceVersion"):
            metadata[field] = before["metadata"][field]
        after["apiVersion"], after["kind"] = before["apiVersion"], before["kind"]
        if kind.status_subresource:
            after["status"] = copy.deepcopy(before.get("status", {}))
        self._commit(key, after)
        self._react(key, before, self._objects[key], user)
        return Response.json(200, self._objects[key], principal=user)

    # -- storage -----------------------------------------------------------------------------

    def _create(self, kind: Kind, namespace: str, name: str, spec: JSON, status: JSON) -> JSON:
        self._resource_version += 1
        obj = {
            "apiVersion": f"{kind.group}/{kind.version}",
            "kind": kind.kind,
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": secrets.token_hex(16),
                "generation": 1,
                "resourceVersion": str(self._resource_version),
                "creationTimestamp": utc_now(),
            },
            "spec": spec,
            "status": status,
        }
        self._objects[(kind.plural, namespace, name)] = obj
        return copy.deepcopy(obj)

    def _commit(self, key: Key, after: JSON) -> None:
        """Store ``after`` if it differs: resourceVersion always moves; generation unless only metadata
        (or, with a status subresource, status) did."""
        before = self._objects[key]
        if after == before:
            return
        ignored = ("metadata", "status") if KINDS[key[0]].status_subresource else ("metadata",)
        if {k: v for k, v in after.items() if k not in ignored} != {
            k: v for k, v in before.items() if k not in ignored
        }:
            after["metadata"]["generation"] = before["metadata"]["generation"] + 1
        self._resource_version += 1
        after["metadata"]["resourceVersion"] = str(self._resource_version)
        self._objects[key] = after

    # -- controllers -------------------------------------------------------------------------

    def _react(self, key: Key, before: JSON, after: JSON, user: str) -> None:
        if key[0] == APPLICATIONS.plural:
            machine = self._argo[key]
            source = after["spec"]["source"]
            auto_sync = bool(after["spec"].get("syncPolicy", {}).get("automated"))
            if _annotation(after, REFRESH_ANNOTATION) and key not in self._pending_refresh:
                machine.refresh(
                    resolve_revision(self.head, source["targetRevision"], self.default_branch),
                    auto_sync=auto_sync,
                )
                self._pending_refresh.add(key)
            operation = after.get("operation")
            if operation and operation != before.get("operation") and machine.operation is None:
                sync = operation.get("sync") or {}
                revision = sync.get("revision") or resolve_revision(
                    self.head, source["targetRevision"], self.default_branch
                )
                machine.sync(
                    revision,
                    initiated_by=operation.get("initiatedBy") or {"username": user},
                    prune=bool(sync.get("prune")),
                    dry_run=bool(sync.get("dryRun")),
                )
            return
        requested = _annotation(after, REQUESTED_AT_ANNOTATION)
        generation_moved = after["metadata"]["generation"] != before["metadata"]["generation"]
        if after["spec"].get("suspend"):
            return
        if requested and requested != _annotation(before, REQUESTED_AT_ANNOTATION):
            self._schedule_flux(key, requested)
        elif generation_moved:
            self._schedule_flux(key, None)

    def _poll(self, key: Key) -> JSON:
        obj = copy.deepcopy(self._objects[key])
        if key[0] == APPLICATIONS.plural:
            machine = self._argo[key]
            machine.poll()
            if key in self._pending_refresh:
                obj["metadata"].get("annotations", {}).pop(REFRESH_ANNOTATION, None)
                self._pending_refresh.discard(key)
            obj["status"] = machine.status(obj["spec"]["source"], obj["spec"]["destination"])
            if machine.operation is None:
                obj.pop("operation", None)
            else:
                obj["operation"] = copy.deepcopy(machine.operation)
        elif self._flux_steps.get(key):
            self._flux_polls[key] = self._flux_polls.get(key, 0) + 1
            if self._flux_polls[key] >= self.polls_per_step:
                self._flux_polls[key] = 0
                self._flux_steps[key].popleft()(obj)
        self._commit(key, obj)
        return copy.deepcopy(self._objects[key])

    def _schedule_flux(self, key: Key, requested: str | None) -> None:
        steps = self._flux_steps.setdefault(key, deque())
        steps.extend(
            [
                lambda obj: mark_progressing(obj.setdefault("status", {})),
                lambda obj: self._finish_flux(key, obj, requested),
            ]
        )

    def _finish_flux(self, key: Key, obj: JSON, requested: str | None) -> None:
        status = obj.setdefault("status", {})
        if requested is not None:
            status["lastHandledReconcileAt"] = requested
        status["observedGeneration"] = obj["metadata"]["generation"]
        if key[0] == GIT_REPOSITORIES.plural:
            branch = obj["spec"].get("ref", {}).get("branch", "main")
            if source_ready(status, f"{branch}@sha1:{self.head(branch)}"):
                for dependant in self._dependants(key):  # kustomize-controller watches its source
                    self._schedule_flux(dependant, None)
        else:
            kustomization_done(status, self._source_revision(key, obj), self._flux_failures.get(key))

    def _source_revision(self, key: Key, obj: JSON) -> str:
        ref = obj["spec"].get("sourceRef", {})
        source = self._objects.get(
            (GIT_REPOSITORIES.plural, ref.get("namespace", key[1]), ref.get("name", ""))
        )
        if ref.get("kind") == "GitRepository" and source and source.get("status", {}).get("artifact"):
            return str(source["status"]["artifact"]["revision"])
        branch = self._branches.get(key, "main")
        return f"{branch}@sha1:{self.head(branch)}"

    def _dependants(self, source: Key) -> list[Key]:
        return [
            key
            for key, obj in self._objects.items()
            if key[0] == KUSTOMIZATIONS.plural
            and obj["spec"].get("sourceRef", {}).get("name") == source[2]
            and obj["spec"]["sourceRef"].get("namespace", key[1]) == source[1]
        ]


# --------------------------------------------------------------------------- helpers


def _annotation(obj: JSON, name: str) -> str | None:
    value = (obj.get("metadata", {}).get("annotations") or {}).get(name)
    return value if isinstance(value, str) else None


def _details(kind: Kind, name: str | None) -> JSON:
    return (
        {"name": name, "group": kind.group, "kind": kind.plural}
        if name
        else {"group": kind.group, "kind": kind.plural}
    )


def _status(code: int, reason: str, message: str, details: JSON | None = None) -> Response:
    body: JSON = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    }
    if details:
        body["details"] = details
    body["code"] = code
    return Response.json(code, body)


def _frozen(values: Iterable[str] | None) -> frozenset[str] | None:
    return None if values is None else frozenset(values)


# --------------------------------------------------------------------------- patches
