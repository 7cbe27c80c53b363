"""50 concurrent `gitops-ci deploy`s of distinct apps while the server misbehaves.

The TLS smart-HTTP server of tests/servers/gitserver.py answers every 3rd push with a 500 (without running
git) and, on every 7th of the others, applies the push and then drops the connection unanswered (a lost
answer: the commit landed, the client does not know). The check is exact: every deploy that exits 0 added
exactly one commit whose message names its app, the branch grew by exactly the number of successes, and
every overlay holds its new tag. Nothing may land twice (a lost answer re-pushed would be a second commit,
or would revert another job's commit).
"""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from bench_deploy import (
    Context,
    _attempts,
    _check_landed,
    _fresh_workdir,
    _gitops_argv,
    _spread,
    deploy_context,
)
from common import Report, Run, fmt_s, git, log, run
from manifest_repo import BRANCH

from servers.git_repos import commit_count
from servers.gitserver import Fault

WRITERS = 50  # --quick: 20
FAILING_EVERY = 3
LOSING_EVERY = 7


def fault_run(quick: bool) -> list[Report]:
    with deploy_context(quick) as ctx:
        return [_fault_run(ctx, WRITERS // 2 - 5 if quick else WRITERS)]


def _fault_run(ctx: Context, count: int) -> Report:
    size = "small"
    repo, spec = ctx.repos[size], ctx.specs[size]
    apps = [spec.app(n) for n in range(count)]
    tags = {app: ctx.new_tag() for app in apps}
    before = commit_count(repo, BRANCH)
    tip = _tip(ctx, size)
    ctx.server.inject(Fault("status", status=500, every=FAILING_EVERY, times=10_000))
    ctx.server.inject(Fault("lose-answer", every=LOSING_EVERY, times=10_000))
    workdir = _fresh_workdir(ctx)
    env = ctx.gitops_env()
    log(f"deploy-faults: {count} concurrent deploys, every {FAILING_EVERY}rd push answers 500, lost answers")

    def one(app: str) -> Run:
        argv = [*_gitops_argv(ctx, size, app, tags[app]), "--push-timeout", "15m", "--max-attempts", "20"]
        return run(argv, env=env, cwd=workdir, check=False)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=count) as pool:
        results = list(pool.map(one, apps))
    seconds = time.perf_counter() - start
    pushes = [r for r in ctx.server.requests if r.service == "git-receive-pack" and r.method == "POST"]
    failed_500 = sum(1 for r in pushes if r.status == 500)
    lost = sum(1 for r in results if "landed after all" in r.err)
    succeeded = [app for app, r in zip(apps, results, strict=True) if r.code == 0]
    landed = commit_count(repo, BRANCH) - before
    per_app = Counter(_apps_in_messages(ctx, size, tip))
    duplicates = {app: n for app, n in per_app.items() if n != 1}
    for app in succeeded:
        _check_landed(ctx, size, app, tags[app])

    report = Report(f"deploy: {count} concurrent deploys while pushes fail and answers get lost (small repo)")
    report.row("wall time", fmt_s(seconds))
    report.row("push requests", f"{len(pushes)}: {failed_500} answered 500, {lost} deploys saw a lost answer")
    report.row("push attempts per deploy", _spread([_attempts(r) for r in results], "{:.0f}"))
    report.row(
        "landed exactly once",
        f"{len(succeeded)} of {count} deploys exited 0; {landed} commits landed; "
        + ("no app has two commits" if not duplicates else f"DUPLICATES {duplicates}"),
    )
    report.target("deploys that gave up", count - len(succeeded), "<=", 0)
    report.target("commits landed minus successful deploys", abs(landed - len(succeeded)), "<=", 0)
    report.target("apps with a commit count other than one", len(duplicates) + count - len(per_app), "<=", 0)
    report.data = {
        "deploys": count,
        "seconds": seconds,
        "push_requests": len(pushes),
        "answered_500": failed_500,
        "lost_answers_seen": lost,
        "succeeded": len(succeeded),
        "landed": landed,
        "duplicates": duplicates,
        "errors": [r.err.strip().splitlines()[-1:] for r in results if r.code != 0],
    }
    return report


def _tip(ctx: Context, size: str) -> str:
    return _git(ctx, size, "rev-parse", BRANCH).strip()


def _apps_in_messages(ctx: Context, size: str, since: str) -> list[str]:
    subjects = _git(ctx, size, "log", "--format=%s", f"{since}..{BRANCH}").splitlines()
    prefix = "[skip ci] update image of app "
    return [s[len(prefix) :].split(" ")[0] for s in subjects if s.startswith(prefix)]


def _git(ctx: Context, size: str, *args: str) -> str:
    command = [git(), "--git-dir", str(ctx.repos[size]), *args]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout
