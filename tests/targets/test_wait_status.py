"""Pure parts of sync and wait: status evaluation, revision matching, durations, the Push Hook, the loop."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from gitops_ci.errors import ConfigurationError
from gitops_ci.targets.durations import format_duration, parse_duration
from gitops_ci.targets.push_hook import project_web_url, push_hook_payload
from gitops_ci.targets.sync import app_names
from gitops_ci.targets.wait import Observer, RolloutFailedError, RolloutTimeoutError, poll_until_ready
from gitops_ci.targets.wait_status import (
    TargetStatus,
    evaluate_application,
    evaluate_kustomization,
    revision_matches,
    revision_sha,
    short,
)

SHA = "4f1c2e3d4b5a69788796a5b4c3d2e1f0a9b8c7d6"
OLD = "1" * 40
LATER = "2" * 40

# --------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10m", 600), ("90s", 90), ("1h", 3600), ("1h30m", 5400), ("2m30s", 150), ("45", 45), ("0.5", 0.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "10x", "m", "-5", "0", "0s", "1d", "ten", "inf", "nan", "1e10", "169h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ConfigurationError):
        parse_duration(text)


def test_format_duration() -> None:
    assert [format_duration(s) for s in (600, 90, 0.3, 3600)] == ["10m", "90s", "0.3s", "60m"]


# --------------------------------------------------------------------------- revisions


@pytest.mark.parametrize(
    ("reported", "sha"),
    [
        (SHA, SHA),
        (SHA.upper(), SHA),
        (f"main@sha1:{SHA}", SHA),
        (f"refs/heads/main@sha1:{SHA}", SHA),
        (f"main/{SHA}", SHA),
        ("main", None),
        ("", None),
        (None, None),
    ],
)
def test_revision_sha(reported: str | None, sha: str | None) -> None:
    assert revision_sha(reported) == sha


def test_revision_matches_exact_prefix_and_contains() -> None:
    assert revision_matches(f"main@sha1:{SHA}", SHA)
    assert revision_matches(SHA, SHA[:8])
    assert not revision_matches(SHA, SHA[:6]), "too short to be a prefix"
    assert not revision_matches(OLD, SHA)
    assert not revision_matches(LATER, SHA, contains=lambda sha: False)
    assert revision_matches(LATER, SHA, contains=lambda sha: sha == LATER)
    assert not revision_matches(None, SHA, contains=lambda sha: True)


def test_short_keeps_the_branch_part() -> None:
    assert short(f"main@sha1:{SHA}") == f"main@sha1:{SHA[:12]}"
    assert short(SHA) == SHA[:12]


# --------------------------------------------------------------------------- Argo CD


def application(
    sync: str = "Synced",
    health: str = "Healthy",
    revision: str = SHA,
    phase: str | None = "Succeeded",
    op_revision: str | None = None,
    **status: Any,
) -> dict[str, Any]:
    app: dict[str, Any] = {
        "metadata": {"name": "web-dev"},
        "status": {"sync": {"status": sync, "revision": revision}, "health": {"status": health}, **status},
    }
    if phase:
        app["status"]["operationState"] = {
            "phase": phase,
            "message": "successfully synced (all tasks run)" if phase == "Succeeded" else f"{phase} message",
            "syncResult": {"revision": op_revision or revision},
        }
    return app


def state(app: dict[str, Any], wanted: str = SHA, **kwargs: Any) -> str:
    return evaluate_application("web-dev", app, wanted, **kwargs).state


def test_application_synced_healthy_at_the_revision_is_ready() -> None:
    result = evaluate_application("web-dev", application(), SHA)
    assert (result.state, result.revision, result.status) == (
        "ready",
        SHA,
        "Synced, Healthy, operation Succeeded",
    )
    assert result.messages == ()
    assert result.line() == f"web-dev: Synced, Healthy, operation Succeeded at {SHA[:12]}"


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        (application(revision=OLD), "waiting"),  # stale: synced, but at the old revision
        (application(sync="OutOfSync"), "waiting"),
        (application(health="Progressing"), "waiting"),
        (application(health="Missing"), "waiting"),
        (application(health="Suspended"), "waiting"),
        (application(health="Unknown"), "waiting"),
        (application(phase="Running"), "waiting"),
        (application(phase="Terminating"), "waiting"),
        (application(phase=None), "ready"),  # auto-synced long ago: no operation state needed
        (application(health="Degraded"), "failed"),
        (application(health="Degraded", revision=OLD), "waiting"),  # degraded before our revision arrived
        (application(health="Degraded", phase="Running"), "waiting"),
        (application(sync="OutOfSync", health="Healthy", phase="Failed"), "failed"),
        (application(sync="OutOfSync", phase="Error"), "failed"),
        (
            application(sync="OutOfSync", revision=SHA, phase="Failed", op_revision=OLD),
            "waiting",
        ),  # old failure
    ],
)
def test_application_states(app: dict[str, Any], expected: str) -> None:
    assert state(app) == expected


def test_pending_operation_field_means_not_done_yet() -> None:
    app = application()
    app["operation"] = {"sync": {"revision": SHA}}
    assert state(app) == "waiting"


def test_multi_source_revisions() -> None:
    app = application(revision="")
    app["status"]["sync"]["revisions"] = [OLD, SHA]
    assert state(app) == "ready"


def test_missing_status_is_waiting() -> None:
    result = evaluate_application("web-dev", {}, SHA)
    assert (result.state, result.status, result.revision) == ("waiting", "Unknown, Unknown", None)


def test_later_revision_accepted_only_when_it_contains_ours() -> None:
    assert state(application(revision=LATER)) == "waiting"
    assert state(application(revision=LATER), contains=lambda sha: sha == LATER) == "ready"
    assert state(application(revision=LATER), contains=lambda sha: False) == "waiting"


def test_degraded_reasons_come_from_resources_and_conditions() -> None:
    app = application(
        health="Degraded",
        resources=[
            {
                "kind": "Deployment",
                "namespace": "shop",
                "name": "web",
                "health": {
                    "status": "Degraded",
                    "message": 'Deployment "web" exceeded its progress deadline',
                },
            },
            {"kind": "Service", "name": "web", "health": {"status": "Healthy"}},
            {"kind": "ConfigMap", "name": "cfg"},
        ],
        conditions=[{"type": "SyncError", "message": "boom"}],
    )
    result = evaluate_application("web-dev", app, SHA)
    assert result.state == "failed"
    assert result.messages == (
        'Deployment shop/web: Degraded: Deployment "web" exceeded its progress deadline',
        "SyncError: boom",
    )


def test_argocd_2_health_message_and_failed_operation_resources() -> None:
    app = application(sync="OutOfSync", phase="Failed", health="Healthy")
    app["status"]["health"]["message"] = "legacy message"
    app["status"]["operationState"]["syncResult"]["resources"] = [
        {
            "kind": "Deployment",
            "namespace": "shop",
            "name": "web",
            "status": "SyncFailed",
            "message": "invalid",
        },
        {"kind": "Job", "name": "migrate", "hookPhase": "Failed", "message": "hook failed"},
        {"kind": "Service", "name": "web", "status": "Synced", "message": "unchanged"},
    ]
    assert evaluate_application("web-dev", app, SHA).messages == (
        "operation Failed: Failed message",
        "Deployment shop/web: invalid",
        "Job migrate: hook failed",
        "health: legacy message",
    )


# --------------------------------------------------------------------------- Flux


def kustomization(
    applied: str = f"main@sha1:{SHA}",
    ready: str = "True",
    reason: str = "ReconciliationSucceeded",
    attempted: str | None = None,
    generation: int = 1,
    observed: int | None = 1,
    suspend: bool = False,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "lastAppliedRevision": applied,
        "lastAttemptedRevision": attempted or applied,
        "conditions": [
            {"type": "Ready", "status": ready, "reason": reason, "message": f"{reason} message"},
        ],
    }
    if observed is not None:
        status["observedGeneration"] = observed
    return {
        "metadata": {"name": "apps", "namespace": "flux-system", "generation": generation},
        "spec": {"suspend": suspend},
        "status": status,
    }


def flux_state(obj: dict[str, Any], **kwargs: Any) -> str:
    return evaluate_kustomization("flux-system/apps", obj, SHA, **kwargs).state


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (kustomization(), "ready"),
        (kustomization(applied=f"main@sha1:{OLD}"), "waiting"),
        (kustomization(ready="Unknown", reason="Progressing"), "waiting"),
        (kustomization(generation=2), "waiting"),  # spec changed, not reconciled yet
        (kustomization(observed=None), "waiting"),
        (
            kustomization(
                applied=f"main@sha1:{OLD}",
                attempted=f"main@sha1:{SHA}",
                ready="False",
                reason="HealthCheckFailed",
            ),
            "failed",
        ),
        (kustomization(applied=f"main@sha1:{OLD}", ready="False", reason="HealthCheckFailed"), "waiting"),
        (
            kustomization(
                applied=f"main@sha1:{OLD}",
                attempted=f"main@sha1:{SHA}",
                ready="False",
                reason="DependencyNotReady",
            ),
            "waiting",
        ),
        (kustomization(suspend=True), "failed"),
    ],
)
def test_kustomization_states(obj: dict[str, Any], expected: str) -> None:
    assert flux_state(obj) == expected


def test_kustomization_failure_explains_itself() -> None:
    obj = kustomization(
        applied=f"main@sha1:{OLD}", attempted=f"main@sha1:{SHA}", ready="False", reason="HealthCheckFailed"
    )
    result = evaluate_kustomization("flux-system/apps", obj, SHA)
    assert result.revision == f"main@sha1:{SHA}", "the attempted revision is the one that failed"
    assert result.status == "Ready=False HealthCheckFailed"
    assert result.messages == ("Ready=False HealthCheckFailed: HealthCheckFailed message",)


def test_suspended_kustomization_says_how_to_resume() -> None:
    result = evaluate_kustomization("flux-system/apps", kustomization(suspend=True), SHA)
    assert "flux resume kustomization apps -n flux-system" in result.messages[0]


def test_kustomization_later_revision_with_contains() -> None:
    obj = kustomization(applied=f"main@sha1:{LATER}")
    assert flux_state(obj) == "waiting"
    assert flux_state(obj, contains=lambda sha: sha == LATER) == "ready"


WRONG_SHAPES: list[Any] = [
    {"status": []},
    {"status": {"sync": "Synced"}},
    {"status": {"sync": {"revision": 5, "revisions": "abc"}}},
    {"status": {"health": ["Healthy"]}},
    {"status": {"operationState": "Running"}},
    {"status": {"operationState": {"phase": "Failed", "syncResult": "x", "operation": []}}},
    {"status": {"resources": "x"}},
    {"status": {"resources": [1, {"health": "Degraded", "kind": 3}]}},
    {"status": {"conditions": "x"}},
    {"status": {"conditions": ["x", {"type": 5, "message": []}]}},
    {"status": {"observedGeneration": "1", "lastAppliedRevision": 5}},
    {"metadata": "x", "spec": "x"},
    {"spec": {"suspend": "yes", "sourceRef": "x"}},
]


@pytest.mark.parametrize("document", WRONG_SHAPES)
def test_a_document_of_another_shape_than_the_api_waits_instead_of_crashing(document: Any) -> None:
    """A proxy's JSON, or a server that is not Argo CD or a kube-apiserver: every field of the wrong shape
    reads as absent (it was an AttributeError, exit 3)."""
    app = evaluate_application("argocd/web", document, SHA)
    flux = evaluate_kustomization("flux-system/apps", document, SHA, source={"kind": 3, "status": "x"})
    assert app.state == "waiting" and app.status.startswith("Unknown, Unknown")
    assert (flux.state, flux.status) == ("waiting", "Ready=Unknown")


# --------------------------------------------------------------------------- Push Hook and names


@pytest.mark.parametrize(
    ("url", "web_url", "path"),
    [
        (
            "https://gitlab.example.com/platform/manifests.git",
            "https://gitlab.example.com/platform/manifests",
            "platform/manifests",
        ),
        ("https://gitlab.example.com:8443/a/b/c/", "https://gitlab.example.com:8443/a/b/c", "a/b/c"),
        (
            "git@gitlab.example.com:platform/manifests.git",
            "https://gitlab.example.com/platform/manifests",
            "platform/manifests",
        ),
        (
            "ssh://git@gitlab.example.com:2222/platform/manifests.git",
            "https://gitlab.example.com/platform/manifests",
            "platform/manifests",
        ),
    ],
)
def test_project_web_url(url: str, web_url: str, path: str) -> None:
    assert project_web_url(url) == (web_url, path)


@pytest.mark.parametrize(
    "url", ["/srv/git/manifests.git", "file:///srv/manifests", "https://gitlab.example.com/"]
)
def test_project_web_url_refuses_what_argocd_cannot_match(url: str) -> None:
    with pytest.raises(ConfigurationError, match="--repo-url"):
        project_web_url(url)


def test_push_hook_payload_has_what_argocd_reads() -> None:
    payload = push_hook_payload(
        repo_url="https://gitlab.example.com/platform/manifests.git",
        branch="main",
        default_branch="main",
        before=None,
        after=SHA,
        changed_files=["kustomize/web/overlays/dev/kustomization.yaml"],
    )
    assert payload["ref"] == "refs/heads/main"
    assert (payload["before"], payload["after"]) == ("0" * 40, SHA)
    assert payload["project"]["web_url"] == "https://gitlab.example.com/platform/manifests"
    assert payload["project"]["default_branch"] == "main"
    assert payload["commits"] == [
        {
            "id": SHA,
            "url": f"https://gitlab.example.com/platform/manifests/-/commit/{SHA}",
            "added": [],
            "modified": ["kustomize/web/overlays/dev/kustomization.yaml"],
            "removed": [],
        }
    ]


def test_app_names() -> None:
    assert app_names("{app}-{env}", "web", ("dev", "prod", "dev")) == ["web-dev", "web-prod"]
    assert app_names("{app}", "web", ()) == ["web"]
    assert app_names("{env}-cluster-{app}", "web", ("prod",)) == ["prod-cluster-web"]
    with pytest.raises(ConfigurationError, match="--env"):
        app_names("{app}-{env}", "web", ())
    with pytest.raises(ConfigurationError, match="--app-name-template"):
        app_names("{app}-{cluster}", "web", ("dev",))
    with pytest.raises(ConfigurationError, match="--app"):
        app_names("{app}", None, ())


# --------------------------------------------------------------------------- the loop, on a fake clock


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def scripted(name: str, *states: tuple[str, str]) -> Observer:
    """An observer that reports (state, status) in turn, then repeats the last one."""
    items: Iterator[tuple[str, str]] = iter(states)
    last: list[tuple[str, str]] = []

    def observe(budget: float) -> TargetStatus:
        del budget  # a scripted answer takes no time
        last[:] = [next(items, last[0] if last else states[-1])]
        state_, status = last[0]
        return TargetStatus(
            name,
            "argocd-application",
            state_,
            SHA if state_ != "waiting" else OLD,
            status,
            ("why",) if state_ != "ready" else (),
        )

    return observe


def run(observers: dict[str, Observer], fake: FakeTime, timeout: float = 60) -> Any:
    return poll_until_ready(
        observers, revision=SHA, timeout=timeout, interval=5, clock=fake.clock, sleep=fake.sleep
    )


def test_loop_logs_state_changes_not_polls(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeTime()
    observer = scripted(
        "web-dev",
        ("waiting", "Synced, Healthy"),
        ("waiting", "Synced, Healthy"),
        ("waiting", "OutOfSync, Progressing"),
        ("waiting", "OutOfSync, Progressing"),
        ("ready", "Synced, Healthy"),
    )
    with caplog.at_level(logging.INFO, logger="gitops_ci"):
        result = run({"web-dev": observer}, fake)
    assert result.status == "ready" and result.elapsed_seconds == 20
    assert fake.sleeps == [5, 5, 5, 5]
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("web-dev")]
    assert lines == [
        f"web-dev: Synced, Healthy at {OLD[:12]}",
        f"web-dev: OutOfSync, Progressing at {OLD[:12]}",
        f"web-dev: Synced, Healthy at {SHA[:12]}",
    ]


def test_loop_stops_polling_ready_targets_and_waits_for_the_rest() -> None:
    fake = FakeTime()
    calls: list[str] = []

    def counting(name: str, observer: Observer) -> Observer:
        def observe(budget: float) -> TargetStatus:
            calls.append(name)
            return observer(budget)

        return observe

    result = run(
        {
            "web-dev": counting("web-dev", scripted("web-dev", ("ready", "Synced, Healthy"))),
            "web-prod": counting(
                "web-prod",
                scripted("web-prod", ("waiting", "x"), ("waiting", "y"), ("ready", "Synced, Healthy")),
            ),
        },
        fake,
    )
    assert [t.name for t in result.targets] == ["web-dev", "web-prod"]
    assert calls == ["web-dev", "web-prod", "web-prod", "web-prod"]


def test_loop_fails_fast_with_the_reason() -> None:
    fake = FakeTime()
    with pytest.raises(RolloutFailedError) as failed:
        run({"web-dev": scripted("web-dev", ("waiting", "a"), ("failed", "Synced, Degraded"))}, fake)
    assert str(failed.value) == f"web-dev failed: Synced, Degraded at {SHA[:12]}\n  why"
    assert failed.value.result.status == "failed"
    assert fake.now == 105


def test_loop_times_out_at_the_deadline_without_oversleeping() -> None:
    fake = FakeTime()
    with pytest.raises(RolloutTimeoutError) as timed_out:
        run({"web-dev": scripted("web-dev", ("waiting", "OutOfSync, Progressing"))}, fake, timeout=12)
    assert fake.sleeps == [5, 5, 2]
    assert str(timed_out.value) == (
        f"web-dev was not synced and healthy at {SHA[:12]} within 12s; last status: "
        f"OutOfSync, Progressing at {OLD[:12]}\n  why"
    )
    assert timed_out.value.result.status == "timeout"
