"""`gitops-ci deploy` against the seed job and hand-written plain-git floors, on a big and a 10× smaller
manifest repo served by the real TLS smart-HTTP server of tests/servers/gitserver.py.

Variants (each clones, edits one overlay, commits and pushes one commit; every push is checked on the
server):

- seed: what the seed job does: a full `git clone`, the edit, `git commit -am "[skip ci] …"`, `git push`.
  The edit is a `sed` of the newTag line (no kustomize binary here; `sed` costs ~1 ms, so the seed is not
  made slower than it is).
- floor: `git clone --depth 1 --filter=blob:none --sparse --no-tags --single-branch`,
  `git sparse-checkout set <overlay dir>`, sed, `git commit -am`, `git push`.
- floor-sparse-index: the floor with `index.sparse=true` (the index keeps out-of-cone directories as one
  entry each instead of one entry per file of the whole repo).
- floor-tree0: the floor-sparse-index with `--filter=tree:0`, to see whether fetching only the trees on the
  edited path brings big/small toward 1×.
- floor-no-checkout: the floor-sparse-index cloned with `--no-checkout`, then `git sparse-checkout set` and
  `git reset --hard`: no full index is written before the cone is known (what gitops-ci does).
- gitops-ci: the installed CLI, `gitops-ci deploy` with GITOPS_TOKEN and --ca-file, one app, one env, a
  new tag each run.

Credentials always go through the environment (http.extraHeader), never in the URL.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import resource
import secrets
import shutil
import statistics
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    RUN_DIR,
    Report,
    Run,
    Samples,
    fmt_s,
    fmt_samples,
    git,
    gitops_ci,
    hermetic_env,
    import_test_helpers,
    log,
    ratio,
    run,
)
from manifest_repo import BRANCH, RepoSpec, cached_repo, serving_copy

import_test_helpers()

from manifests import overlay  # noqa: E402
from servers.git_repos import commit_count, commit_files, read_blob  # noqa: E402
from servers.gitserver import GitHttpServer, client_env  # noqa: E402
from servers.tls import TlsMaterial, make_ca  # noqa: E402

ENV = "dev"
FULL = {"big": RepoSpec(apps=3000, commits=30_000), "small": RepoSpec(apps=300, commits=3_000)}
QUICK = {"big": RepoSpec(apps=3000, commits=3_000), "small": RepoSpec(apps=300, commits=300)}
VARIANTS = ("seed", "floor", "floor-sparse-index", "floor-tree0", "floor-no-checkout", "gitops-ci")
CONCURRENT = 20  # --quick: 10, so that the whole quick run stays around two minutes
FAST_BACKOFF = 0.025
PROFILE_RUNS = 3  # traced runs per variant (--quick: 1); the one with the median wall time is shown


@dataclass
class Context:
    server: GitHttpServer
    repos: dict[str, Path]  # size -> served bare repo
    specs: dict[str, RepoSpec]
    scratch: Path
    generation_s: dict[str, float | None]
    tls: TlsMaterial | None = None  # the CA and certificate the servers present
    tags: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    trace_file: Path | None = None  # GIT_TRACE2_EVENT target for the jobs started while it is set

    def url(self, size: str) -> str:
        url: str = self.server.url_for(f"bench/{size}.git")
        return url

    def new_tag(self) -> str:
        number = next(self.tags)
        return f"9.{number // 1000}.{number % 1000}"

    def git_env(self) -> dict[str, str]:
        """A plain git client's environment: credentials as http.extraHeader, the test CA."""
        env: dict[str, str] = client_env(self.server, base=hermetic_env(self.scratch / "home", self._trace()))
        return env

    def gitops_env(self) -> dict[str, str]:
        return hermetic_env(self.scratch / "home", {"GITOPS_TOKEN": self.server.token, **self._trace()})

    def _trace(self) -> dict[str, str]:
        return {"GIT_TRACE2_EVENT": str(self.trace_file)} if self.trace_file else {}


