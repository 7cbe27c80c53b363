"""Render overlays with `kustomize build` or `kubectl kustomize`, offline, a few at a time.

Both print the same stream for the same kustomize version. Builds run in a small thread pool: each is a
child process, so threads are enough, and 2–4 of them keep a CI runner's cores busy without thrashing.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from gitops_ci import logs
from gitops_ci.errors import ConfigurationError

log = logs.get_logger(__name__)
DEFAULT_TIMEOUT = 300.0
_KLOG_PREFIX = re.compile(r'^[EWIF]\d{4} [\d:.]+\s+\d+ \S+\] "command failed" err=<?\s*')


def default_jobs() -> int:
    return max(2, min(4, os.cpu_count() or 2))


@dataclass(frozen=True)
class KustomizeTool:
    """How to run a build: `kustomize build DIR` or `kubectl kustomize DIR`, plus extra flags."""

    executable: str
    subcommand: str  # "build" or "kustomize"
    options: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return "kubectl kustomize" if self.subcommand == "kustomize" else "kustomize build"

    def argv(self, directory: Path) -> list[str]:
        return [self.executable, self.subcommand, *self.options, str(directory)]

    @cached_property
    def version(self) -> str:
        if self.subcommand == "kustomize":
            argv = [self.executable, "version", "--client", "-o", "json"]
        else:
            argv = [self.executable, "version"]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
        except (OSError, subprocess.TimeoutExpired):
            return "unknown"
        if self.subcommand == "build":
            return proc.stdout.strip() or "unknown"
        try:
            data = json.loads(proc.stdout)
        except json.JSONDecodeError:
            return "unknown"
        client = data.get("clientVersion", {}).get("gitVersion", "?")
        return f"kubectl {client}, kustomize {data.get('kustomizeVersion', '?')}"


def find_tool(explicit: str | None = None, options: Sequence[str] = ()) -> KustomizeTool:
    """`explicit` (a path or name), else `kustomize` on PATH, else `kubectl` on PATH or beside Python."""
    candidates: list[str | None]
    if explicit:
        candidates = [shutil.which(explicit) or (explicit if Path(explicit).is_file() else None)]
        if candidates[0] is None:
            raise ConfigurationError(
                f"--kustomize {explicit!r} is not an executable; install kubectl or kustomize"
            )
    else:
        beside = Path(sys.executable).parent / "kubectl"
        candidates = [
            shutil.which("kustomize"),
            shutil.which("kubectl"),
            str(beside) if os.access(beside, os.X_OK) else None,
        ]
    for found in candidates:
        if found:
            subcommand = "kustomize" if Path(found).name.startswith("kubectl") else "build"
            return KustomizeTool(found, subcommand, tuple(options))
    raise ConfigurationError(
        "neither kustomize nor kubectl is on PATH: install kubectl or kustomize (or point --kustomize at one)"
    )


@dataclass(frozen=True)
class BuildResult:
    overlay: str  # as given to build_all
    ok: bool
    output: str
    error: str
    seconds: float


def build(tool: KustomizeTool, directory: Path, timeout: float = DEFAULT_TIMEOUT) -> tuple[bool, str, str]:
    """(ok, stdout, one-paragraph error)."""
    try:
        # An argument list from a resolved executable: no shell, no untrusted program name.
        proc = subprocess.run(  # noqa: S603
            tool.argv(directory), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return False, "", f"{tool.name} did not finish within {timeout:.0f} s"
    except OSError as err:
        raise ConfigurationError(
            f"cannot run {tool.executable}: {err.strerror}; install kubectl or kustomize"
        ) from None
    if proc.returncode != 0:
        return False, "", clean_error(proc.stderr) or f"{tool.name} exited {proc.returncode}"
    return True, proc.stdout, ""


def iter_builds(
    tool: KustomizeTool,
    root: Path,
    overlays: Iterable[str],
    *,
    jobs: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Iterator[BuildResult]:
    """Build overlays (repo-relative dirs under `root`) in a pool; yield each result as it completes, so
    the caller checks one render while the next ones build."""

    def one(overlay: str) -> BuildResult:
        start = time.perf_counter()
        ok, output, error = build(tool, root / overlay, timeout)
        error = error.replace(f"{root}{os.sep}", "").replace(str(root), ".")
        return BuildResult(overlay, ok, output, error, time.perf_counter() - start)

    with ThreadPoolExecutor(max_workers=jobs or default_jobs(), thread_name_prefix="kustomize") as pool:
        futures = [pool.submit(one, overlay) for overlay in overlays]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


def build_all(
    tool: KustomizeTool, root: Path, overlays: Iterable[str], *, jobs: int | None = None
) -> dict[str, BuildResult]:
    return {r.overlay: r for r in iter_builds(tool, root, overlays, jobs=jobs)}


def clean_error(stderr: str) -> str:
    """kustomize's message in one line: kubectl wraps it in a klog line (`E0101 ... "command failed"
    err="..."` or `err=< ... >`), and both print deprecation warnings first."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip() not in ("", ">")]
    meaningful = [line for line in lines if not line.startswith("# Warning:")] or lines
    text = " ".join(meaningful)
    if found := _KLOG_PREFIX.match(text):
        text = text[found.end() :].strip()
        if text.startswith('"') and text.endswith('"'):
            with contextlib.suppress(json.JSONDecodeError):
                text = str(json.loads(text))
    for prefix in ("Error: ", "error: "):
        text = text.removeprefix(prefix)
    return text.strip()[:2000]
