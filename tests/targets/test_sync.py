"""Pure parts of the sync targets: requests as planned (secrets masked), URLs, references, Flux helpers."""

from __future__ import annotations

from typing import Any

import pytest

from gitops_ci.errors import ConfigurationError, SyncError, WaitTimeoutError
from gitops_ci.targets import flux
from gitops_ci.targets.argocd import ArgoCDApi, server_url, webhook_request
from gitops_ci.targets.object_names import parse_object_ref
from gitops_ci.targets.sync import SyncSettings, check_revision
from gitops_ci.targets.wait import WaitSettings
from gitops_ci.targets.wait_status import evaluate_kustomization

SHA = "4f1c2e3d4b5a69788796a5b4c3d2e1f0a9b8c7d6"


def test_planned_requests_never_show_secrets() -> None:
    hook = webhook_request(
        "https://argocd.example.com/api/webhook", {"ref": "refs/heads/main"}, "s3cr3t-value"
    )
    api = ArgoCDApi("argocd.example.com", "jwt-token-value")
    sync = api.sync_request("web-dev", revision=SHA, prune=False, app_namespace="team-a")

    assert hook.headers["X-Gitlab-Token"] == "s3cr3t-value"
    assert hook.shown()["headers"] == {
        "Content-Type": "application/json",
        "X-Gitlab-Event": "Push Hook",
        "X-Gitlab-Token": "[MASKED]",
    }
    assert sync.shown()["headers"]["Authorization"] == "Bearer [MASKED]"
    assert sync.url == "https://argocd.example.com/api/v1/applications/web-dev/sync"
    assert sync.body == {"name": "web-dev", "prune": False, "revision": SHA, "appNamespace": "team-a"}
    assert "s3cr3t-value" not in repr(hook) and "jwt-token-value" not in repr(sync)


def test_webhook_without_secret_sends_no_token_header() -> None:
    assert "X-Gitlab-Token" not in webhook_request("https://a.example/api/webhook", {}, None).headers


