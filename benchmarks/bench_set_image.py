"""`gitops-ci set-image`: cold start against `kubectl kustomize`, where startup goes, and 1,000 overlays.

Cold start: each run is a fresh process of this checkout's console script, installed from a wheel, editing one
overlay of tests/manifests.py's layout (a new tag every run, so every run writes), interleaved with
`kubectl kustomize` of the same overlay; medians, ratio gitops-ci / kustomize. The dependency floor
(`python -c "import click, ruamel.yaml"`, in the same interleaving) bounds the ratio any CLI on these two
libraries can reach.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import (
    RUN_DIR,
    Report,
    Samples,
    fmt_samples,
    gitops_ci,
    gitops_ci_python,
    hermetic_env,
    import_test_helpers,
    kubectl,
    log,
    ratio,
    run,
)

import_test_helpers()

from manifests import manifest_files, overlay  # noqa: E402

APP = "shop"
TREE_MIN_US = 8_000  # imports shown in the table: at least 8 ms cumulative, at most 4 levels deep
TREE_MAX_DEPTH = 4
_IMPORT_LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def _write_tree(root: Path, files: dict[str, str]) -> None:
    shutil.rmtree(root, ignore_errors=True)
    for path, content in files.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def cold_start(quick: bool) -> Report:
    report = Report("set-image cold start")
    root = RUN_DIR / "set-image" / "repo"
    _write_tree(root, manifest_files([APP]))
    env = hermetic_env(RUN_DIR / "set-image" / "home")
    overlay_dir = str(Path(overlay(APP, "dev")).parent)
    tool, kube = gitops_ci(), kubectl()
    runs = 5 if quick else 15

    def gitops_run(number: int) -> tuple[float, int]:
        result = run([tool, "set-image", "--overlay", overlay_dir, f"{APP}:1.0.{number}"], env=env, cwd=root)
        if "1.0." not in result.out:
            raise RuntimeError(f"set-image changed nothing: {result.out!r} {result.err!r}")
        return result.seconds, result.max_rss_kib

    def kustomize_run() -> tuple[float, int]:
        result = run([kube, "kustomize", overlay_dir], env=env, cwd=root)
        return result.seconds, result.max_rss_kib

    python_floor, dependency_floor, version_only = Samples(), Samples(), Samples()
    gitops, kustomize = Samples(), Samples()
    gitops_run(10_000)  # warm the page cache and the .pyc files; not counted
    kustomize_run()
    log(f"set-image cold start: {runs} interleaved runs each")
    for number in range(runs):
        for name in ("gitops", "kustomize") if number % 2 == 0 else ("kustomize", "gitops"):
            if name == "gitops":
                gitops.add(*gitops_run(number))
            else:
                kustomize.add(*kustomize_run())
        floor = run([gitops_ci_python(), "-c", "pass"], env=env)
        python_floor.add(floor.seconds, floor.max_rss_kib)
        floor = run([gitops_ci_python(), "-c", "import click, ruamel.yaml"], env=env)
        dependency_floor.add(floor.seconds, floor.max_rss_kib)
        version = run([tool, "--version"], env=env)
        version_only.add(version.seconds, version.max_rss_kib)

    value = ratio(gitops.median, kustomize.median)
    report.row("gitops-ci set-image (1 overlay)", fmt_samples(gitops))
    report.row("kubectl kustomize (same overlay)", fmt_samples(kustomize))
    report.row("  python -c pass (interpreter floor)", fmt_samples(python_floor))
    report.row("  import click, ruamel.yaml (dependency floor)", fmt_samples(dependency_floor))
    report.row(
        "  dependency floor / kustomize (the best ratio any click + ruamel CLI can reach)",
        f"{ratio(dependency_floor.median, kustomize.median):.2f}",
    )
    report.row(
        "  set-image / dependency floor (gitops-ci's own cost)",
        f"{ratio(gitops.median, dependency_floor.median):.2f}",
    )
    report.row("  gitops-ci --version (startup, no command)", fmt_samples(version_only))
    report.target("set-image / kustomize (cold, median)", value, "<=", 1.0)
    git_calls = _git_processes(tool, overlay_dir, root, env)
    report.row("  git processes spawned by set-image", f"{len(git_calls)}: {'; '.join(git_calls) or '-'}")
    imports = import_breakdown(tool, overlay_dir, root, env)
    report.row("  import time (sum of -X importtime self)", f"{imports['total_ms']:.0f} ms")
    for package, ms in list(imports["by_package"].items())[:8]:
        report.row(f"    package {package}", f"{ms:.1f} ms")
    for entry in imports["tree"]:
        indent = "  " * entry["depth"]
        report.row(
            f"    {indent}{entry['module']}",
            f"{entry['cumulative_ms']:5.1f} ms cumulative, {entry['self_ms']:4.1f} ms self",
        )
    report.data = {
        "gitops_ci": gitops.summary(),
        "kustomize": kustomize.summary(),
        "python_floor": python_floor.summary(),
        "dependency_floor": dependency_floor.summary(),
        "gitops_ci_version": version_only.summary(),
        "ratio": value,
        "git_processes": git_calls,
        "imports": imports,
    }
    return report


def _git_processes(tool: str, overlay_dir: str, root: Path, env: dict[str, str]) -> list[str]:
    """The git commands a set-image run starts (GitPython runs `git version` when it is imported)."""
    trace = RUN_DIR / "set-image" / "trace2.json"
    trace.unlink(missing_ok=True)
    run(
        [tool, "set-image", "--overlay", overlay_dir, f"{APP}:1.0.99999"],
        env={**env, "GIT_TRACE2_EVENT": str(trace)},
        cwd=root,
    )
    if not trace.exists():
        return []
    events = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    return [
        " ".join(["git", *event["argv"][1:]])
        for event in events
        if event.get("event") == "start" and "/" not in event["sid"]
    ]


@dataclass(frozen=True)
class _Import:
    module: str
    self_us: int
    cumulative_us: int
    depth: int


def _parse_importtime(stderr: str) -> list[_Import]:
    entries = []
    for line in stderr.splitlines():
        match = _IMPORT_LINE.match(line)
        if match:
            entries.append(_Import(match[4], int(match[1]), int(match[2]), (len(match[3]) - 1) // 2))
    return entries


def import_breakdown(tool: str, overlay_dir: str, root: Path, env: dict[str, str]) -> dict[str, Any]:
    """`python -X importtime` of a real set-image run: the cheapest of 3, by package and by module."""
    best: list[_Import] | None = None
    for number in range(3):
        result = run(
            [
                gitops_ci_python(),
                "-X",
                "importtime",
                tool,
                "set-image",
                "--overlay",
                overlay_dir,
                f"{APP}:1.1.{number}",
            ],
            env=env,
            cwd=root,
        )
        entries = _parse_importtime(result.err)
        if best is None or sum(e.self_us for e in entries) < sum(e.self_us for e in best):
            best = entries
    assert best is not None
    stdlib = sys.stdlib_module_names
    by_package: dict[str, int] = defaultdict(int)
    for entry in best:
        top = entry.module.split(".")[0]
        key = top if top not in stdlib and not top.startswith("_") else "(stdlib)"
        by_package[key] += entry.self_us
    ranked = sorted(by_package.items(), key=lambda item: -item[1])
    top_cumulative = sorted(best, key=lambda e: -e.cumulative_us)
    # -X importtime prints children before their parent: reversed, every parent precedes its children.
    tree = [e for e in reversed(best) if e.cumulative_us >= TREE_MIN_US and e.depth <= TREE_MAX_DEPTH]
    return {
        "total_ms": sum(e.self_us for e in best) / 1000,
        "by_package": {name: us / 1000 for name, us in ranked},
        "tree": [
            {
                "module": e.module,
                "cumulative_ms": e.cumulative_us / 1000,
                "self_ms": e.self_us / 1000,
                "depth": e.depth,
            }
            for e in tree
        ],
        "top_cumulative": [
            {
                "module": e.module,
                "cumulative_ms": e.cumulative_us / 1000,
                "self_ms": e.self_us / 1000,
                "depth": e.depth,
            }
            for e in top_cumulative[:30]
        ],
        "first_party": [
            {"module": e.module, "cumulative_ms": e.cumulative_us / 1000, "self_ms": e.self_us / 1000}
            for e in top_cumulative
            if e.module.startswith("gitops_ci")
        ],
    }


def many_overlays(quick: bool, count: int = 1000) -> Report:
    report = Report(f"set-image, {count} overlays in one invocation")
    base = RUN_DIR / "set-image-many"
    root = base / "repo"
    envs = tuple(f"env{number:04d}" for number in range(count))
    _write_tree(root, manifest_files([APP], envs))
    env = hermetic_env(base / "home")
    tool = gitops_ci()
    arguments = [a for e in envs for a in ("--overlay", str(Path(overlay(APP, e)).parent))]
    samples = Samples()
    reps = 1 if quick else 3
    log(f"set-image over {count} overlays: {reps} run(s)")
    for number in range(reps):
        result = run([tool, "set-image", *arguments, f"{APP}:2.0.{number}"], env=env, cwd=root)
        changed = sum(
            1
            for e in envs
            if f'newTag: "2.0.{number}"' in (root / overlay(APP, e)).read_text()
            or f"newTag: 2.0.{number}" in (root / overlay(APP, e)).read_text()
        )
        if changed != count:
            raise RuntimeError(f"only {changed} of {count} overlays were changed")
        samples.add(result.seconds, result.max_rss_kib)
    per_overlay = samples.median / count
    report.row(f"one call, {count} overlays", fmt_samples(samples))
    report.row("per overlay", f"{per_overlay * 1000:.2f} ms")
    report.data = {"overlays": count, "total": samples.summary(), "per_overlay_ms": per_overlay * 1000}
    return report
