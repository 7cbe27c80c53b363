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
DEFAULT_TIMEOUT = 60.0
# Flags that are safe on untrusted content; everything else (--enable-helm, --enable-alpha-plugins,
# --enable-exec, --load-restrictor, --mount, --network, --env, ...) would let the repo run, fetch or read.
SAFE_BUILD_OPTIONS = ("--reorder", "--enable-managedby-label", "--stack-trace")
_DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: any fetch kustomize might still try fails at once
_KLOG_PREFIX = re.compile(r'^[EWIF]\d{4} [\d:.]+\s+\d+ \S+\] "command failed" err=<?\s*')


def default_jobs() -> int:
    return max(2, min(4, os.cpu_count() or 2))


@dataclass(frozen=True)
class KustomizeTool:
    """How to run a build: `kustomize build DIR` or `kubectl kustomize DIR`, plus extra flags."""

    executable: str
    subcommand: str  # "build" or "kustomize"
    options: tuple[str, ...] = ()
    timeout: float = DEFAULT_TIMEOUT

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


def find_tool(
    explicit: str | None = None, options: Sequence[str] = (), timeout: float = DEFAULT_TIMEOUT
) -> KustomizeTool:
    """`explicit` (a path or name), else `kustomize` on PATH, else `kubectl` on PATH or beside Python."""
    for option in options:
        if option.split("=", 1)[0] not in SAFE_BUILD_OPTIONS:
            raise ConfigurationError(
                f"--build-option {option!r} is not allowed: builds of an untrusted repo run without helm, "
                f"plugins, exec or network; allowed: {', '.join(SAFE_BUILD_OPTIONS)} (as --flag=value)"
            )
    if timeout <= 0:
        raise ConfigurationError("--build-timeout must be positive")
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
            return KustomizeTool(found, subcommand, tuple(options), timeout)
    raise ConfigurationError(
        "neither kustomize nor kubectl is on PATH: install kubectl or kustomize (or point --kustomize at one)"
    )


@dataclass(frozen=True)
class BuildResult:
    overlay: str  # as given to iter_builds
    ok: bool
    output: str
    error: str
    seconds: float


def offline_environment() -> dict[str, str]:
    """What a build sees of our environment: PATH and nothing else of ours (no GITOPS_*/CI_* token, no
    kubeconfig, no git config or credentials), a HOME that does not exist, and proxies that go nowhere."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": "/nonexistent/gitops-ci-build",
        "LC_ALL": "C",
        "KUBECONFIG": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": "none",  # a remote reference that slips through fetches nothing, ssh neither
        "GIT_SSH_COMMAND": "false",
        "NO_PROXY": "",
        "no_proxy": "",
    }
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env[name] = _DEAD_PROXY
    return env


def build(tool: KustomizeTool, directory: Path) -> tuple[bool, str, str]:
    """(ok, stdout, one-paragraph error); the build is killed at tool.timeout. It stays in our process
    group, so a cancelled job takes it down too."""
    try:
        # An argument list from a resolved executable: no shell, no untrusted program name.
        process = subprocess.Popen(  # noqa: S603
            tool.argv(directory),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=offline_environment(),
        )
    except OSError as err:
        raise ConfigurationError(
            f"cannot run {tool.executable}: {err.strerror}; install kubectl or kustomize"
        ) from None
    try:
        stdout, stderr = process.communicate(timeout=tool.timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        return False, "", f"{tool.name} did not finish within {tool.timeout:g} s (--build-timeout)"
    if process.returncode != 0:
        return False, "", clean_error(stderr) or f"{tool.name} exited {process.returncode}"
    return True, stdout, ""


def iter_builds(
    tool: KustomizeTool,
    root: Path,
    overlays: Iterable[str],
    *,
    jobs: int | None = None,
) -> Iterator[BuildResult]:
    """Build overlays (repo-relative dirs under `root`) in a pool; yield each result as it completes, so
    the caller checks one render while the next ones build."""

    def one(overlay: str) -> BuildResult:
        start = time.perf_counter()
        ok, output, error = build(tool, root / overlay)
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
