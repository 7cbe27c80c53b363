"""The one runner of every change: open → (plan → commit → publish, until it lands) → sync → wait.

It owns what steps must not: dry-run, the clock (injected: tests of retries and deadlines do not sleep), the
log sections, and the retry of "plan + commit + publish" after a lost race. Rejected pushes are never rebased:
the edit is planned again on the new tip, so a concurrent change to the same file is merged at the data level
and an unrelated one is simply kept.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import TYPE_CHECKING, Generic, TypeVar

from gitops_ci import logs
from gitops_ci.change import steps
from gitops_ci.change.model import (
    BUILT_IN_DEFAULTS,
    Change,
    ChangeStatus,
    DeployResult,
    MergeRequestResult,
    RepoDefaults,
)
from gitops_ci.change.settings import RepoSettings
from gitops_ci.errors import GitopsCiError, OperationalError
from gitops_ci.manifest_repo import meanwhile
from gitops_ci.manifest_repo.port import ManifestRepo
from gitops_ci.retry import SYSTEM_CLOCK, Clock, sleep_before_retry

if TYPE_CHECKING:
    from gitops_ci.change.follow_up import FollowUp, FollowUpResult

log = logs.get_logger(__name__)
FilesPlanner = Callable[[ManifestRepo], dict[str, str]]
PUSH_BACKOFF_CAP = 30.0
CYCLES_CAP = 8  # a window stops doubling at 8 cycles: by then most contenders have landed


@dataclass(frozen=True, kw_only=True)
class ChangeOutcome:
    """The change (it may have landed even when a follow-up failed: `error` is raised after reporting)."""

    result: DeployResult
    followed: FollowUpResult | None = None
    error: GitopsCiError | None = None


def run_change(change: Change, follow: FollowUp | None = None, clock: Clock = SYSTEM_CLOCK) -> ChangeOutcome:
    from gitops_ci.manifest_repo.open import open_repo

    settings = change.settings
    names = follow.settings.app_name_template if follow is not None else None
    wants_names = follow is not None and names is None
    read = change.reads_defaults or wants_names
    # json: the report's (--format json), written after the push, when nothing waits any more
    meanwhile.import_later(*(steps.DEFAULTS_IMPORTS if read else ()), *steps.PLAN_IMPORTS, "json")
    with open_repo(settings, change.sparse_paths, clock, overlays=change.overlays) as repo:
        defaults = settings.retried(lambda: steps.repo_defaults(repo, read), "reading gitops-ci.yaml", clock)
        # What the change and its follow-ups use, options first: the report and the dotenv say the same.
        defaults = replace(
            defaults,
            path_template=settings.path_template or defaults.path_template,
            app_name_template=names or defaults.app_name_template,
        )
        if settings.mode == "merge-request":
            from gitops_ci.change.merge_request import open_merge_requests

            result = open_merge_requests(repo, change, clock, defaults=defaults)
        else:
            result = land(repo, change, clock, defaults=defaults)
        if follow is None:
            return ChangeOutcome(result=result)
        from gitops_ci.change.follow_up import follow_up

        try:
            return ChangeOutcome(result=result, followed=follow_up(repo, result, follow, clock))
        except GitopsCiError as err:  # the change landed: it is reported, then the error
            return ChangeOutcome(result=result, error=err)


def land(
    repo: ManifestRepo,
    change: Change,
    clock: Clock = SYSTEM_CLOCK,
    *,
    defaults: RepoDefaults = BUILT_IN_DEFAULTS,
) -> DeployResult:
    """Plan, commit and push the image edits until they land (see `_until_landed`)."""
    settings = change.settings

    def attempt(number: int) -> _Attempt[DeployResult]:
        changes = steps.plan(repo, change.planner(repo, defaults))
        base = repo.base()  # after planning: an adapter may learn it from the reads

        def result(commit: str | None, landed_on: str) -> DeployResult:
            changed = any(c.edit.changed for c in changes)
            status: ChangeStatus = "pushed" if commit else "dry-run" if changed else "up-to-date"
            return DeployResult(status=status, repo_url=repo.url, branch=repo.branch, commit=commit,
                                base_commit=landed_on, changes=changes, attempts=number,
                                defaults=defaults)  # fmt: skip

        if settings.dry_run or not any(c.edit.changed for c in changes):
            return _Attempt(None, base, result)
        return _Attempt(steps.commit(repo, changes, settings, change.message_for), base, result)

    return _until_landed(repo, settings, attempt, clock)


def land_files(
    repo: ManifestRepo, plan: FilesPlanner, message: str, settings: RepoSettings, clock: Clock = SYSTEM_CLOCK
) -> FilesResult:
    """Write the files `plan` says are missing in one commit (see `_until_landed`)."""

    def attempt(number: int) -> _Attempt[FilesResult]:
        files = plan(repo)
        base = repo.base()

        def result(commit: str | None, landed_on: str) -> FilesResult:
            status: ChangeStatus = "pushed" if commit else "dry-run" if files else "up-to-date"
            return FilesResult(status=status, repo_url=repo.url, branch=repo.branch, commit=commit,
                               base_commit=landed_on, files=tuple(files), attempts=number)  # fmt: skip

        if settings.dry_run or not files:
            return _Attempt(None, base, result)
        return _Attempt(steps.commit_files(repo, files, message, settings), base, result)

    return _until_landed(repo, settings, attempt, clock)


R = TypeVar("R")


@dataclass(frozen=True)
class _Attempt(Generic[R]):
    """One planned attempt: the commit to push (None: nothing to push), the base it was planned on, and
    how to report it given the commit that landed (None: none) and the base it landed on."""

    commit: str | None
    base: str
    result: Callable[[str | None, str], R]


def _until_landed(
    repo: ManifestRepo, settings: RepoSettings, attempt: Callable[[int], _Attempt[R]], clock: Clock
) -> R:
    """Plan, commit and push until the push lands. A lost race plans again on the new tip until
    --push-timeout; a transient failure is retried --max-attempts times; whether a push landed is decided by
    ancestry."""
    deadline = clock.monotonic() + settings.push_timeout_seconds
    failures = 0
    for number in itertools.count(1):
        started = clock.monotonic()
        step = settings.retried(partial(attempt, number), "reading the manifest repo", clock)
        if step.commit is None:
            return step.result(None, step.base)
        sha = step.commit
        with logs.section(f"push_{number}", f"Pushing {sha[:12]} to {repo.branch} (attempt {number})"):
            outcome = steps.push(repo, sha)
        if outcome.status == "landed":  # the base it landed on (a server-side commit may say a newer one)
            return step.result(outcome.commit, repo.base())
        if outcome.status == "lost-race" and clock.monotonic() >= deadline:
            raise OperationalError(
                f"{repo.branch} kept moving: other pushes won {number} races in a row for "
                f"{settings.push_timeout_seconds:g}s; raise --push-timeout or look for a job that pushes in "
                "a loop"
            )
        failures += outcome.status == "failed"
        if failures == settings.max_attempts:
            raise OperationalError(
                f"push to {repo.branch} failed {failures} times: {outcome.reason}; raise --max-attempts if "
                "the server is only slow"
            )
        # Contenders collide while one of them is between its fetch and its push, so the backoff window grows
        # from the length of that cycle as measured here, not from a fixed base, and up to 8 of them. A lost
        # race says another writer is there: its first window spans two cycles, as binary exponential
        # backoff's first spans two slots.
        cycle = max(settings.backoff_seconds, clock.monotonic() - started)
        slots = 2 if outcome.status == "lost-race" else 1
        cap = max(0.0, min(PUSH_BACKOFF_CAP, CYCLES_CAP * cycle, deadline - clock.monotonic()))
        sleep_before_retry(number, slots * cycle, outcome.reason, cap=cap, clock=clock)
        tip = settings.retried(repo.refresh, "fetch", clock)
        # A push whose answer was lost may have landed, and another job may have landed on top of it since:
        # the tip's history, not the tip itself, says whether ours is in (never land it twice).
        if landed := settings.retried(partial(repo.landed, sha, tip), "looking for the push", clock):
            log.info("the previous push of %s landed after all", landed[:12])
            return step.result(landed, step.base)
    raise AssertionError("unreachable")


@dataclass(frozen=True, kw_only=True)
class FilesResult:
    """What writing files (onboarding) did: the files written in one commit, or why none."""

    status: ChangeStatus
    repo_url: str
    branch: str
    commit: str | None
    base_commit: str
    files: tuple[str, ...]
    attempts: int = 1
    merge_request: MergeRequestResult | None = None
