"""Contract tests for the sync doubles, driven through real clients (requests, kubernetes)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any, cast

import pytest
import requests
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from servers.argo_status import BranchHeads, Scenario
from servers.argocd_api import ArgoApp, ArgoCDServer
from servers.flux_receiver import REQUESTED_AT_ANNOTATION as REQUESTED_AT
from servers.flux_receiver import FluxReceiverServer, Receiver, ResourceRef
from servers.kube_api import KubeAPIServer
from servers.sync_fixtures import *  # noqa: F403  (fixtures)
from servers.sync_fixtures import TLSMaterial

pytestmark = pytest.mark.integration

REPO = "https://gitlab.example.com/platform/manifests"
PUSHED = "4f1c2e3d4b5a69788796a5b4c3d2e1f0a9b8c7d6"
OLD = "1111111111111111111111111111111111111111"


def push_payload(
    ref: str = "refs/heads/main", web_url: str = REPO, files: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The fields of a GitLab ``Push Hook`` that Argo CD reads."""
    return {
        "object_kind": "push",
        "ref": ref,
        "before": OLD,
        "after": PUSHED,
        "project": {
            "web_url": web_url,
            "default_branch": "main",
            "path_with_namespace": "platform/manifests",
        },
        "commits": [{"id": PUSHED, "added": [], "modified": list(files), "removed": []}],
    }


def poll(
    fetch: Callable[[], dict[str, Any]], done: Callable[[dict[str, Any]], bool], limit: int = 10
) -> list[dict[str, Any]]:
    """Fetch until ``done``; returns every snapshot seen (each fetch is one controller poll)."""
    seen = [fetch()]
    while not done(seen[-1]):
        assert len(seen) < limit, f"never converged: {json.dumps(seen[-1].get('status'), indent=1)}"
        seen.append(fetch())
    return seen


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        session.trust_env = False  # loopback only, never a proxy from the environment
        yield session


@pytest.fixture
def custom_objects(kube_api: KubeAPIServer, loopback_tls: TLSMaterial) -> Iterator[k8s.CustomObjectsApi]:
    yield from _custom_objects(kube_api, loopback_tls, kube_api.token)


def _custom_objects(kube: KubeAPIServer, tls: TLSMaterial, token: str) -> Iterator[k8s.CustomObjectsApi]:
    configuration = k8s.Configuration(
        host=kube.url,
        api_key={"authorization": token},
        api_key_prefix={"authorization": "Bearer"},
        ssl_ca_cert=str(tls.ca_file),
    )
    with k8s.ApiClient(configuration) as api_client:
        yield k8s.CustomObjectsApi(api_client)


# --------------------------------------------------------------------------- Argo CD webhook


def _webhook(http: requests.Session, server: ArgoCDServer, payload: Any, **headers: str) -> requests.Response:
    sent = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": server.webhook_secret or "", **headers}
    return http.post(f"{server.url}/api/webhook", data=json.dumps(payload), headers=sent, timeout=5)


def test_webhook_refreshes_only_apps_tracking_the_pushed_repo_and_branch(
    http: requests.Session, argocd_server: ArgoCDServer, branch_heads: BranchHeads
) -> None:
    apps = {
        "web": ArgoApp("web", REPO + ".git", "main", "apps/web"),
        "head": ArgoApp("head", REPO, "HEAD"),
        "ssh": ArgoApp("ssh", "git@gitlab.example.com:platform/manifests.git", "refs/heads/main"),
        "case": ArgoApp("case", "https://GitLab.Example.com/Platform/Manifests", "main"),
        "release": ArgoApp("release", REPO, "release"),
        "other-repo": ArgoApp("other-repo", "https://gitlab.example.com/platform/other", "main"),
        "slash": ArgoApp("slash", REPO + "/", "main"),  # Argo CD's regex does not strip a trailing slash
        "unrelated-path": ArgoApp("unrelated-path", REPO, "main", "apps/db", manifest_generate_paths="."),
    }
    for app in apps.values():
        argocd_server.add_app(app)
    branch_heads["main"] = PUSHED

    response = _webhook(http, argocd_server, push_payload(files=("apps/web/kustomization.yaml",)))

    assert (response.status_code, response.text) == (200, "")
    assert sorted(argocd_server.refreshed) == ["argocd/case", "argocd/head", "argocd/ssh", "argocd/web"]
    web = http.get(
        f"{argocd_server.url}/api/v1/applications/web", headers=_bearer(argocd_server.admin_token), timeout=5
    )
    assert web.json()["status"]["sync"] == {
        **web.json()["status"]["sync"],
        "status": "OutOfSync",
        "revision": PUSHED,
    }
    assert "operation" not in web.json(), "a refresh alone does not sync a manual-sync app"
    untouched = argocd_server.application("release")["status"]["sync"]
    assert untouched["status"] == "Synced" and untouched["revision"] != PUSHED


