"""`gitops-ci validate` over the real corpus; `gitops-ci review` of one changed overlay in a 3,000-app repo.

Corpus: a fresh `validate ../shared/corpus --format json` process (skipped when the corpus is absent),
against its floor: `kubectl kustomize` of exactly the kustomizations that run built, in a pool of the same
size. The ratio is what discovery, parsing the renders and the schema checks add to the builds.

Review: tests/manifests.py's layout with 3,000 apps (9,000 overlays, benchmarks/manifest_repo.py's cached
repo), cloned; an MR branch bumps one overlay's tag; `review --base main --dry-run --format json` runs in
the clone. Its floor is the straightforward review: write the whole base tree (`git checkout-index`) and
build the overlay on both sides; gitops-ci instead writes only what the changed overlays read (and parses
12,000 kustomizations to find them). The two builds alone are shown too.

Run alone with `python benchmarks/bench_validate.py [--quick]`, or register `run_benchmarks` in run.py.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import (
    REPO_ROOT,
    RESULTS_DIR,
    WORK_DIR,
    Report,
    Samples,
    fmt_s,
    fmt_samples,
    git,
    gitops_ci_python,
    hermetic_env,
    kubectl,
    log,
    ratio,
    run,
)
from manifest_repo import RepoSpec, cached_repo

CORPUS = REPO_ROOT.parent / "shared" / "corpus"
JOBS = 4
# The installed entry point, with validate and review registered even before cli/app.py lists them.
LAUNCHER = "import sys\nfrom gitops_ci.cli.app import main\nsys.argv[0] = 'gitops-ci'\nmain()\n"


def gitops_argv(command: str, *args: str) -> list[str]:
    """The command with the same kubectl as the floors (PATH may hold another, e.g. a gcloud wrapper)."""
    return [gitops_ci_python(), "-c", LAUNCHER, command, "--kustomize", kubectl(), *args]


def corpus(quick: bool) -> Report:
    report = Report("validate: the whole corpus")
    if not (CORPUS / "MANIFEST.tsv").exists():
        report.row("corpus", f"not found at {CORPUS}; skipped")
        return report
    env = hermetic_env(WORK_DIR / "validate" / "home")
    log("validate: the whole corpus (one cold run)")
    result = run(
        gitops_argv("validate", str(CORPUS), "--format", "json", "--jobs", str(JOBS)), env=env, check=False
    )
    if result.code not in (0, 1):
        raise RuntimeError(f"validate exited {result.code}: {result.err[-2000:]}")
    data: dict[str, Any] = json.loads(result.out)
    built = [o["path"] for o in data["overlays"] if o["seconds"] > 0]
    log(f"floor: kubectl kustomize of the {len(built)} kustomizations it built, {JOBS} at a time")
    floor = _pool_builds(built, env)
    overlays = [o for o in data["overlays"] if o["role"] == "overlay"]
    report.row(
        "gitops-ci validate (corpus, cold process)",
        f"{fmt_s(result.seconds)}, peak RSS {result.max_rss_kib / 1024:.0f} MiB",
    )
    report.row(f"kubectl kustomize of the same {len(built)} dirs, {JOBS} at a time", fmt_s(floor))
    report.row("  overlays / built", f"{len(overlays)} / {sum(o['built'] for o in overlays)}")
    bases = [o for o in data["overlays"] if o["role"] != "overlay"]
    report.row(
        "  bases no building overlay includes / built", f"{len(bases)} / {sum(o['built'] for o in bases)}"
    )
    report.row("  objects checked", str(sum(o["objects"] for o in data["overlays"])))
    report.row("  findings (error / warning / info)", "{error} / {warning} / {info}".format(**data["counts"]))
    for rule, counts in data["by_rule"].items():
        report.row(f"    {rule}", ", ".join(f"{n} {s}" for s, n in counts.items()))
    for key, seconds in data["timings"].items():
        report.row(f"  {key.removesuffix('_s').replace('_', ' ')}", fmt_s(seconds))
    report.target("validate / kustomize builds alone (corpus)", ratio(result.seconds, floor), "<=", 1.5)
    report.data = {"seconds": result.seconds, "floor_seconds": floor, "max_rss_kib": result.max_rss_kib,
                   "built": len(built), "counts": data["counts"], "by_rule": data["by_rule"],
                   "timings": data["timings"], "tool": data["tool"]}  # fmt: skip
    return report


def _pool_builds(directories: list[str], env: dict[str, str]) -> float:
    tool = kubectl()
    start = time.perf_counter()
    with ThreadPoolExecutor(JOBS) as pool:
        list(pool.map(lambda d: run([tool, "kustomize", str(CORPUS / d)], env=env, check=False), directories))
    return time.perf_counter() - start


def review_big_repo(quick: bool) -> Report:
    spec = RepoSpec(apps=3000, commits=1)
    report = Report(f"review: one changed overlay in a {spec.apps:,}-app repo")
    pristine, generated = cached_repo(spec)
    if generated is not None:
        log(f"generated {pristine.name} in {generated:.1f} s")
    env = hermetic_env(WORK_DIR / "review" / "home")
    clone = WORK_DIR / "review" / "clone"
    shutil.rmtree(clone, ignore_errors=True)
    run([git(), "clone", "-q", "--local", str(pristine), str(clone)], env=env)
    app, overlay = spec.app(1234), f"kustomize/{spec.app(1234)}/overlays/prod"
    run([git(), "-C", str(clone), "checkout", "-q", "-b", "bump"], env=env)
    target = clone / overlay / "kustomization.yaml"
    target.write_text(target.read_text().replace('newTag: "1.0.0"', 'newTag: "2.0.0"'))
    run([git(), "-C", str(clone), "commit", "-q", "-am", f"bump {app} prod"], env=env)

    reviews, floors, builds = Samples(), Samples(), Samples()
    timings: list[dict[str, float]] = []
    runs = 3 if quick else 7
    log(f"review of one overlay in {spec.apps:,} apps: {runs} runs, interleaved with the floor")
    for _ in range(runs):
        result = run(
            gitops_argv("review", str(clone), "--base", "main", "--dry-run", "--format", "json"), env=env
        )
        data = json.loads(result.out)
        if [o["overlay"] for o in data["overlays"]] != [overlay]:
            raise RuntimeError(f"review found {data['overlays']!r}")
        reviews.add(result.seconds, result.max_rss_kib)
        timings.append(data["timings"])
        floor, two_builds = _review_floor(clone, overlay, env)
        floors.add(floor)
        builds.add(two_builds)
    report.row(f"gitops-ci review --dry-run ({spec.apps * 3:,} overlays, 1 changed)", fmt_samples(reviews))
    report.row("floor: checkout-index of the base tree + 2 kubectl kustomize", fmt_samples(floors))
    report.row("  the 2 kubectl kustomize alone", fmt_samples(builds))
    for key in timings[0]:
        values = sorted(t[key] for t in timings)
        report.row(f"  {key.removesuffix('_s').replace('_', ' ')} (median)", fmt_s(values[len(values) // 2]))
    report.target(f"review / floor ({spec.apps:,} apps)", ratio(reviews.median, floors.median), "<=", 1.0)
    report.data = {
        "review": reviews.summary(),
        "floor": floors.summary(),
        "builds": builds.summary(),
        "timings": timings,
        "apps": spec.apps,
    }
    return report


def _review_floor(clone: Path, overlay: str, env: dict[str, str]) -> tuple[float, float]:
    """(checkout-index of the base tree and both builds, the builds alone)."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=WORK_DIR) as scratch:
        index_env = {**env, "GIT_INDEX_FILE": str(Path(scratch) / "index")}
        run([git(), "-C", str(clone), "read-tree", "main"], env=index_env)
        run([git(), "-C", str(clone), "checkout-index", "--all", f"--prefix={scratch}/base/"], env=index_env)
        old = run([kubectl(), "kustomize", str(Path(scratch) / "base" / overlay)], env=env)
        new = run([kubectl(), "kustomize", str(clone / overlay)], env=env)
    return time.perf_counter() - start, old.seconds + new.seconds


def run_benchmarks(quick: bool) -> list[Report]:
    return [corpus(quick), review_big_repo(quick)]


def main() -> int:
    quick = "--quick" in sys.argv[1:]
    started = time.perf_counter()
    reports = run_benchmarks(quick)
    for report in reports:
        print(f"\n== {report.name}")
        for label, value in report.rows:
            print(f"  {label:<62}  {value}")
        for t in report.targets:
            print(
                f"  {t.name:<62}  {t.value:7.2f}  (target {t.op} {t.limit})  {'met' if t.met else 'MISSED'}"
            )
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / "validate.json"
    results = {
        r.name: {"rows": r.rows, "targets": [t.as_dict() for t in r.targets], "data": r.data} for r in reports
    }
    out.write_text(
        json.dumps(
            {"quick": quick, "elapsed_s": round(time.perf_counter() - started, 1), **results}, indent=2
        )
        + "\n"
    )
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