@pytest.mark.parametrize(
    ("given", "url"),
    [
        ("argocd.example.com", "https://argocd.example.com"),
        ("argocd.example.com:8443", "https://argocd.example.com:8443"),
        ("https://argocd.example.com/", "https://argocd.example.com"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    ],
)
def test_server_url(given: str, url: str) -> None:
    assert server_url(given) == url


def test_server_url_refuses_other_schemes() -> None:
    with pytest.raises(ConfigurationError):
        server_url("grpc://argocd.example.com")


def test_application_names_are_url_escaped() -> None:
    api = ArgoCDApi("https://argocd.example.com", "token-value")
    assert api.get_request("a/b", None).url.endswith("/api/v1/applications/a%2Fb")
    assert api.get_request("web", "team-a", refresh=True).params == {
        "appNamespace": "team-a",
        "refresh": "normal",
    }


def test_receiver_request_validation() -> None:
    good = flux.receiver_request("https://flux.example.com/hook/abc", {}, "token-value")
    assert good.headers["X-Gitlab-Event"] == "Push Hook"
    with pytest.raises(ConfigurationError, match=r"status\.webhookPath"):
        flux.receiver_request("https://flux.example.com/abc", {}, "token-value")
    with pytest.raises(ConfigurationError, match="query string"):
        flux.receiver_request("https://flux.example.com/hook/abc?x=1", {}, "token-value")
    with pytest.raises(ConfigurationError, match="GITOPS_WEBHOOK_SECRET"):
        flux.receiver_request("https://flux.example.com/hook/abc", {}, None)


@pytest.mark.parametrize("value", ["apps", "/apps", "flux-system/", "a/b/c"])
def test_parse_object_ref_refuses(value: str) -> None:
    with pytest.raises(ConfigurationError, match="NAMESPACE/NAME"):
        parse_object_ref(value, "--flux-kustomization")


def test_check_revision() -> None:
    assert check_revision(SHA) == SHA and check_revision(None) is None
    for bad in ("main", "abc", "g" * 40):
        with pytest.raises(ConfigurationError):
            check_revision(bad)


def test_settings_validate_before_any_network() -> None:
    with pytest.raises(ConfigurationError, match="choose one sync target"):
        SyncSettings(revision=SHA)
    with pytest.raises(ConfigurationError, match="--branch"):
        SyncSettings(revision=SHA, argocd_webhook="https://a/api/webhook", repo_url="https://g/a/b")
    with pytest.raises(ConfigurationError, match="GITOPS_COMMIT_SHA"):
        SyncSettings(
            revision=None, argocd_webhook="https://a/api/webhook", repo_url="https://g/a/b", branch="m"
        )
    with pytest.raises(ConfigurationError, match="where to read the status"):
        WaitSettings(revision=SHA)
    with pytest.raises(ConfigurationError, match="no revision"):
        WaitSettings(revision="", argocd_kube=True)


def test_secrets_come_from_the_environment_and_stay_out_of_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GITOPS_WEBHOOK_SECRET", "webhook-secret-value")
    monkeypatch.setenv("ARGOCD_AUTH_TOKEN", "argocd-token-value")
    settings = SyncSettings(revision=SHA, argocd_server="https://argocd.example.com", app="web")
    assert (settings.webhook_secret, settings.argocd_token) == ("webhook-secret-value", "argocd-token-value")
    assert "value" not in repr(settings)


# --------------------------------------------------------------------------- Flux helpers


def source(handled: str | None, ready: str = "True", revision: str = f"main@sha1:{SHA}") -> dict[str, Any]:
    return {
        "kind": "GitRepository",
        "metadata": {"name": "flux-system", "namespace": "flux-system"},
        "status": {
            "lastHandledReconcileAt": handled,
            "artifact": {"revision": revision},
            "conditions": [
                {"type": "Ready", "status": ready, "reason": "GitOperationFailed", "message": "auth"}
            ],
        },
    }


def test_source_ref_defaults_to_the_kustomization_namespace() -> None:
    ks = {"metadata": {"namespace": "apps"}, "spec": {"sourceRef": {"kind": "GitRepository", "name": "repo"}}}
    assert flux.source_ref(ks) == ("GitRepository", "apps", "repo")


def test_source_handled() -> None:
    assert flux.source_handled(source("t1"), "t1") == (True, None)
    assert flux.source_handled(source("t0"), "t1") == (False, None)
    assert flux.source_handled(source("t1", ready="Unknown"), "t1") == (False, None)
    assert flux.source_handled(source("t1", ready="False"), "t1") == (True, "GitOperationFailed: auth")


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_await_source_returns_the_fetched_revision_or_fails() -> None:
    seen = iter([source("old"), source("old"), source("t1")])
    fake = FakeTime()
    fetched = flux.await_source(
        lambda: next(seen), "t1", subject="s", timeout=60, interval=2, clock=fake.clock, sleep=fake.sleep
    )
    assert (fetched, fake.now) == (f"main@sha1:{SHA}", 4)
    with pytest.raises(SyncError, match="failed to fetch the manifest repo: GitOperationFailed: auth"):
        flux.await_source(
            lambda: source("t1", ready="False"), "t1", subject="s", timeout=9, interval=2,
            clock=fake.clock, sleep=fake.sleep,
        )  # fmt: skip
    with pytest.raises(WaitTimeoutError, match="within 9s"):
        flux.await_source(
            lambda: source("old"),
            "t1",
            subject="s",
            timeout=9,
            interval=2,
            clock=fake.clock,
            sleep=fake.sleep,
        )


def test_kustomization_status_names_its_source_and_why_it_is_stuck() -> None:
    ks = {
        "metadata": {"generation": 1},
        "status": {
            "observedGeneration": 1,
            "lastAppliedRevision": "main@sha1:" + "1" * 40,
            "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded"}],
        },
    }
    result = evaluate_kustomization("flux-system/apps", ks, SHA, source=source("x", ready="False"))
    assert result.state == "waiting"
    assert result.note == f"source GitRepository flux-system/flux-system at main@sha1:{SHA[:12]}"
    assert result.messages == ("GitRepository flux-system/flux-system: Ready=False GitOperationFailed: auth",)
    assert result.line().endswith(f"at main@sha1:111111111111; {result.note}")


def test_a_connection_error_is_reported_whole() -> None:
    """urllib3 wraps `Connection refused` in 200 characters of pool and object names; we show the cause."""
    import socket

    from gitops_ci.errors import RetryableError
    from gitops_ci.targets.argocd import PlannedRequest, send

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    request = PlannedRequest("GET", f"http://127.0.0.1:{port}/api/v1/applications/x", {}, None)
    with pytest.raises(RetryableError) as caught:
        send(request, ca_file=None, what="Argo CD", timeout=5)
    message = str(caught.value)
    assert message.endswith("is unreachable ([Errno 111] Connection refused)"), message
    assert "…" not in message and "HTTPConnectionPool" not in message
