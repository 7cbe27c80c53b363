"""Run the gitops-ci benchmarks: `python benchmarks/run.py [--quick] [--only NAME]...`.

Prints a table and writes benchmarks/results/latest.json. Every target is a ratio against a baseline
measured in the same run (see benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_api
import bench_deploy
import bench_faults
import bench_set_image
import bench_validate
from common import REPO_ROOT, RESULTS_DIR, WORK_DIR, Report, forget_installed_copy, git, gitops_ci_python

BENCHMARKS: dict[str, Callable[[bool], list[Report]]] = {
    "set-image": lambda quick: [bench_set_image.cold_start(quick)],
    "set-image-many": lambda quick: [bench_set_image.many_overlays(quick)],
    "deploy": lambda quick: bench_deploy.run_benchmarks(quick, sequential_=True, concurrent_=False),
    "deploy-concurrent": lambda quick: bench_deploy.run_benchmarks(
        quick, sequential_=False, concurrent_=True
    ),
    "deploy-faults": bench_faults.fault_run,
    "deploy-api": bench_api.run_benchmarks,
    "validate": bench_validate.run_benchmarks,
}
_DEPLOY = {"deploy", "deploy-concurrent"}  # share one server and one set of repos


def _selected(only: list[str]) -> list[str]:
    names = [n for item in only for n in item.split(",") if n] or list(BENCHMARKS)
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    return names


def _guarded(name: str, benchmark: Callable[[], list[Report]]) -> list[Report]:
    """Run one benchmark; a failure is reported (and fails the run) without losing the others' figures."""
    print(f"running {name} …", file=sys.stderr, flush=True)
    try:
        return benchmark()
    except Exception as err:  # a benchmark that breaks must not hide the other results
        traceback.print_exc()
        report = Report(f"{name}: FAILED")
        report.row("error", f"{type(err).__name__}: {str(err)[:500]}")
        report.failed = True
        return [report]


def _machine() -> dict[str, object]:
    version = subprocess.run([git(), "--version"], capture_output=True, text=True, check=True).stdout.strip()
    # Where the console script's interpreter imports gitops_ci from (not from the current directory).
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    try:
        python = gitops_ci_python()
    except Exception as err:  # the build failed: every benchmark says so; the results are still written
        python = f"(no install: {err})"
    source = subprocess.run(
        [python, "-c", "import gitops_ci; print(gitops_ci.__file__)"],
        capture_output=True,
        text=True,
        check=False,
        cwd=WORK_DIR,
    ).stdout.strip()
    head = subprocess.run(
        [git(), "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        [git(), "-C", str(REPO_ROOT), "status", "--porcelain", "--", "gitops_ci"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return {
        "gitops_ci_source": source,
        "repo_head": head,
        "gitops_ci_uncommitted_changes": bool(dirty),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "git": version,
    }


def _print_table(reports: list[Report]) -> None:
    width = max((len(label) for r in reports for label, _ in r.rows), default=40)
    width = max(width, *(len(t.name) for r in reports for t in r.targets), 40)
    for report in reports:
        print(f"\n== {report.name}")
        for label, value in report.rows:
            print(f"  {label:<{width}}  {value}")
        for target in report.targets:
            mark = "met   " if target.met else "MISSED"
            print(
                f"  {target.name:<{width}}  {target.value:7.2f}  (target {target.op} {target.limit})  {mark}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer runs and smaller repos (about 2 minutes)")
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help=f"run only NAME ({', '.join(BENCHMARKS)})"
    )
    args = parser.parse_args(argv)
    names = _selected(args.only)
    started = time.perf_counter()
    reports: list[Report] = []
    deploy_names = [n for n in names if n in _DEPLOY]
    for name in names:
        if name in _DEPLOY:
            if name != deploy_names[0]:
                continue
            # One server and one set of repos for both deploy benchmarks.
            label = ", ".join(deploy_names)
            reports += _guarded(
                label,
                lambda: bench_deploy.run_benchmarks(
                    args.quick, sequential_="deploy" in names, concurrent_="deploy-concurrent" in names
                ),
            )
            continue
        reports += _guarded(name, functools.partial(BENCHMARKS[name], args.quick))
    elapsed = time.perf_counter() - started
    machine = _machine()  # before the scratch space goes: it holds the measured install
    forget_installed_copy()
    _print_table(reports)
    targets = [t for r in reports for t in r.targets]
    met = sum(t.met for t in targets)
    print(f"\n{met} of {len(targets)} targets met; {elapsed:.0f} s{' (--quick)' if args.quick else ''}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result = {
        "machine": machine,
        "quick": args.quick,
        "elapsed_s": round(elapsed, 1),
        "targets": [t.as_dict() for t in targets],
        "benchmarks": {
            r.name: {
                "rows": [list(row) for row in r.rows],
                "failed": r.failed,
                "targets": [t.as_dict() for t in r.targets],
                "data": r.data,
            }
            for r in reports
        },
    }
    out = RESULTS_DIR / "latest.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(Path.cwd()) if out.is_relative_to(Path.cwd()) else out}")
    return 1 if any(r.failed for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