def test_webhook_with_wrong_secret_is_refused_like_argocd(
    http: requests.Session, argocd_server: ArgoCDServer
) -> None:
    argocd_server.add_app(ArgoApp("web", REPO, "main"))

    response = _webhook(http, argocd_server, push_payload(), **{"X-Gitlab-Token": "not-the-secret"})

    assert response.status_code == 400  # Argo CD answers 400, not 401, on a token mismatch
    assert response.text == "Webhook processing failed: X-Gitlab-Token validation failed\n"
    assert argocd_server.refreshed == []
    recorded = argocd_server.calls[-1]
    assert recorded.status == 400 and "not-the-secret" not in repr(recorded)
    assert all(name.lower() != "x-gitlab-token" for name in recorded.headers)


def test_webhook_queue_full_knob_answers_503_then_recovers(
    http: requests.Session, argocd_server: ArgoCDServer
) -> None:
    argocd_server.add_app(ArgoApp("web", REPO, "main"))
    argocd_server.fail_next_webhooks(1)

    first = _webhook(http, argocd_server, push_payload())
    second = _webhook(http, argocd_server, push_payload())

    assert (first.status_code, first.text) == (503, "Queue is full, discarding webhook payload\n")
    assert second.status_code == 200
    assert argocd_server.refreshed == ["argocd/web"]


def test_webhook_rejects_wrong_method_event_and_payload(
    http: requests.Session, argocd_server: ArgoCDServer
) -> None:
    url = f"{argocd_server.url}/api/webhook"
    token = {"X-Gitlab-Token": argocd_server.webhook_secret or ""}

    wrong_method = http.get(url, headers={"X-Gitlab-Event": "Push Hook", **token}, timeout=5)
    no_event = http.post(url, data="{}", headers=token, timeout=5)
    merge_request = _webhook(
        http, argocd_server, {"object_kind": "merge_request"}, **{"X-Gitlab-Event": "Merge Request Hook"}
    )
    empty = http.post(url, data=b"", headers={"X-Gitlab-Event": "Push Hook", **token}, timeout=5)
    not_json = http.post(url, data=b"{", headers={"X-Gitlab-Event": "Push Hook", **token}, timeout=5)
    bad_type = _webhook(http, argocd_server, {**push_payload(), "ref": 5})
    system_mr = _webhook(
        http, argocd_server, {"object_kind": "merge_request"}, **{"X-Gitlab-Event": "System Hook"}
    )

    assert (wrong_method.status_code, wrong_method.text) == (
        405,
        "Webhook processing failed: invalid HTTP Method\n",
    )
    assert (no_event.status_code, no_event.text) == (400, "Unknown webhook event\n")
    assert (merge_request.status_code, merge_request.text) == (
        400,
        "Webhook processing failed: event not defined to be parsed\n",
    )
    assert empty.status_code == 400 and "payload is either too large or corrupted" in empty.text
    assert not_json.status_code == 400 and not_json.text.startswith("Webhook processing failed: ")
    assert bad_type.status_code == 400 and "cannot unmarshal int into Go struct field .ref" in bad_type.text
    assert system_mr.status_code == 200, "parsed, then ignored: only pushes refresh apps"
    assert argocd_server.refreshed == []