@contextmanager
def deploy_context(quick: bool) -> Iterator[Context]:
    specs = QUICK if quick else FULL
    generation: dict[str, float | None] = {}
    pristine: dict[str, Path] = {}
    for size, spec in specs.items():
        log(f"{size} repo: {spec.apps} apps × 3 envs, {spec.commits} commits (cached under .work/repos)")
        pristine[size], generation[size] = cached_repo(spec)
        if generation[size] is not None:
            log(f"  generated in {generation[size]:.1f} s")
    scratch = RUN_DIR / "deploy"
    shutil.rmtree(scratch, ignore_errors=True)
    tls = make_ca(scratch / "tls")
    with GitHttpServer(scratch / "srv", tls, token=secrets.token_urlsafe(24)) as server:
        repos = {
            size: serving_copy(path, server.root, f"bench/{size}.git") for size, path in pristine.items()
        }
        yield Context(server, repos, specs, scratch, generation, tls)
    shutil.rmtree(scratch, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------
# The variants
# ---------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    seconds: float
    max_rss_kib: int
    steps: list[tuple[str, float]]


def _sed_tag(path: Path, tag: str) -> list[str]:
    return ["sed", "-i", f's/^    newTag: .*/    newTag: "{tag}"/', str(path)]


def _git_steps(steps: list[tuple[str, list[str]]], env: dict[str, str], cwd: Path) -> Outcome:
    runs: list[tuple[str, Run]] = []
    start = time.perf_counter()
    for name, argv in steps:
        runs.append((name, run(argv, env=env, cwd=cwd)))
    seconds = time.perf_counter() - start
    return Outcome(seconds, max(r.max_rss_kib for _, r in runs), [(name, r.seconds) for name, r in runs])


def seed_job(ctx: Context, size: str, app: str, tag: str, workdir: Path) -> Outcome:
    g = git()
    clone = workdir / "seed"
    path = overlay(app, ENV)
    return _git_steps(
        [
            ("clone", [g, "clone", "-q", ctx.url(size), str(clone)]),
            ("edit (sed)", _sed_tag(clone / path, tag)),
            ("commit -am", [g, "-C", str(clone), "commit", "-q", "-am", _message(app, tag)]),
            ("push", [g, "-C", str(clone), "push", "-q"]),
        ],
        ctx.git_env(),
        workdir,
    )


def floor_job(
    ctx: Context,
    size: str,
    app: str,
    tag: str,
    workdir: Path,
    *,
    sparse_index: bool,
    filter_spec: str,
    no_checkout: bool = False,
) -> Outcome:
    g = git()
    clone = workdir / "floor"
    path = overlay(app, ENV)
    options = ["--depth", "1", f"--filter={filter_spec}", "--sparse", "--no-tags", "--single-branch"]
    if sparse_index:
        options += ["-c", "index.sparse=true"]
    if no_checkout:
        options.append("--no-checkout")
    checkout = [g, "-C", str(clone), "sparse-checkout", "set"]
    if sparse_index:
        checkout.append("--sparse-index")
    reset = [("reset --hard", [g, "-C", str(clone), "reset", "-q", "--hard"])] if no_checkout else []
    return _git_steps(
        [
            ("clone", [g, "clone", "-q", *options, ctx.url(size), str(clone)]),
            ("sparse-checkout set", [*checkout, str(Path(path).parent)]),
            *reset,
            ("edit (sed)", _sed_tag(clone / path, tag)),
            ("commit -am", [g, "-C", str(clone), "commit", "-q", "-am", _message(app, tag)]),
            ("push", [g, "-C", str(clone), "push", "-q", "origin", f"HEAD:{BRANCH}"]),
        ],
        ctx.git_env(),
        workdir,
    )


def gitops_job(ctx: Context, size: str, app: str, tag: str, workdir: Path) -> Outcome:
    result = run(_gitops_argv(ctx, size, app, tag), env=ctx.gitops_env(), cwd=workdir)
    return Outcome(result.seconds, result.max_rss_kib, [("gitops-ci deploy", result.seconds)])


def _gitops_argv(ctx: Context, size: str, app: str, tag: str) -> list[str]:
    return [
        gitops_ci(),
        "deploy",
        "--repo-url",
        ctx.url(size),
        "--ca-file",
        str(ctx.server.ca_file),
        "--app",
        app,
        "--env",
        ENV,
        "--image",
        f"registry.example.com/shop/{app}:{tag}",
        "--format",
        "json",
    ]


def _message(app: str, tag: str) -> str:
    return f"[skip ci] update image of app {app} - {ENV} to registry.example.com/shop/{app}:{tag}"


JOBS: dict[str, Callable[[Context, str, str, str, Path], Outcome]] = {
    "seed": seed_job,
    "floor": lambda c, s, a, t, w: floor_job(c, s, a, t, w, sparse_index=False, filter_spec="blob:none"),
    "floor-sparse-index": lambda c, s, a, t, w: floor_job(
        c, s, a, t, w, sparse_index=True, filter_spec="blob:none"
    ),
    "floor-tree0": lambda c, s, a, t, w: floor_job(c, s, a, t, w, sparse_index=True, filter_spec="tree:0"),
    "floor-no-checkout": lambda c, s, a, t, w: floor_job(
        c, s, a, t, w, sparse_index=True, filter_spec="blob:none", no_checkout=True
    ),
    "gitops-ci": gitops_job,
}


def _check_landed(ctx: Context, size: str, app: str, tag: str) -> None:
    content = read_blob(ctx.repos[size], BRANCH, overlay(app, ENV))
    if f'"{tag}"' not in content and f"newTag: {tag}\n" not in content:
        raise RuntimeError(f"{app} {ENV} on the {size} repo does not hold {tag} after the push:\n{content}")


def _fresh_workdir(ctx: Context) -> Path:
    workdir = ctx.scratch / "jobs" / secrets.token_hex(4)
    workdir.mkdir(parents=True)
    return workdir


def timed_job(ctx: Context, variant: str, size: str, app: str) -> Outcome:
    tag = ctx.new_tag()
    workdir = _fresh_workdir(ctx)
    try:
        outcome = JOBS[variant](ctx, size, app, tag, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    _check_landed(ctx, size, app, tag)
    return outcome


# ---------------------------------------------------------------------------------------------------
# Sequential: seed vs floors vs gitops-ci on both sizes
# ---------------------------------------------------------------------------------------------------


def sequential(ctx: Context, quick: bool) -> Report:
    reps = 2 if quick else 5
    seed_reps = 1 if quick else 3  # a full clone of the big repo takes tens of seconds
    samples: dict[tuple[str, str], Samples] = {(v, s): Samples() for v in VARIANTS for s in ctx.specs}
    steps: dict[tuple[str, str], list[list[tuple[str, float]]]] = {key: [] for key in samples}
    apps = itertools.count(7)
    log(f"deploy: {reps} interleaved rounds ({seed_reps} with the seed job)")
    for round_number in range(reps):
        order = list(VARIANTS[round_number % len(VARIANTS) :] + VARIANTS[: round_number % len(VARIANTS)])
        for size in ctx.specs:
            for variant in order:
                if variant == "seed" and round_number >= seed_reps:
                    continue
                app = ctx.specs[size].app((next(apps) * 37) % ctx.specs[size].apps)
                outcome = timed_job(ctx, variant, size, app)
                samples[(variant, size)].add(outcome.seconds, outcome.max_rss_kib)
                steps[(variant, size)].append(outcome.steps)
        log(f"  round {round_number + 1}/{reps} done")

    report = Report("deploy: seed vs plain-git floors vs gitops-ci")
    for size, spec in ctx.specs.items():
        generated = ctx.generation_s[size]
        report.row(
            f"{size} repo",
            f"{spec.apps} apps × 3 envs, {spec.commits} commits; generation "
            + (f"{generated:.1f} s" if generated is not None else "cached"),
        )
    for variant in VARIANTS:
        for size in ctx.specs:
            report.row(f"{variant:<19} {size}", fmt_samples(samples[(variant, size)]))
            report.row(f"{'':<19} {size} steps", _median_steps(steps[(variant, size)]))

    def med(variant: str, size: str) -> float:
        return samples[(variant, size)].median

    report.target("seed / gitops-ci (big)", ratio(med("seed", "big"), med("gitops-ci", "big")), ">=", 15)
    report.target("gitops-ci / floor (big)", ratio(med("gitops-ci", "big"), med("floor", "big")), "<=", 1.25)
    report.target(
        "gitops-ci / floor (small)", ratio(med("gitops-ci", "small"), med("floor", "small")), "<=", 1.25
    )
    report.target(
        "gitops-ci big / small", ratio(med("gitops-ci", "big"), med("gitops-ci", "small")), "<=", 2.5
    )
    for variant in ("floor", "floor-sparse-index", "floor-tree0", "floor-no-checkout", "seed"):
        value = ratio(med(variant, "big"), med(variant, "small"))
        report.row(f"{variant} big / small", f"{value:.2f}")
    for floor in ("floor-sparse-index", "floor-no-checkout"):
        for size in ctx.specs:
            value = ratio(med("gitops-ci", size), med(floor, size))
            report.row(f"gitops-ci / {floor} ({size})", f"{value:.2f}")
    report.data = {
        "specs": {s: {"apps": p.apps, "commits": p.commits} for s, p in ctx.specs.items()},
        "generation_s": ctx.generation_s,
        "variants": {
            f"{variant}/{size}": {**samples[(variant, size)].summary(), "steps": steps[(variant, size)]}
            for variant, size in samples
        },
    }
    profile_into(report, ctx, runs=1 if quick else PROFILE_RUNS)
    return report


def _median_steps(runs: list[list[tuple[str, float]]]) -> str:
    if not runs:
        return "-"
    names = [name for name, _ in runs[0]]
    columns = [sorted(run_[i][1] for run_ in runs) for i in range(len(names))]
    return ", ".join(
        f"{name} {fmt_s(values[len(values) // 2])}" for name, values in zip(names, columns, strict=True)
    )


# ---------------------------------------------------------------------------------------------------
# Where the time goes: every git process of one run, from git's own trace2 events
# ---------------------------------------------------------------------------------------------------


def _trace(
    ctx: Context, variant: str, size: str, app: str
) -> tuple[float, list[dict[str, Any]], dict[str, Any]]:
    """One traced run: wall seconds, its git processes and (for the floors) what the clone holds."""
    trace = ctx.scratch / f"trace2-{variant}-{size}.json"
    trace.unlink(missing_ok=True)
    tag = ctx.new_tag()
    workdir = _fresh_workdir(ctx)
    wall_start = time.time()
    ctx.trace_file = trace
    try:
        outcome = JOBS[variant](ctx, size, app, tag, workdir)
        clone = _inspect_clone(workdir / "floor")
    finally:
        ctx.trace_file = None
        shutil.rmtree(workdir, ignore_errors=True)
    _check_landed(ctx, size, app, tag)
    processes = _processes(trace, wall_start)
    for process in processes:
        process["argv"] = process["argv"].replace(str(workdir), "<job>")
    return outcome.seconds, processes, clone


def _inspect_clone(clone: Path) -> dict[str, Any]:
    """Objects by type in a floor's clone (listing them fetches nothing) and the size of its index."""
    if not (clone / ".git").is_dir():
        return {}
    listing = run(
        [git(), "-C", str(clone), "cat-file", "--batch-all-objects", "--batch-check=%(objecttype)"],
        env=hermetic_env(clone.parent / "home"),
    )
    kinds: dict[str, int] = {}
    for kind in listing.out.split():
        kinds[kind] = kinds.get(kind, 0) + 1
    return {"objects": kinds, "index_kib": round((clone / ".git" / "index").stat().st_size / 1024)}


def _processes(trace: Path, wall_start: float) -> list[dict[str, Any]]:
    """One record per git process: argv, depth (0 = started by the job), start offset and duration."""
    starts: dict[str, tuple[float, list[str]]] = {}
    processes = []
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        when = dt.datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
        if event["event"] == "start":
            starts[event["sid"]] = (when, event["argv"])
        elif event["event"] == "exit" and event["sid"] in starts:
            began, argv = starts[event["sid"]]
            processes.append(
                {
                    "argv": " ".join(["git", *argv[1:]]),
                    "depth": event["sid"].count("/"),
                    "start_ms": round((began - wall_start) * 1000, 1),
                    "ms": round((when - began) * 1000, 1),
                }
            )
    return sorted(processes, key=lambda p: p["start_ms"])


def _summarise(seconds: float, processes: list[dict[str, Any]]) -> dict[str, Any]:
    top = [p for p in processes if p["depth"] == 0]
    git_ms = sum(p["ms"] for p in top)
    first = min((p["start_ms"] for p in top), default=0.0)
    last = max((p["start_ms"] + p["ms"] for p in top), default=0.0)
    return {
        "wall_ms": round(seconds * 1000, 1),
        "git_processes": len(processes),
        "top_level_git_commands": len(top),
        "https_sessions": sum(1 for p in processes if p["argv"].startswith("git remote-https")),
        "lazy_fetches": sum(1 for p in processes if " fetch " in p["argv"] and "--stdin" in p["argv"]),
        "git_ms": round(git_ms, 1),
        "before_first_git_ms": round(first, 1),
        "after_last_git_ms": round(seconds * 1000 - last, 1),
        "between_git_ms": round((last - first) - git_ms, 1),
        "outside_git_ms": round(seconds * 1000 - git_ms, 1),
        "processes": processes,
    }


def profile_into(report: Report, ctx: Context, runs: int) -> None:
    """Trace one gitops-ci deploy and one floor on the big repo and say where the wall time goes."""
    profiles: dict[str, dict[str, Any]] = {}
    spec = ctx.specs["big"]
    apps = (spec.app(spec.apps - 1 - n) for n in itertools.count())
    for variant in ("floor", "floor-tree0", "gitops-ci"):
        traced = sorted((_trace(ctx, variant, "big", next(apps)) for _ in range(runs)), key=lambda t: t[0])
        seconds, processes, clone = traced[len(traced) // 2]  # the run with the median wall time
        profiles[variant] = {**_summarise(seconds, processes), "clone": clone}
    for variant, summary in profiles.items():
        report.row(
            f"profile {variant} (big, median of {runs} traced runs)",
            f"wall {summary['wall_ms']:.0f} ms: {summary['top_level_git_commands']} git commands "
            f"({summary['git_processes']} git processes, {summary['https_sessions']} HTTPS sessions, "
            f"{summary['lazy_fetches']} lazy fetches) {summary['git_ms']:.0f} ms; outside git "
            f"{summary['outside_git_ms']:.0f} ms (before the first {summary['before_first_git_ms']:.0f}, "
            f"between {summary['between_git_ms']:.0f}, after the last {summary['after_last_git_ms']:.0f})",
        )
        if summary["clone"]:
            objects = ", ".join(f"{n} {kind}s" for kind, n in sorted(summary["clone"]["objects"].items()))
            report.row("    the clone holds", f"{objects}; index {summary['clone']['index_kib']} KiB")
        for process in summary["processes"]:
            if process["depth"] == 0:
                report.row(
                    f"    @{process['start_ms']:6.0f} ms", f"{process['ms']:6.0f} ms  {process['argv'][:90]}"
                )
    report.data["profiles"] = profiles


# ---------------------------------------------------------------------------------------------------
# 20 deploys of distinct apps at once vs the same 20 one after another
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Batch:
    seconds: float
    attempts: list[int]  # push attempts of each deploy
    slept: list[float]  # seconds each deploy slept in backoff before retrying (from its log)
    errors: list[str]  # the last error line of each deploy that gave up
    client_cpu_s: float  # CPU of the gitops-ci processes and their git children
    server_cpu_s: float  # CPU of the server's git http-backend processes during the batch


def concurrent(ctx: Context, quick: bool) -> Report:
    rounds = 1 if quick else 2
    count = CONCURRENT // 2 if quick else CONCURRENT
    spec, size = ctx.specs["big"], "big"
    serial, parallel = Samples(), Samples()
    batches: list[Batch] = []
    serial_batches: list[Batch] = []
    log(f"deploy-concurrent: {rounds} round(s) of {count} serial + {count} concurrent deploys")
    first_app = itertools.count(1000, count)

    def apps() -> list[str]:
        first = next(first_app)
        return [spec.app((first + i) % spec.apps) for i in range(count)]

    for round_number in range(rounds):
        modes = ["serial", "concurrent"] if round_number % 2 == 0 else ["concurrent", "serial"]
        for mode in modes:
            batch = _batch(ctx, size, apps(), parallel=mode == "concurrent")
            (parallel if mode == "concurrent" else serial).add(batch.seconds)
            (batches if mode == "concurrent" else serial_batches).append(batch)
        log(f"  round {round_number + 1}/{rounds} done")
    # Informational: the same concurrent batch with a 20× smaller backoff base (GITOPS_BACKOFF_SECONDS),
    # to show how much of the concurrent time is sleeping between rejected pushes.
    fast = None if quick else _batch(ctx, size, apps(), parallel=True, backoff=FAST_BACKOFF)

    report = Report(f"deploy: {count} concurrent deploys of distinct apps (big repo)")
    report.row(f"{count} deploys one after another", _fmt_batch(serial))
    report.row(f"{count} deploys at once", _fmt_batch(parallel))
    attempts = [a for b in batches for a in b.attempts]
    slept = [s for b in batches for s in b.slept]
    report.row("  push attempts per concurrent deploy", _spread(attempts, "{:.0f}"))
    report.row("  backoff sleep per concurrent deploy", _spread(slept, "{:.1f} s"))
    if fast is not None:
        report.row(
            f"  {count} at once with GITOPS_BACKOFF_SECONDS={FAST_BACKOFF}",
            f"{fmt_s(fast.seconds)} (ratio to serial {ratio(fast.seconds, serial.median):.2f}); attempts "
            + _spread(fast.attempts, "{:.0f}")
            + (f"; {len(fast.errors)} gave up" if fast.errors else ""),
        )
    for label, group in (("one after another", serial_batches), ("at once", batches)):
        report.row(f"  CPU per batch, {label}", _cpu(group))
    costs = retry_costs(ctx, size)
    for cost in costs:
        report.row(
            f"  lost race, {cost['step']}",
            f"{cost['ms']:4.0f} ms, CPU {cost['client_cpu_ms']:4.0f} ms client"
            f" + {cost['server_cpu_ms']:4.0f} ms server"
            + (f", received {cost['objects_received']} objects" if cost["objects_received"] else ""),
        )
    failures = [e for b in batches for e in b.errors]
    report.row(
        "  all landed",
        "yes: every batch added one commit per deploy and every overlay holds its new tag"
        if not failures
        else f"NO: {len(failures)} of {len(attempts)} concurrent deploys gave up: {failures[0][:160]}",
    )
    report.target("concurrent / serial", ratio(parallel.median, serial.median), "<=", 2.0)
    report.target("concurrent deploys that gave up", len(failures), "<=", 0)
    report.data = {
        "deploys": count,
        "serial": serial.summary(),
        "concurrent": parallel.summary(),
        "attempts": attempts,
        "backoff_slept_s": slept,
        "lost_race_steps": costs,
        "cpu_s": {
            "serial": [{"client": b.client_cpu_s, "server": b.server_cpu_s} for b in serial_batches],
            "concurrent": [{"client": b.client_cpu_s, "server": b.server_cpu_s} for b in batches],
        },
        "failures": failures,
        "fast_backoff": None
        if fast is None
        else {
            "base_s": FAST_BACKOFF,
            "seconds": fast.seconds,
            "attempts": fast.attempts,
            "failures": fast.errors,
        },
    }
    return report


def retry_costs(ctx: Context, size: str) -> list[dict[str, Any]]:
    """What one lost push race costs, step by step, in a clone made the way gitops-ci makes it.

    The branch is moved by another writer before each push, so the push is rejected; then the steps of a
    re-apply: fetch the new tip (with --depth=1 as gitops-ci does, and without it), reset, add, commit.
    """
    g, env = git(), ctx.git_env()
    workdir = _fresh_workdir(ctx)
    clone = workdir / "clone"
    spec = ctx.specs[size]
    app, other = spec.app(spec.apps // 2), spec.app(spec.apps // 2 + 1)
    path = overlay(app, ENV)
    steps: list[dict[str, Any]] = []

    trace = workdir / "trace2.json"

    def step(name: str, *args: str, measured: bool = True, extra: dict[str, str] | None = None) -> None:
        trace.unlink(missing_ok=True)
        before = _children_cpu()
        traced = {**env, **(extra or {}), "GIT_TRACE2_EVENT": str(trace)}
        result = run([g, "-C", str(clone), *args], env=traced, check=False)
        server = max(0.0, _children_cpu() - before - result.cpu_s)
        if measured:
            steps.append(
                {
                    "step": name,
                    "ms": result.seconds * 1000,
                    "client_cpu_ms": result.cpu_s * 1000,
                    "server_cpu_ms": server * 1000,
                    "objects_received": _objects_received(trace),
                    "exit": result.code,
                }
            )

    try:
        options = ["--depth=1", "--filter=blob:none", "--sparse", "--no-tags", "--single-branch"]
        run([g, "clone", "-q", *options, ctx.url(size), str(clone)], env=env)
        step(
            "sparse-checkout set",
            "sparse-checkout",
            "set",
            "--cone",
            "--",
            str(Path(path).parent),
            measured=False,
        )
        for number, depth in enumerate((["--depth=1"], [])):
            commit_files(
                ctx.repos[size], BRANCH, {overlay(other, ENV): f"# moved {number}\n"}, "another writer"
            )
            run(_sed_tag(clone / path, ctx.new_tag()), env=env)
            step("add --sparse", "add", "--sparse", "--", path)
            step("commit", "commit", "-q", "--no-verify", "--no-gpg-sign", "-m", "bench")
            push = ["push", "--porcelain", "--no-verify", "origin", f"HEAD:refs/heads/{BRANCH}"]
            # as gitops-ci pushes: no lazy fetch of the moved tip's trees to learn it does not fast-forward
            step("push (rejected)", *push, extra={"GIT_NO_LAZY_FETCH": "1"})
            fetch = [
                "fetch",
                *depth,
                "--filter=blob:none",
                "--no-tags",
                "origin",
                f"+refs/heads/{BRANCH}:refs/remotes/origin/{BRANCH}",
            ]
            step(f"fetch {' '.join(depth) or '(no --depth)'}", *fetch)
            step("reset --hard", "reset", "--hard", "-q", f"refs/remotes/origin/{BRANCH}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return steps


_PACK_HEADER = re.compile(r"--pack_header=\d+,(\d+)")


def _objects_received(trace: Path) -> int:
    """Objects in the packs git received during one traced command (from index-pack's argv)."""
    if not trace.exists():
        return 0
    total = 0
    for line in trace.read_text().splitlines():
        event = json.loads(line)
        if event.get("event") == "start" and "index-pack" in event.get("argv", []):
            match = _PACK_HEADER.search(" ".join(event["argv"]))
            total += int(match[1]) if match else 0
    return total


def _cpu(batches: list[Batch]) -> str:
    client = statistics.median(b.client_cpu_s for b in batches)
    server = statistics.median(b.server_cpu_s for b in batches)
    return f"{client + server:.1f} s (gitops-ci + git {client:.1f} s, server {server:.1f} s), median"


def _spread(values: list[int] | list[float], fmt: str) -> str:
    ordered = sorted(values)
    median = ordered[len(ordered) // 2]
    return f"median {fmt.format(median)}, max {fmt.format(ordered[-1])}, total {fmt.format(sum(ordered))}"


def _fmt_batch(samples: Samples) -> str:
    runs = ", ".join(fmt_s(s) for s in samples.seconds)
    return f"{fmt_s(samples.median)} (median of {len(samples.seconds)}: {runs})"


_RETRY_LOG = re.compile(r"retrying in ([0-9.]+)s")
_ATTEMPT_LOG = re.compile(r"\(attempt (\d+)\)")


def _attempts(result: Run) -> int:
    """Push attempts of one deploy: its JSON result, or for one that gave up, the attempts it logged."""
    if result.code == 0:
        return int(json.loads(result.out).get("attempts", 1))
    return max((int(n) for n in _ATTEMPT_LOG.findall(result.err)), default=0)


def _batch(
    ctx: Context,
    size: str,
    apps: list[str],
    *,
    parallel: bool,
    backoff: float | None = None,
) -> Batch:
    """Deploy each app (a new tag each), serially or all at once; check that every success landed."""
    repo = ctx.repos[size]
    before = commit_count(repo, BRANCH)
    tags = {app: ctx.new_tag() for app in apps}
    workdir = _fresh_workdir(ctx)
    env = ctx.gitops_env()
    if backoff is not None:
        env["GITOPS_BACKOFF_SECONDS"] = str(backoff)

    def one(app: str) -> Run:
        return run(_gitops_argv(ctx, size, app, tags[app]), env=env, cwd=workdir, check=False)

    children_before = _children_cpu()
    start = time.perf_counter()
    if parallel:
        with ThreadPoolExecutor(max_workers=len(apps)) as pool:
            results = list(pool.map(one, apps))
    else:
        results = [one(app) for app in apps]
    seconds = time.perf_counter() - start
    client_cpu = sum(r.cpu_s for r in results)
    # Every process this benchmark waited for: the deploys (through GNU time) and the http-backends.
    server_cpu = _children_cpu() - children_before - client_cpu
    shutil.rmtree(workdir, ignore_errors=True)
    succeeded = [app for app, r in zip(apps, results, strict=True) if r.code == 0]
    if not parallel and len(succeeded) != len(apps):
        failed = next(r for r in results if r.code != 0)
        raise RuntimeError(f"a serial deploy failed: {failed.err[-2000:]}")
    landed = commit_count(repo, BRANCH) - before
    if landed != len(succeeded):
        raise RuntimeError(f"{landed} commits landed for {len(succeeded)} successful deploys")
    for app in succeeded:
        _check_landed(ctx, size, app, tags[app])
    return Batch(
        seconds,
        [_attempts(r) for r in results],
        [sum(float(m) for m in _RETRY_LOG.findall(r.err)) for r in results],
        [(r.err.strip().splitlines() or ["?"])[-1] for r in results if r.code != 0],
        client_cpu,
        server_cpu,
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_benchmarks(quick: bool, *, sequential_: bool, concurrent_: bool) -> list[Report]:
    reports = []
    with deploy_context(quick) as ctx:
        if sequential_:
            reports.append(sequential(ctx, quick))
        if concurrent_:
            reports.append(concurrent(ctx, quick))
    return reports
