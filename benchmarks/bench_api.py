"""`gitops-ci deploy --transport api` (GitLab's Commits API) against `--transport git`, the plain-git
floor and the seed job, on the big and the small repo, in one interleaved run; then 20 concurrent writers
through each transport. The GitLab contract server (tests/servers/gitlab_api.py) serves the same bare repos
as the git server, over TLS with keep-alive, so neither side is kinder: the API writes real commits into the
repo the git server serves, and every deploy is checked on it.
"""

from __future__ import annotations

import itertools
import shutil
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from bench_deploy import (
    JOBS,
    Context,
    _check_landed,
    _fresh_workdir,
    _gitops_argv,
    deploy_context,
)
from common import Report, Samples, fmt_s, fmt_samples, gitops_ci_python, log, ratio, run
from manifest_repo import BRANCH

from servers.git_repos import commit_count
from servers.gitlab_api import GitLabContractServer

VARIANTS = ("seed", "floor-no-checkout", "gitops-ci git", "gitops-ci api")
API_CLIENT_FLOOR = "import click, ruamel.yaml, ssl, http.client, json"
WRITERS = 20  # --quick: 10
WRITERS_NICENESS = 19  # the server keeps the cores it needs, as on a machine of its own


def run_benchmarks(quick: bool) -> list[Report]:
    with deploy_context(quick) as ctx, GitLabContractServer(tls=ctx.tls) as gitlab:
        gitlab.add_user("bench-bot")
        gitlab.add_token(ctx.server.token, username="bench-bot", scopes=("api", "write_repository"))
        for size, repo in ctx.repos.items():
            gitlab.add_project(f"bench/{size}", repo)
        return [sequential(ctx, gitlab, quick), concurrent(ctx, gitlab, quick)]


def _api_argv(ctx: Context, gitlab: GitLabContractServer, size: str, app: str, tag: str) -> list[str]:
    argv = _gitops_argv(ctx, size, app, tag)
    url = argv.index("--repo-url") + 1
    argv[url] = f"{gitlab.url}/bench/{size}.git"
    return [*argv, "--transport", "api", "--branch", BRANCH]


def _job(
    ctx: Context, gitlab: GitLabContractServer, variant: str, size: str, app: str
) -> tuple[float, int, int, float]:
    """One deploy: seconds, peak RSS, the requests it made to the server it wrote through, and the seconds
    the GitLab contract server spent answering them."""
    tag, workdir = ctx.new_tag(), _fresh_workdir(ctx)
    calls, requests, busy = len(gitlab.calls), len(ctx.server.requests), gitlab.api.busy_seconds
    try:
        if variant == "gitops-ci api":
            result = run(_api_argv(ctx, gitlab, size, app, tag), env=ctx.gitops_env(), cwd=workdir)
            seconds, rss = result.seconds, result.max_rss_kib
        else:
            outcome = JOBS[{"gitops-ci git": "gitops-ci"}.get(variant, variant)](ctx, size, app, tag, workdir)
            seconds, rss = outcome.seconds, outcome.max_rss_kib
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _check_landed(ctx, size, app, tag)
    made = len(gitlab.calls) - calls if variant == "gitops-ci api" else len(ctx.server.requests) - requests
    return seconds, rss, made, gitlab.api.busy_seconds - busy


def sequential(ctx: Context, gitlab: GitLabContractServer, quick: bool) -> Report:
    rounds, seed_rounds = (3, 1) if quick else (7, 2)
    samples = {(v, s): Samples() for v in VARIANTS for s in ctx.specs}
    made: dict[tuple[str, str], list[int]] = {key: [] for key in samples}
    served: dict[str, list[float]] = {size: [] for size in ctx.specs}  # the API deploys' server time
    floor = Samples()  # the API client's imports alone
    apps = itertools.count(11)
    log(f"deploy-api: {rounds} interleaved rounds of {', '.join(VARIANTS)} on both repos")
    for number in range(rounds):
        order = VARIANTS[number % len(VARIANTS) :] + VARIANTS[: number % len(VARIANTS)]
        for size in ctx.specs:
            for variant in order:
                if variant == "seed" and number >= seed_rounds:
                    continue
                app = ctx.specs[size].app((next(apps) * 41) % ctx.specs[size].apps)
                seconds, rss, requests, busy = _job(ctx, gitlab, variant, size, app)
                samples[(variant, size)].add(seconds, rss)
                made[(variant, size)].append(requests)
                if variant == "gitops-ci api":
                    served[size].append(busy)
        imports = run([gitops_ci_python(), "-c", API_CLIENT_FLOOR], env=ctx.gitops_env())
        floor.add(imports.seconds, imports.max_rss_kib)
    report = Report("deploy: --transport api vs --transport git vs the plain-git floor vs the seed job")
    for variant in VARIANTS:
        for size in ctx.specs:
            median = statistics.median(made[(variant, size)])
            report.row(
                f"{variant:<17} {size}", f"{fmt_samples(samples[(variant, size)])}, {median:.0f} requests"
            )

    def med(variant: str, size: str) -> float:
        return samples[(variant, size)].median

    _reachable(report, ctx, samples, served, floor)
    api_requests = max(made[("gitops-ci api", s)] for s in ctx.specs)
    report.target("api requests per uncontended deploy (max)", max(api_requests), "<=", 3)
    report.target(
        "api / git (big)", ratio(med("gitops-ci api", "big"), med("gitops-ci git", "big")), "<=", 0.35
    )
    report.target(
        "api big / small", ratio(med("gitops-ci api", "big"), med("gitops-ci api", "small")), "<=", 1.3
    )
    for size in ctx.specs:
        report.target(
            f"git / floor ({size})",
            ratio(med("gitops-ci git", size), med("floor-no-checkout", size)),
            "<=",
            1.05,
        )
        report.row(
            f"api / git ({size})", f"{ratio(med('gitops-ci api', size), med('gitops-ci git', size)):.2f}"
        )
        report.row(
            f"api / floor ({size})",
            f"{ratio(med('gitops-ci api', size), med('floor-no-checkout', size)):.2f}",
        )
    report.data = {f"{v}/{s}": {**samples[(v, s)].summary(), "requests": made[(v, s)]} for v, s in samples}
    report.data["api server seconds"] = served
    report.data["api client floor"] = floor.summary()
    return report