# --------------------------------------------------------------------------- Argo CD API


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _get_app(
    http: requests.Session, server: ArgoCDServer, name: str, token: str, **params: str
) -> requests.Response:
    return http.get(
        f"{server.url}/api/v1/applications/{name}", params=params, headers=_bearer(token), timeout=5
    )


def _sync(
    http: requests.Session, server: ArgoCDServer, name: str, token: str, **body: Any
) -> requests.Response:
    return http.post(
        f"{server.url}/api/v1/applications/{name}/sync", json=body, headers=_bearer(token), timeout=5
    )


def _phase(app: dict[str, Any]) -> tuple[str, str, str | None]:
    status = app["status"]
    return status["sync"]["status"], status["health"]["status"], status.get("operationState", {}).get("phase")


def test_sync_then_status_progresses_to_synced_healthy_at_the_pushed_revision(
    http: requests.Session, argocd_server: ArgoCDServer, branch_heads: BranchHeads
) -> None:
    argocd_server.add_app(ArgoApp("web", REPO, "main", initial_revision=OLD))
    branch_heads["main"] = PUSHED
    token = argocd_server.admin_token

    started = _sync(http, argocd_server, "web", token, prune=True)
    assert started.status_code == 200
    assert started.json()["operation"]["sync"] == {"revision": PUSHED, "prune": True, "dryRun": False}

    seen = poll(
        lambda: _get_app(http, argocd_server, "web", token).json(),
        lambda a: _phase(a)[:2] == ("Synced", "Healthy"),
    )

    assert [_phase(app) for app in seen] == [
        ("OutOfSync", "Progressing", "Running"),
        ("Synced", "Progressing", "Succeeded"),
        ("Synced", "Healthy", "Succeeded"),
    ]
    final = seen[-1]["status"]
    assert final["sync"]["revision"] == final["operationState"]["syncResult"]["revision"] == PUSHED
    assert final["operationState"]["message"] == "successfully synced (all tasks run)"
    assert "operation" not in seen[-1]


def test_api_rejects_missing_and_invalid_tokens(http: requests.Session, argocd_server: ArgoCDServer) -> None:
    argocd_server.add_app(ArgoApp("web", REPO))
    url = f"{argocd_server.url}/api/v1/applications/web"

    missing = http.get(url, timeout=5)
    invalid = http.get(url, headers=_bearer("forged"), timeout=5)

    assert missing.status_code == 401
    assert missing.json() == {
        "error": "no session information",
        "code": 16,
        "message": "no session information",
    }
    assert invalid.status_code == 401 and invalid.json()["code"] == 16


def test_project_token_is_limited_to_its_apps_and_actions(
    http: requests.Session, argocd_server: ArgoCDServer
) -> None:
    argocd_server.add_app(ArgoApp("web", REPO, project="shop"))
    argocd_server.add_app(ArgoApp("db", REPO, project="shop"))
    reader = argocd_server.add_project_token("shop", "ci", apps=["web"], actions=["get"])

    allowed = _get_app(http, argocd_server, "web", reader)
    other_app = _get_app(http, argocd_server, "db", reader)
    sync = _sync(http, argocd_server, "web", reader)

    assert allowed.status_code == 200 and allowed.json()["spec"]["project"] == "shop"
    assert other_app.status_code == 403 and other_app.json()["message"] == "permission denied"
    assert sync.status_code == 403 and sync.json()["code"] == 7
    assert sync.json()["message"].startswith(
        "permission denied: applications, sync, shop/web, sub: proj:shop:ci"
    )


