"""Generate big manifest repos fast with `git fast-import`, cached under benchmarks/.work/repos/.

The layout is tests/manifests.py's (`kustomize/<app>/{base,overlays/<env>}` and a README). The first commit
holds every app (a repo migrated into git); each later commit bumps the newTag of one overlay, the way a
GitOps repo's history is made of image bumps. The repo is then repacked with a bitmap and a commit-graph,
as a GitLab server's housekeeping leaves it, so full clones are served the way a real server would.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from common import IDENTITY, WORK_DIR, git, hermetic_env, import_test_helpers, run

import_test_helpers()

from manifests import BASE, DEPLOYMENT, ENVIRONMENTS, OVERLAY, overlay  # noqa: E402

FORMAT_VERSION = 2  # bump when the generated content changes, so cached repos are rebuilt
BRANCH = "main"
EPOCH = 1_700_000_000
SERVE_CONFIG = (
    ("http.receivepack", "true"),
    ("uploadpack.allowFilter", "true"),
    ("uploadpack.allowAnySHA1InWant", "true"),
)


@dataclass(frozen=True)
class RepoSpec:
    apps: int
    commits: int

    @property
    def key(self) -> str:
        return f"manifests-v{FORMAT_VERSION}-apps{self.apps}-commits{self.commits}.git"

    def app(self, number: int) -> str:
        return f"app{number:04d}"

    @property
    def app_names(self) -> list[str]:
        return [self.app(n) for n in range(self.apps)]


def _tagged_overlay(app: str, env: str, tag: str) -> bytes:
    text: str = OVERLAY.format(app=app, env=env)
    return text.replace('newTag: "1.0.0"', f'newTag: "{tag}"').encode()


def _data(stream: IO[bytes], payload: bytes) -> None:
    stream.write(b"data %d\n" % len(payload))
    stream.write(payload)
    stream.write(b"\n")


def _commit_header(stream: IO[bytes], number: int, message: str) -> None:
    who = f"{IDENTITY['GIT_COMMITTER_NAME']} <{IDENTITY['GIT_COMMITTER_EMAIL']}> {EPOCH + number * 60} +0000"
    stream.write(f"commit refs/heads/{BRANCH}\ncommitter {who}\n".encode())
    _data(stream, message.encode())


def write_stream(spec: RepoSpec, stream: IO[bytes]) -> None:
    """The fast-import stream: one commit with every app, then commits that each touch one overlay."""
    stream.write(b"feature done\n")
    stream.write(b"blob\nmark :1\n")
    _data(stream, BASE.encode())
    _commit_header(stream, 0, "initial import of every app")
    stream.write(b"M 100644 inline README.md\n")
    _data(stream, b"# manifests\n")
    for app in spec.app_names:
        stream.write(f"M 100644 :1 kustomize/{app}/base/kustomization.yaml\n".encode())
        stream.write(f"M 100644 inline kustomize/{app}/base/deployment.yaml\n".encode())
        _data(stream, DEPLOYMENT.format(app=app).encode())
        for env in ENVIRONMENTS:
            stream.write(f"M 100644 inline {overlay(app, env)}\n".encode())
            _data(stream, OVERLAY.format(app=app, env=env).encode())
    overlays = spec.apps * len(ENVIRONMENTS)
    for number in range(1, spec.commits):
        # A stride coprime with the overlay count visits every overlay, in a scattered order. (Version 1
        # stepped the app and the environment apart, and 7919 ≡ 2 (mod 3) tied each app to one environment:
        # two thirds of the overlays were never bumped.)
        index, env_index = divmod((number * 7919) % overlays, len(ENVIRONMENTS))
        app, env = spec.app(index), ENVIRONMENTS[env_index]
        tag = f"1.{number // 1000}.{number % 1000}"
        _commit_header(stream, number, f"[skip ci] update image of app {app} - {env} to {tag}")
        stream.write(f"M 100644 inline {overlay(app, env)}\n".encode())
        _data(stream, _tagged_overlay(app, env, tag))
    stream.write(b"done\n")


def cached_repo(spec: RepoSpec) -> tuple[Path, float | None]:
    """The pristine bare repo for spec, generated if needed: (path, generation seconds or None if cached)."""
    repos = WORK_DIR / "repos"
    target = repos / spec.key
    if (target / "bench-complete").is_file():
        return target, None
    if target.exists():  # left by a run of an older version of this script
        shutil.rmtree(target, ignore_errors=True)
    building = repos / f"{spec.key}.building-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    repos.mkdir(parents=True, exist_ok=True)
    env = hermetic_env(WORK_DIR / "home")
    start = time.perf_counter()
    run([git(), "init", "-q", "--bare", f"--initial-branch={BRANCH}", str(building)], env=env)
    import subprocess

    with subprocess.Popen(
        [git(), "--git-dir", str(building), "fast-import", "--quiet", "--done"],
        stdin=subprocess.PIPE,
        env=env,
    ) as process:
        assert process.stdin is not None
        write_stream(spec, process.stdin)
        process.stdin.close()
        if process.wait() != 0:
            raise RuntimeError(f"git fast-import failed for {spec}")
    run([git(), "--git-dir", str(building), "repack", "-a", "-d", "-q", "--write-bitmap-index"], env=env)
    run([git(), "--git-dir", str(building), "commit-graph", "write", "--reachable"], env=env)
    run([git(), "--git-dir", str(building), "pack-refs", "--all"], env=env)
    (building / "bench-complete").write_text(f"{spec}\n")
    try:
        building.rename(target)
    except OSError:  # another run finished the same repo first: keep its copy
        shutil.rmtree(building, ignore_errors=True)
        if not (target / "bench-complete").is_file():
            raise
    return target, time.perf_counter() - start


def serving_copy(pristine: Path, server_root: Path, name: str) -> Path:
    """A servable copy of the cached repo (objects hard-linked by `git clone --bare`), so pushes never
    touch the cache."""
    destination = server_root / name
    shutil.rmtree(destination, ignore_errors=True)
    destination.parent.mkdir(parents=True, exist_ok=True)
    env = hermetic_env(WORK_DIR / "home")
    run([git(), "clone", "-q", "--bare", "--local", str(pristine), str(destination)], env=env)
    for key, value in SERVE_CONFIG:
        run([git(), "--git-dir", str(destination), "config", key, value], env=env)
    # Gitaly's housekeeping keeps a commit-graph chain with changed-path Bloom filters, which is what makes
    # "last commit of this path" (the Files API's last_commit_id) cheap on GitLab: serve the same, as a
    # chain the servers' housekeeping extends (tests/servers/housekeeping.py).
    commit_graph = [
        "commit-graph",
        "write",
        "--reachable",
        "--changed-paths",
        "--size-multiple=4",
        "--split=replace",
    ]
    run([git(), "--git-dir", str(destination), *commit_graph], env=env)
    return destination
