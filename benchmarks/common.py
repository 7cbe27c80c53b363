"""Shared helpers for the benchmarks: paths, tools, timed subprocesses, statistics and the table.

Every figure is taken in the same run as its baseline (ratios, not absolute thresholds), because the
absolute numbers depend on the machine. Child processes are reaped with ``os.wait4`` so each run has its own
peak RSS (the maximum over the process and the descendants it waited for), which
``getrusage(RUSAGE_CHILDREN)`` cannot give: its ``ru_maxrss`` is a maximum over all children ever, so its
deltas are meaningless.
"""

from __future__ import annotations

import functools
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
TESTS_DIR = REPO_ROOT / "tests"
WORK_DIR = BENCH_DIR / ".work"
RESULTS_DIR = BENCH_DIR / "results"

IDENTITY = {
    "GIT_AUTHOR_NAME": "Bench Author",
    "GIT_AUTHOR_EMAIL": "bench@example.invalid",
    "GIT_COMMITTER_NAME": "Bench Committer",
    "GIT_COMMITTER_EMAIL": "bench@example.invalid",
}


# Scratch space of this process: two benchmark runs at once (two engineers, CI) never share it.
RUN_DIR = WORK_DIR / "runs" / str(os.getpid())
PYCACHE = WORK_DIR / "pycache"


def import_test_helpers() -> None:
    """Make `manifests` and `servers.gitserver` (under tests/) importable."""
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))


def venv_tool(name: str) -> str:
    """A console script installed next to this interpreter, else the one on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SystemExit(f"benchmarks: {name} not found next to {sys.executable} nor on PATH")
    return found


def gitops_ci() -> str:
    return str(_installed_copy() / "bin" / "gitops-ci")


def gitops_ci_python() -> str:
    """The interpreter of the measured console script."""
    return str(_installed_copy() / "bin" / "python")


_INSTALLING = threading.Lock()


def _installed_copy() -> Path:
    """Built once, by the first caller: benchmarks that start their jobs in threads ask for it at once."""
    with _INSTALLING:
        return _install()


@functools.cache
def _install() -> Path:
    """This checkout as the runner image has it: built into a wheel and installed (not editable) into a venv
    of its own, whose dependencies are this interpreter's (paths in a .pth file). An editable install's
    finder costs ~11 ms at every start (site imports it and pathlib) that no user pays. The wheel is built
    from a copy of the package's files (a stale build/ in the checkout would add deleted modules), and its
    bytecode is compiled where the children look for it (PYTHONPYCACHEPREFIX)."""
    venv, source = RUN_DIR / "installed", RUN_DIR / "source"
    if (venv / "bin" / "gitops-ci").is_file():
        return venv
    log("benchmarks: building this checkout into a wheel and installing it (not editable)")
    shutil.rmtree(source, ignore_errors=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO_ROOT / name, source / name)
    shutil.copytree(
        REPO_ROOT / "gitops_ci", source / "gitops_ci", ignore=shutil.ignore_patterns("__pycache__")
    )
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    run([*pip, "wheel", "--no-deps", "-w", str(source / "dist"), str(source)], cwd=source)
    base = getattr(sys, "_base_executable", sys.executable)
    run([base, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    where = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    purelib = Path(run([str(python), "-c", where]).out.strip())
    ours = sysconfig.get_paths()
    (purelib / "benchmark-dependencies.pth").write_text(
        "\n".join(dict.fromkeys((ours["purelib"], ours["platlib"])))
    )
    run([*pip, "--python", str(python), "install", "--no-deps", *map(str, (source / "dist").glob("*.whl"))])
    env = {**os.environ, "PYTHONPYCACHEPREFIX": str(PYCACHE)}
    run([str(python), "-m", "compileall", "-q", str(purelib / "gitops_ci")], env=env)
    return venv


def forget_installed_copy() -> None:
    """Remove this run's install and the bytecode compiled for it."""
    shutil.rmtree(PYCACHE / RUN_DIR.relative_to(RUN_DIR.anchor), ignore_errors=True)
    shutil.rmtree(RUN_DIR, ignore_errors=True)


def kubectl() -> str:
    return venv_tool("kubectl")


def git() -> str:
    found = shutil.which("git")
    if found is None:
        raise SystemExit("benchmarks: git not found on PATH")
    return found