def test_unknown_app_is_403_unless_the_project_is_given(
    http: requests.Session, argocd_server: ArgoCDServer
) -> None:
    token = argocd_server.admin_token

    hidden = _get_app(http, argocd_server, "ghost", token)
    explicit = _get_app(http, argocd_server, "ghost", token, project="default")

    assert (hidden.status_code, hidden.json()["message"]) == (403, "permission denied")
    assert explicit.status_code == 404
    assert explicit.json() == {
        "error": 'applications.argoproj.io "ghost" not found',
        "code": 5,
        "message": 'applications.argoproj.io "ghost" not found',
    }


def test_app_namespace_selects_apps_outside_the_control_plane_namespace(
    http: requests.Session, branch_heads: BranchHeads
) -> None:
    with ArgoCDServer(head=branch_heads, app_namespaces=["team-*"]) as server:
        server.add_app(ArgoApp("web", REPO, namespace="team-a"))
        server.add_app(ArgoApp("web", REPO, namespace="not-enabled"))
        token = server.admin_token

        found = _get_app(http, server, "web", token, appNamespace="team-a")
        default_ns = _get_app(http, server, "web", token)
        disabled = _get_app(http, server, "web", token, appNamespace="not-enabled", project="default")
        synced = _sync(http, server, "web", token, appNamespace="team-a")

    assert found.status_code == 200 and found.json()["metadata"]["namespace"] == "team-a"
    assert default_ns.status_code == 403
    assert disabled.status_code == 403
    assert synced.status_code == 200


def test_degraded_scenario_reports_health_message(
    http: requests.Session, argocd_server: ArgoCDServer, branch_heads: BranchHeads
) -> None:
    argocd_server.add_app(ArgoApp("v3", REPO, "main", scenario=Scenario.DEGRADED))
    argocd_server.add_app(ArgoApp("v2", REPO, "main", scenario=Scenario.DEGRADED, legacy_health_message=True))
    branch_heads["main"] = PUSHED
    token = argocd_server.admin_token
    final = {}
    for name in ("v3", "v2"):
        assert _sync(http, argocd_server, name, token).status_code == 200
        fetch = partial(lambda n: _get_app(http, argocd_server, n, token).json(), name)
        final[name] = poll(fetch, lambda a: _phase(a)[1] == "Degraded")[-1]["status"]

    assert _phase({"status": final["v3"]}) == ("Synced", "Degraded", "Succeeded")
    assert "message" not in final["v3"]["health"], "Argo CD 3 leaves the app-level message empty"
    assert final["v3"]["resources"][0]["health"] == {
        "status": "Degraded",
        "message": 'Deployment "v3" exceeded its progress deadline',
    }
    assert final["v2"]["health"]["message"] == 'Deployment "v2" exceeded its progress deadline'


def test_failed_sync_and_concurrent_sync_are_reported(
    http: requests.Session, argocd_server: ArgoCDServer, branch_heads: BranchHeads
) -> None:
    argocd_server.add_app(ArgoApp("web", REPO, "main", scenario=Scenario.SYNC_FAILED))
    branch_heads["main"] = PUSHED
    token = argocd_server.admin_token
    assert _sync(http, argocd_server, "web", token).status_code == 200

    again = _sync(http, argocd_server, "web", token)
    final = poll(
        lambda: _get_app(http, argocd_server, "web", token).json(), lambda a: _phase(a)[2] == "Failed"
    )[-1]

    assert again.status_code == 400
    assert again.json() == {
        "error": "another operation is already in progress",
        "code": 9,
        "message": "another operation is already in progress",
    }
    assert _phase(final) == ("OutOfSync", "Healthy", "Failed")
    assert final["status"]["operationState"]["message"].startswith("one or more objects failed to apply")


def test_auto_sync_app_syncs_after_webhook_and_refuses_pinned_revisions(
    http: requests.Session, argocd_server: ArgoCDServer, branch_heads: BranchHeads
) -> None:
    argocd_server.add_app(ArgoApp("web", REPO, "main", auto_sync=True))
    branch_heads["main"] = PUSHED
    token = argocd_server.admin_token

    assert _webhook(http, argocd_server, push_payload()).status_code == 200
    pinned = _sync(http, argocd_server, "web", token, revision=PUSHED)
    final = poll(
        lambda: _get_app(http, argocd_server, "web", token).json(),
        lambda a: _phase(a)[:2] == ("Synced", "Healthy"),
    )[-1]

    assert pinned.status_code == 400
    assert pinned.json()["message"] == f"Cannot sync to {PUSHED}: auto-sync currently set to main"
    assert final["status"]["sync"]["revision"] == PUSHED
    assert final["status"]["operationState"]["operation"]["initiatedBy"] == {"automated": True}


def test_argocd_over_https(
    http: requests.Session, branch_heads: BranchHeads, loopback_tls: TLSMaterial
) -> None:
    with ArgoCDServer(head=branch_heads, ssl_context=loopback_tls.server_context()) as server:
        server.add_app(ArgoApp("web", REPO))
        url = server.url
        response = http.get(
            f"{url}/api/v1/applications/web",
            headers=_bearer(server.admin_token),
            verify=str(loopback_tls.ca_file),
            timeout=5,
        )

    assert url.startswith("https://127.0.0.1:")
    assert response.status_code == 200 and response.json()["metadata"]["name"] == "web"


# --------------------------------------------------------------------------- Flux receiver


def _hook(http: requests.Session, url: str, token: str, event: str = "Push Hook") -> requests.Response:
    headers = {"X-Gitlab-Event": event, "X-Gitlab-Token": token}
    return http.post(url, data=json.dumps(push_payload()), headers=headers, timeout=5)


def test_flux_receiver_path_is_sha256_of_token_name_namespace_and_requests_reconcile(
    http: requests.Session, flux_receiver: FluxReceiverServer
) -> None:
    receiver = flux_receiver.receivers[0]
    digest = hashlib.sha256(f"{receiver.token}gitlab-receiverflux-system".encode()).hexdigest()

    response = _hook(http, flux_receiver.webhook_url(), receiver.token)

    assert flux_receiver.webhook_url() == f"{flux_receiver.url}/hook/{digest}"
    assert (response.status_code, response.content) == (200, b"")
    assert [(r.kind, r.namespace, r.name) for r in flux_receiver.reconcile_requests] == [
        ("GitRepository", "flux-system", "flux-system"),
        ("Kustomization", "flux-system", "flux-system"),
    ]
    assert flux_receiver.reconcile_requests[0].api_version == "source.toolkit.fluxcd.io/v1"


def test_flux_receiver_refusals(http: requests.Session, flux_receiver: FluxReceiverServer) -> None:
    receiver = flux_receiver.receivers[0]
    url = flux_receiver.webhook_url()

    wrong_token = _hook(http, url, "wrong")
    unlisted_event = _hook(http, url, receiver.token, event="Merge Request Hook")
    unknown_path = _hook(http, f"{flux_receiver.url}/hook/{'0' * 64}", receiver.token)
    with_query = _hook(http, url + "?source=gitlab", receiver.token)
    receiver.suspend = True
    suspended = _hook(http, url, receiver.token)

    assert wrong_token.status_code == 400  # Flux answers 400 (validation failed), not 401
    assert unlisted_event.status_code == 400
    assert unknown_path.status_code == 404 and with_query.status_code == 404
    assert suspended.status_code == 503
    assert flux_receiver.reconcile_requests == []
    assert flux_receiver.calls[0].note == "the X-Gitlab-Token header value does not match the receiver token"


def test_flux_receiver_needs_api_version_for_kustomizations(http: requests.Session) -> None:
    receiver = Receiver("r", resources=(ResourceRef("Kustomization", "apps"),), token="t", events=())
    with FluxReceiverServer(receivers=[receiver]) as server:
        response = _hook(http, server.webhook_url(), "t", event="anything")

    assert response.status_code == 500
    assert server.calls[-1].note == "apiVersion must be specified for kind 'Kustomization'"


# --------------------------------------------------------------------------- kube-apiserver

