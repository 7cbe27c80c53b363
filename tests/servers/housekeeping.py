"""GitLab's repository housekeeping after pushes, for the test servers that write git.

GitLab counts the pushes to a project, a commit through the API included (it runs the same post-receive),
and at every `housekeeping_optimize_repository_period`-th (10 by default) asks Gitaly to optimize the
repository, in the background (`PostReceive#perform_housekeeping`, `Repositories::HousekeepingService`).
Gitaly's heuristical strategy (internal/git/housekeeping/optimization_strategy.go, objects.go,
commit_graph.go) then packs every loose object into a new pack once there are more than 1,024 of them, and
writes the new commits into the commit-graph chain, with changed-path Bloom filters.

Without it every commit of a long run stays loose and outside the commit-graph, where each walk for a path's
last commit (the Files API's `last_commit_id`, the commit POST's checks) diffs its trees: 0.7 ms per commit
on a 3,000-app repo. 20 serial API deploys took 5.8 s at the start of a probe and 12 s after 160 more
commits; with it they rise from 4.0 to 7.6 s and fall back when the loose objects are packed.

Left out: full repacks (Gitaly's when packfiles outnumber max(5, log1.3 of their size in MiB); no run here
makes that many) and pruning (of objects two weeks old).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from servers.git_repos import GIT, git_env

PERIOD = 10  # ApplicationSetting housekeeping_optimize_repository_period's default
LOOSE_OBJECT_LIMIT = 1024  # Gitaly's looseObjectLimit
_HEX = frozenset("0123456789abcdef")


@dataclass
class _Repository:
    pushes: int = 0
    running: threading.Thread | None = None


_lock = threading.Lock()
_repositories: dict[str, _Repository] = {}


def pushed(git_dir: str | Path) -> None:
    """Count a push that updated `git_dir`; every PERIOD-th starts an optimization unless one is running
    (GitLab's exclusive lease: a busy repository skips its turn)."""
    key = os.path.realpath(git_dir)
    with _lock:
        state = _repositories.setdefault(key, _Repository())
        state.pushes += 1
        if state.pushes % PERIOD or (state.running is not None and state.running.is_alive()):
            return
        state.running = threading.Thread(target=optimize, args=(key,), name="housekeeping", daemon=True)
        state.running.start()


def counted(git_dir: str | Path) -> int:
    """The pushes counted for `git_dir` (the server counts one after its answer: a client may be faster)."""
    with _lock:
        state = _repositories.get(os.path.realpath(git_dir))
        return state.pushes if state is not None else 0


def settle() -> None:
    """Wait for every optimization under way (a server stopping: its repositories may be deleted next)."""
    with _lock:
        running = [state.running for state in _repositories.values() if state.running is not None]
    for thread in running:
        thread.join()


def optimize(git_dir: str) -> None:
    """Gitaly's OptimizeRepository: pack the loose objects past the limit, and then, or when the commit-graph
    lacks Bloom filters, write it (incrementally onto a Bloom-filtered chain, else replacing it)."""
    if not os.path.isdir(git_dir):
        return  # deleted meanwhile (a test's repository)
    bloom = _has_bloom_filters(git_dir)
    if loose_objects(git_dir) > LOOSE_OBJECT_LIMIT:
        pack = os.path.join(git_dir, "objects", "pack", "pack")
        _git(git_dir, "pack-objects", "--pack-loose-unreachable", "--local", "--incremental", "--non-empty",
             "--quiet", pack)  # fmt: skip
        _git(git_dir, "prune-packed", "--quiet")
    elif bloom:
        return
    chain = os.path.join(git_dir, "objects", "info", "commit-graphs", "commit-graph-chain")
    split = "--split" if bloom and os.path.isfile(chain) else "--split=replace"
    _git(git_dir, "commit-graph", "write", "--reachable", "--changed-paths", "--size-multiple=4", split)


def loose_objects(git_dir: str) -> int:
    count = 0
    for shard in range(256):
        try:
            names = os.listdir(os.path.join(git_dir, "objects", f"{shard:02x}"))
        except FileNotFoundError:
            continue
        count += sum(1 for name in names if len(name) == 38 and set(name) <= _HEX)
    return count


def _has_bloom_filters(git_dir: str) -> bool:
    """Gitaly's stats.IsMissingBloomFilters, read from the graph files' chunk tables ("BIDX")."""
    info = os.path.join(git_dir, "objects", "info")
    chain = os.path.join(info, "commit-graphs", "commit-graph-chain")
    if os.path.isfile(chain):
        with open(chain) as lines:
            graphs = [
                os.path.join(info, "commit-graphs", f"graph-{h.strip()}.graph") for h in lines if h.strip()
            ]
    else:
        graphs = [os.path.join(info, "commit-graph")]
    return bool(graphs) and all(_graph_has_bloom(path) for path in graphs)


def _graph_has_bloom(path: str) -> bool:
    try:
        with open(path, "rb") as graph:
            header = graph.read(8)
            table = graph.read(12 * (header[6] + 1) if len(header) == 8 else 0)
    except FileNotFoundError:
        return False
    return header[:4] == b"CGPH" and any(table[i : i + 4] == b"BIDX" for i in range(0, len(table), 12))


def _git(git_dir: str, *args: str) -> None:
    # bounded, as Gitaly bounds its RPCs (settle() waits for it); the next optimization tries again
    with contextlib.suppress(subprocess.TimeoutExpired):
        subprocess.run(
            [GIT, f"--git-dir={git_dir}", *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env=git_env(),
            timeout=300,
            check=False,  # a repository deleted under it (a test's) is not a failure of the server
        )
