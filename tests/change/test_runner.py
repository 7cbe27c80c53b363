"""The runner of a change on the in-memory ManifestRepo with an injected clock: no test here sleeps."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from clock import FakeClock

from gitops_ci.change.model import Change, Target
from gitops_ci.change.runner import land
from gitops_ci.change.settings import RepoSettings, image_updates
from gitops_ci.errors import OperationalError, RetryableError
from gitops_ci.manifest_repo.memory import InMemoryManifestRepo
from manifests import manifest_files, overlay

Hook = Callable[[InMemoryManifestRepo, str, str], object]


def change(tag: str = "2.0", **settings: object) -> Change:
    updates = tuple(image_updates("web", [f"registry.example.com/shop/web:{tag}"]))
    target = Target(app="web", environment="dev", path="kustomize/web/overlays/dev", updates=updates)
    return Change(
        settings=RepoSettings(repo_url="memory://manifests", **settings),  # type: ignore[arg-type]
        sparse_paths=(target.path,),
        planner=lambda repo, defaults: [target],
        message_for=lambda changes: f"[skip ci] web to {tag}",
    )


def ours(repo: InMemoryManifestRepo) -> list[str]:
    return [c.message for c in repo.history() if c.message.startswith("[skip ci] web")]


@pytest.fixture
def repo() -> InMemoryManifestRepo:
    return InMemoryManifestRepo(manifest_files(["web", "api"]))


def test_a_change_lands_in_one_commit(repo: InMemoryManifestRepo) -> None:
    clock = FakeClock()
    result = land(repo, change(), clock)
    assert result.status == "pushed" and result.attempts == 1 and result.commit == repo.branch_tip("main")
    assert result.changed_files == [overlay("web", "dev")]
    assert ours(repo) == ["[skip ci] web to 2.0"] and clock.slept == []


def test_a_rerun_is_up_to_date_and_dry_run_commits_nothing(repo: InMemoryManifestRepo) -> None:
    land(repo, change(), FakeClock())
    tip = repo.branch_tip("main")
    assert land(repo, change(), FakeClock()).status == "up-to-date"
    dry = land(repo, change("3.0", dry_run=True), FakeClock())
    assert dry.status == "dry-run" and dry.commit is None and dry.changed_files == [overlay("web", "dev")]
    assert repo.branch_tip("main") == tip and repo.published == [("main", tip)]


def test_a_lost_race_is_planned_again_on_the_new_tip(repo: InMemoryManifestRepo) -> None:
    other = overlay("api", "dev")
    races = iter([True])

    def another_job_first(repo: InMemoryManifestRepo, commit: str, branch: str) -> None:
        if next(races, False):
            repo.land({other: repo.read(other).replace("1.0.0", "9.9.9")})  # type: ignore[union-attr]

    repo.on_publish = another_job_first
    clock = FakeClock()
    result = land(repo, change(), clock)
    assert result.status == "pushed" and result.attempts == 2 and len(clock.slept) == 1
    tip = repo.commits[repo.branch_tip("main")]  # type: ignore[index]
    assert '"9.9.9"' in tip.files[other] and 'newTag: "2.0"' in tip.files[overlay("web", "dev")]


@pytest.mark.parametrize("then_another_job", [False, True])
def test_a_lost_answer_is_found_by_ancestry_and_never_landed_twice(
    repo: InMemoryManifestRepo, then_another_job: bool
) -> None:
    answers = iter(["lost"])

    def land_then_lose_the_answer(repo: InMemoryManifestRepo, commit: str, branch: str) -> None:
        if next(answers, None) == "lost":
            repo.branches[branch] = commit  # the server applied the push
            if then_another_job:
                repo.land({"NOTES.md": "a concurrent landing before our refetch\n"})
            raise RetryableError("connection closed without an answer")

    repo.on_publish = land_then_lose_the_answer
    result = land(repo, change(), FakeClock())
    assert result.status == "pushed" and result.attempts == 1
    assert ours(repo) == ["[skip ci] web to 2.0"]  # once, and the other job's commit is kept
    assert repo.contains(result.commit, repo.branch_tip("main"))  # type: ignore[arg-type]
    tip = repo.commits[repo.branch_tip("main")]  # type: ignore[index]
    assert ("NOTES.md" in tip.files) is then_another_job


def test_a_branch_that_keeps_moving_gives_up_at_the_push_timeout(repo: InMemoryManifestRepo) -> None:
    repo.on_publish = lambda repo, commit, branch: repo.land({"README.md": f"{commit}\n"})
    clock = FakeClock()
    with pytest.raises(OperationalError, match="main kept moving: other pushes won"):
        land(repo, change(push_timeout_seconds=60.0), clock)
    assert 60.0 <= clock.now - 1000.0 < 60.0 + 30.0 and not ours(repo)


def test_a_lost_race_backs_off_two_cycles_then_doubles_up_to_eight(repo: InMemoryManifestRepo) -> None:
    """Late in a batch of contenders most have landed: windows of 16 or 32 cycles only left the server idle
    (20 concurrent git deploys: median 28.8 s against 20.8 s with the cap, in one interleaved probe). A first
    window of two cycles, not one, took 20 concurrent API deploys from 4.48 to 4.08 requests each and git
    deploys from 24.8 to 22.3, in no more time (interleaved probes of 6 and 4 batches)."""
    repo.on_publish = lambda repo, commit, branch: repo.land({"README.md": f"{commit}\n"})
    clock = FakeClock()  # attempts take no time: the cycle is --backoff's 0.5 s, jitter gives the window
    with pytest.raises(OperationalError, match="kept moving"):
        land(repo, change(push_timeout_seconds=30.0), clock)
    assert clock.slept[:5] == [1.0, 2.0, 4.0, 4.0, 4.0] and max(clock.slept) == 4.0


def test_transient_failures_stop_at_max_attempts(repo: InMemoryManifestRepo) -> None:
    def fail(repo: InMemoryManifestRepo, commit: str, branch: str) -> None:
        raise RetryableError("HTTP 502")

    repo.on_publish = fail
    clock = FakeClock()
    with pytest.raises(OperationalError, match="push to main failed 3 times: HTTP 502"):
        land(repo, change(max_attempts=3), clock)
    assert len(clock.slept) == 2 and not ours(repo)