CR = tuple[str, str, str]  # group, version, plural
APPLICATIONS: CR = ("argoproj.io", "v1alpha1", "applications")
KUSTOMIZATIONS: CR = ("kustomize.toolkit.fluxcd.io", "v1", "kustomizations")
GIT_REPOSITORIES: CR = ("source.toolkit.fluxcd.io", "v1", "gitrepositories")
JSON_PATCH = "application/json-patch+json"


def get_cr(api: k8s.CustomObjectsApi, kind: CR, namespace: str, name: str) -> dict[str, Any]:
    group, version, plural = kind
    return cast(dict[str, Any], api.get_namespaced_custom_object(group, version, namespace, plural, name))


def patch_cr(
    api: k8s.CustomObjectsApi, kind: CR, namespace: str, name: str, body: Any, content_type: str | None = None
) -> dict[str, Any]:
    group, version, plural = kind
    patched = api.patch_namespaced_custom_object(
        group, version, namespace, plural, name, body, _content_type=content_type
    )
    return cast(dict[str, Any], patched)


def status_of(error: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    assert error.value.body is not None
    return cast(dict[str, Any], json.loads(error.value.body))


def test_kube_get_and_patch_application_and_kustomization(
    kube_api: KubeAPIServer, custom_objects: k8s.CustomObjectsApi
) -> None:
    kube_api.add_application("web", repo_url=REPO)
    kube_api.add_kustomization("apps")

    app = get_cr(custom_objects, APPLICATIONS, "argocd", "web")
    ks = get_cr(custom_objects, KUSTOMIZATIONS, "flux-system", "apps")
    annotated = patch_cr(
        custom_objects, KUSTOMIZATIONS, "flux-system", "apps", {"metadata": {"annotations": {"team": "a"}}}
    )
    respec = patch_cr(
        custom_objects, KUSTOMIZATIONS, "flux-system", "apps", {"spec": {"path": "./clusters/prod"}}
    )
    status_write = patch_cr(
        custom_objects, KUSTOMIZATIONS, "flux-system", "apps", {"status": {"lastAppliedRevision": "x"}}
    )
    retarget = [{"op": "replace", "path": "/spec/source/targetRevision", "value": "release"}]
    json_patched = patch_cr(custom_objects, APPLICATIONS, "argocd", "web", retarget, JSON_PATCH)

    assert app["kind"] == "Application" and app["status"]["sync"]["status"] == "Synced"
    assert ks["status"]["conditions"][0]["type"] == "Ready"
    versions = [int(obj["metadata"]["resourceVersion"]) for obj in (ks, annotated, respec)]
    assert versions == sorted(set(versions)), "every change bumps resourceVersion"
    assert [obj["metadata"]["generation"] for obj in (ks, annotated, respec)] == [1, 1, 2]
    assert status_write["status"]["lastAppliedRevision"] != "x", "Flux CRDs have a status subresource"
    assert status_write["metadata"]["resourceVersion"] == respec["metadata"]["resourceVersion"], "no-op patch"
    assert json_patched["spec"]["source"]["targetRevision"] == "release"
    assert json_patched["metadata"]["generation"] == app["metadata"]["generation"] + 1


def test_kube_errors_are_status_objects(
    kube_api: KubeAPIServer, custom_objects: k8s.CustomObjectsApi, loopback_tls: TLSMaterial
) -> None:
    kube_api.add_kustomization("apps")
    reader_token = kube_api.add_token("system:serviceaccount:ci:reader", verbs=["get"])
    stale = {"metadata": {"resourceVersion": "1", "annotations": {"x": "y"}}}
    add_to_missing_map = [{"op": "add", "path": "/metadata/annotations/x", "value": "y"}]

    with pytest.raises(ApiException) as missing:
        get_cr(custom_objects, KUSTOMIZATIONS, "flux-system", "ghost")
    with pytest.raises(ApiException) as conflict:
        patch_cr(custom_objects, KUSTOMIZATIONS, "flux-system", "apps", stale)
    with pytest.raises(ApiException) as missing_parent:
        patch_cr(custom_objects, KUSTOMIZATIONS, "flux-system", "apps", add_to_missing_map, JSON_PATCH)
    with pytest.raises(ApiException) as strategic:  # the client turns a dict json-patch into strategic merge
        patch_cr(custom_objects, KUSTOMIZATIONS, "flux-system", "apps", {"spec": {}}, JSON_PATCH)
    denied: dict[str, pytest.ExceptionInfo[ApiException]] = {}
    for token in ("forged", reader_token):
        with pytest.raises(ApiException) as denied[token]:
            for api in _custom_objects(kube_api, loopback_tls, token):
                patch_cr(api, KUSTOMIZATIONS, "flux-system", "apps", {})

    not_found = status_of(missing)
    assert (missing.value.status, not_found["kind"], not_found["reason"], not_found["code"]) == (
        404,
        "Status",
        "NotFound",
        404,
    )
    assert not_found["message"] == 'kustomizations.kustomize.toolkit.fluxcd.io "ghost" not found'
    assert not_found["details"] == {"name": "ghost", "group": KUSTOMIZATIONS[0], "kind": "kustomizations"}
    assert (conflict.value.status, status_of(conflict)["reason"]) == (409, "Conflict")
    assert (missing_parent.value.status, status_of(missing_parent)["reason"]) == (422, "Invalid")
    assert (strategic.value.status, status_of(strategic)["reason"]) == (415, "UnsupportedMediaType")
    assert (denied["forged"].value.status, status_of(denied["forged"])["reason"]) == (401, "Unauthorized")
    forbidden = status_of(denied[reader_token])
    assert (denied[reader_token].value.status, forbidden["reason"]) == (403, "Forbidden")
    assert forbidden["message"] == (
        'kustomizations.kustomize.toolkit.fluxcd.io "apps" is forbidden: '
        'User "system:serviceaccount:ci:reader" cannot patch resource "kustomizations" '
        'in API group "kustomize.toolkit.fluxcd.io" in the namespace "flux-system"'
    )


def test_requested_at_makes_kustomization_apply_the_pushed_revision(
    kube_api: KubeAPIServer, custom_objects: k8s.CustomObjectsApi, branch_heads: BranchHeads
) -> None:
    kube_api.add_kustomization(
        "apps", revision=OLD
    )  # no GitRepository object: the head resolver is the source
    branch_heads["main"] = PUSHED
    requested = "2024-05-01T10:00:00Z"

    patch_cr(
        custom_objects,
        KUSTOMIZATIONS,
        "flux-system",
        "apps",
        {"metadata": {"annotations": {REQUESTED_AT: requested}}},
    )
    seen = poll(
        partial(get_cr, custom_objects, KUSTOMIZATIONS, "flux-system", "apps"),
        lambda ks: ks["status"].get("lastHandledReconcileAt") == requested,
    )

    ready = [next(c for c in ks["status"]["conditions"] if c["type"] == "Ready") for ks in seen]
    assert [c["status"] for c in ready] == ["Unknown", "True"]
    assert seen[-1]["status"]["lastAppliedRevision"] == f"main@sha1:{PUSHED}"
    assert ready[-1]["message"] == f"Applied revision: main@sha1:{PUSHED}"


def test_kustomization_applies_the_source_artifact_not_the_branch_head(
    kube_api: KubeAPIServer, custom_objects: k8s.CustomObjectsApi, branch_heads: BranchHeads
) -> None:
    kube_api.add_git_repository("flux-system", url=REPO, revision=OLD)
    kube_api.add_kustomization("flux-system", revision=OLD)
    branch_heads["main"] = PUSHED
    get_ks = partial(get_cr, custom_objects, KUSTOMIZATIONS, "flux-system", "flux-system")
    annotate = {"metadata": {"annotations": {REQUESTED_AT: "1"}}}

    patch_cr(custom_objects, KUSTOMIZATIONS, "flux-system", "flux-system", annotate)
    stale = poll(get_ks, lambda ks: ks["status"].get("lastHandledReconcileAt") == "1")[-1]
    patch_cr(custom_objects, GIT_REPOSITORIES, "flux-system", "flux-system", annotate)
    poll(
        partial(get_cr, custom_objects, GIT_REPOSITORIES, "flux-system", "flux-system"),
        lambda src: src["status"]["artifact"]["revision"] == f"main@sha1:{PUSHED}",
    )
    fresh = poll(get_ks, lambda ks: ks["status"]["lastAppliedRevision"] == f"main@sha1:{PUSHED}")[-1]

    assert stale["status"]["lastAppliedRevision"] == f"main@sha1:{OLD}", "the source was not refetched yet"
    assert fresh["status"]["lastHandledReconcileAt"] == "1", (
        "a source-triggered run keeps the handled request"
    )


def test_flux_receiver_to_kube_api_end_to_end_with_a_failing_kustomization(
    http: requests.Session,
    kube_api: KubeAPIServer,
    flux_receiver: FluxReceiverServer,
    custom_objects: k8s.CustomObjectsApi,
    branch_heads: BranchHeads,
) -> None:
    kube_api.add_git_repository("flux-system", url=REPO, revision=OLD)
    kube_api.add_kustomization("flux-system", revision=OLD)
    kube_api.fail_kustomization("flux-system")
    flux_receiver.annotate = kube_api.request_reconcile
    branch_heads["main"] = PUSHED

    assert _hook(http, flux_receiver.webhook_url(), flux_receiver.receivers[0].token).status_code == 200
    source_request, ks_request = flux_receiver.reconcile_requests  # one timestamp per resource
    source = poll(
        partial(get_cr, custom_objects, GIT_REPOSITORIES, "flux-system", "flux-system"),
        lambda src: src["status"]["artifact"]["revision"].endswith(PUSHED),
    )[-1]
    ks = poll(
        partial(get_cr, custom_objects, KUSTOMIZATIONS, "flux-system", "flux-system"),
        lambda k: (
            k["status"].get("lastHandledReconcileAt") == ks_request.requested_at
            and k["status"]["lastAttemptedRevision"].endswith(PUSHED)
        ),
        limit=20,
    )[-1]

    assert source["metadata"]["annotations"][REQUESTED_AT] == source_request.requested_at
    ready = next(c for c in ks["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "HealthCheckFailed")
    assert ks["status"]["lastAppliedRevision"] == f"main@sha1:{OLD}"


def test_application_refresh_and_operation_via_kube_api(
    kube_api: KubeAPIServer, custom_objects: k8s.CustomObjectsApi, branch_heads: BranchHeads
) -> None:
    kube_api.add_application("web", repo_url=REPO, revision=OLD)
    branch_heads["main"] = PUSHED
    get_app = partial(get_cr, custom_objects, APPLICATIONS, "argocd", "web")
    refresh = {"metadata": {"annotations": {"argocd.argoproj.io/refresh": "normal"}}}
    operation = {"operation": {"sync": {"revision": PUSHED}, "initiatedBy": {"username": "ci"}}}

    patch_cr(custom_objects, APPLICATIONS, "argocd", "web", refresh)
    refreshed = get_app()
    patch_cr(custom_objects, APPLICATIONS, "argocd", "web", operation)
    seen = poll(get_app, lambda app: _phase(app)[:2] == ("Synced", "Healthy"))

    assert refreshed["status"]["sync"]["status"] == "OutOfSync"
    assert "argocd.argoproj.io/refresh" not in refreshed["metadata"].get("annotations", {})
    assert seen[-1]["status"]["sync"]["revision"] == PUSHED and "operation" not in seen[-1]
    assert seen[-1]["status"]["operationState"]["operation"]["initiatedBy"] == {"username": "ci"}
    assert int(seen[-1]["metadata"]["resourceVersion"]) > int(refreshed["metadata"]["resourceVersion"])
    assert get_app()["metadata"]["resourceVersion"] == seen[-1]["metadata"]["resourceVersion"], "settled"