def _reachable(
    report: Report,
    ctx: Context,
    samples: dict[tuple[str, str], Samples],
    served: dict[str, list[float]],
    floor: Samples,
) -> None:
    """What the API deploy is made of: the server's answering time and the client's own, against the
    client's dependency floor (the interpreter importing click, ruamel.yaml, ssl, http.client, json)."""
    report.row("  api client floor: python importing its dependencies", fmt_samples(floor))
    server = {size: statistics.median(served[size]) for size in ctx.specs}
    for size in ctx.specs:
        client = samples[("gitops-ci api", size)].median - server[size]
        shares = f"{fmt_s(server[size])} / {fmt_s(client)}"
        report.row(f"  api {size}: server answering / the rest (client)", shares)
    git = samples[("gitops-ci git", "big")].median
    best = {size: floor.median + server[size] for size in ctx.specs}
    report.row(
        "  api / git (big) with a client at its floor (floor + server) / git", f"{best['big'] / git:.2f}"
    )
    report.row(
        "  api / git (big) with no client at all (the server alone) / git", f"{server['big'] / git:.2f}"
    )
    report.row("  api big / small with a client at its floor", f"{best['big'] / best['small']:.2f}")


def concurrent(ctx: Context, gitlab: GitLabContractServer, quick: bool) -> Report:
    """Per transport: serial, at once with the writers niced, at once at the server's priority, serial again
    (niced too: one writer at a time leaves a core free either way; the mean of the two serial batches
    cancels a drift of the run). The target is read on the niced batch:
    GitLab runs on machines of its own, and 20 writers starting at once on the same two cores stretched the
    contract server's POST from ~100 to 400-900 ms, the window in which other writers lose their race."""
    count = WRITERS // 2 if quick else WRITERS
    spec = ctx.specs["big"]
    report = Report(f"deploy: {count} concurrent writers of distinct apps, each transport (big repo)")
    first = itertools.count(2000, count)

    def batch(transport: str, parallel: bool, niceness: int = WRITERS_NICENESS) -> tuple[float, int]:
        apps = [spec.app((next(first) + i) % spec.apps) for i in range(count)]
        return _batch(ctx, gitlab, transport, apps, parallel, niceness)

    for transport in ("api", "git"):
        before, niced, equal, after = (
            batch(transport, False),
            batch(transport, True),
            batch(transport, True, 0),
            batch(transport, False),
        )
        serial = (before[0] + after[0]) / 2
        report.row(
            f"{transport}: {count} one after another (two batches)", f"{fmt_s(before[0])}, {fmt_s(after[0])}"
        )
        for name, (seconds, made) in (("niced", niced), ("at the server's priority", equal)):
            shown = (
                f"{fmt_s(seconds)} = {seconds / serial:.2f}× serial, {made / count:.1f} requests per deploy"
            )
            report.row(f"{transport}: {count} at once, {name}", shown)
        report.target(
            f"{transport}: concurrent (niced) / serial",
            ratio(niced[0], serial),
            "<=",
            1.5 if transport == "api" else 2.0,
        )
        if transport == "api":
            report.target("api: requests per concurrent deploy (niced, mean)", niced[1] / count, "<=", 4)
        report.data[transport] = {
            "serial_s": [before[0], after[0]],
            "concurrent_s": niced[0],
            "requests": niced[1],
            "equal_priority_s": equal[0],
            "equal_priority_requests": equal[1],
        }
    return report


def _batch(
    ctx: Context, gitlab: GitLabContractServer, transport: str, apps: list[str], parallel: bool, niceness: int
) -> tuple[float, int]:
    repo = ctx.repos["big"]
    before, calls, requests = commit_count(repo, BRANCH), len(gitlab.calls), len(ctx.server.requests)
    tags = {app: ctx.new_tag() for app in apps}
    workdir = _fresh_workdir(ctx)
    env = ctx.gitops_env()

    def one(app: str) -> int:
        argv = (
            _api_argv(ctx, gitlab, "big", app, tags[app])
            if transport == "api"
            else _gitops_argv(ctx, "big", app, tags[app])
        )
        return run(["nice", "-n", str(niceness), *argv], env=env, cwd=workdir, check=False).code

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(apps) if parallel else 1) as pool:
        codes = list(pool.map(one, apps))
    seconds = time.perf_counter() - start
    shutil.rmtree(workdir, ignore_errors=True)
    if codes != [0] * len(apps) or commit_count(repo, BRANCH) - before != len(apps):
        raise RuntimeError(f"{transport}: {codes.count(0)} of {len(apps)} deploys landed, exit codes {codes}")
    for app in apps:
        _check_landed(ctx, "big", app, tags[app])
    made = len(gitlab.calls) - calls if transport == "api" else len(ctx.server.requests) - requests
    return seconds, made