def hermetic_env(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without git/CI/gitops variables, a private HOME and TMPDIR on WORK_DIR, and
    a bytecode cache."""
    dropped = ("GIT_", "GITOPS_", "CI_", "GITLAB_", "KUBECONFIG", "PYTHONDONTWRITEBYTECODE")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped) and k != "CI"}
    # Bytecode is cached under .work (never next to the sources), as an installed package has it compiled:
    # without it every run recompiles gitops_ci from source and startup is measured wrong.
    env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    home.mkdir(parents=True, exist_ok=True)
    (home / "tmp").mkdir(exist_ok=True)
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        TMPDIR=str(home / "tmp"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
        **IDENTITY,
    )
    if extra:
        env.update(extra)
    return env


@dataclass(frozen=True)
class Run:
    """One finished child process: wall seconds, peak RSS in KiB, exit code, output and CPU seconds."""

    seconds: float
    max_rss_kib: int
    code: int
    out: str = ""
    err: str = ""
    cpu_s: float = 0.0  # user + system CPU of the process and every descendant it waited for


class CommandFailed(RuntimeError):
    pass


GNU_TIME = Path("/usr/bin/time")


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check: bool = True,
) -> Run:
    """Run argv to completion; return its wall time, peak RSS, exit code and output.

    The peak RSS comes from `/usr/bin/time -f %M` when it exists: a process forked from this (large)
    Python process inherits our RSS high-water mark until it execs, so its own rusage would report at
    least our size. Without GNU time it falls back to wait4's ru_maxrss (an upper bound). Output goes to
    temporary files, so nothing has to be read while the child runs.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(mode="r", suffix=".rss") as rss,
    ):
        command = list(argv)
        if GNU_TIME.is_file():
            command = [str(GNU_TIME), "-q", "-f", "%M", "-o", rss.name, *command]
        start = time.perf_counter()
        process = subprocess.Popen(
            command,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - start
        process.returncode = code = os.waitstatus_to_exitcode(status)
        lines = rss.read().split()
        max_rss = int(lines[-1]) if lines and lines[-1].isdigit() else int(usage.ru_maxrss)
        out.seek(0)
        err.seek(0)
        result = Run(
            seconds,
            max_rss,
            code,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            usage.ru_utime + usage.ru_stime,
        )
    if check and result.code != 0:
        tail = f"{result.err[-3000:]}{result.out[-1000:]}"
        raise CommandFailed(f"{' '.join(argv)} exited {result.code}:\n{tail}")
    return result


@dataclass
class Samples:
    """Repeated measurements of one thing."""

    seconds: list[float] = field(default_factory=list)
    max_rss_kib: list[int] = field(default_factory=list)

    def add(self, seconds: float, max_rss_kib: int = 0) -> None:
        self.seconds.append(seconds)
        self.max_rss_kib.append(max_rss_kib)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def rss_mib(self) -> float:
        return max(self.max_rss_kib) / 1024 if self.max_rss_kib else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "median_s": round(self.median, 4),
            "min_s": round(min(self.seconds), 4),
            "max_s": round(max(self.seconds), 4),
            "runs": [round(s, 4) for s in self.seconds],
            "peak_rss_mib": round(self.rss_mib, 1),
        }


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else float("inf")


@dataclass(frozen=True)
class Target:
    """A ratio and its target (`<=` or `>=`)."""

    name: str
    value: float
    op: str
    limit: float

    @property
    def met(self) -> bool:
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": round(self.value, 3),
            "target": f"{self.op} {self.limit}",
            "met": self.met,
        }


@dataclass
class Report:
    """What one benchmark module hands back: rows for the table, targets, and raw data for the JSON."""

    name: str
    rows: list[tuple[str, str]] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    failed: bool = False  # the benchmark broke (its error is in rows)

    def row(self, label: str, value: str) -> None:
        self.rows.append((label, value))

    def target(self, name: str, value: float, op: str, limit: float) -> Target:
        target = Target(name, value, op, limit)
        self.targets.append(target)
        return target


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def fmt_samples(samples: Samples) -> str:
    return f"{fmt_s(samples.median)} (median of {len(samples.seconds)}), peak RSS {samples.rss_mib:.0f} MiB"


def log(message: str) -> None:
    print(f"  · {message}", file=sys.stderr, flush=True)


@contextmanager
def stopwatch() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    end: list[float] = []
    yield lambda: (end[0] if end else time.perf_counter()) - start
    end.append(time.perf_counter())
