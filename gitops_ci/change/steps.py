"""The steps of a change, each a function over the ManifestRepo port: plan → commit → push.

Steps neither sleep, retry nor look at the clock: the runner does (change/runner.py). Opening the repo, the
merge-request step and the follow-ups (sync, wait) are in their own modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from gitops_ci.change.model import EnvironmentChange, MessageFor, RepoDefaults, Target
from gitops_ci.change.settings import RepoSettings, with_trailers
from gitops_ci.errors import KustomizationError, PushRejectedError, RetryableError
from gitops_ci.manifest_repo.port import ManifestRepo
from gitops_ci.naming import SETTINGS_FILE

# What reading gitops-ci.yaml and planning import: the runner has them imported while the repo opens.
DEFAULTS_IMPORTS = ("gitops_ci.onboard.conventions",)
PLAN_IMPORTS = ("gitops_ci.images.files", "gitops_ci.images.kustomize_verify")


def repo_defaults(repo: ManifestRepo, read: bool = True) -> RepoDefaults:
    """The defaults the repo's gitops-ci.yaml records (written by `init`), else the built-in ones."""
    if not read:
        return RepoDefaults()
    text = repo.read(SETTINGS_FILE)
    if text is None:
        return RepoDefaults()
    from gitops_ci.onboard.conventions import parse_conventions

    conventions = parse_conventions(text)
    return RepoDefaults(
        conventions.path_template,
        conventions.app_name_template,
        tuple(e.name for e in conventions.environments),
    )


def kustomization_of(repo: ManifestRepo, overlay: str, environment: str) -> tuple[str, str]:
    """The path and text of the overlay's kustomization file; an overlay that does not exist is an error."""
    found = repo.kustomization(overlay)
    if found is None:
        raise KustomizationError(
            f"overlay {overlay} for environment {environment!r} does not exist in the manifest repo; check "
            "--app, --env and --path-template"
        )
    return found


def plan(repo: ManifestRepo, targets: Sequence[Target]) -> tuple[EnvironmentChange, ...]:
    """Every target's edit, in memory, on the repo's base: any error stops before anything is committed."""
    from gitops_ci.images.editor import editor_for
    from gitops_ci.images.files import OverlayEdit

    planned = []
    repo.include(tuple(dict.fromkeys(t.path for t in targets)))
    for target in targets:
        path, before = kustomization_of(repo, target.path, target.environment)
        after, changes = editor_for(path).edit(before, target.updates, strict=False, source=path)
        edit = OverlayEdit(Path(target.path), Path(path), before, after, changes)
        planned.append(
            EnvironmentChange(app=target.app, environment=target.environment, path=target.path, edit=edit)
        )
    return tuple(planned)


def commit(
    repo: ManifestRepo, changes: Sequence[EnvironmentChange], settings: RepoSettings, message_for: MessageFor
) -> str:
    """One commit of every changed file on the base, with gitops-ci's identities and trailers."""
    files = {c.file: c.edit.after for c in changes if c.edit.changed}
    return commit_files(repo, files, message_for(changes), settings)


def commit_files(repo: ManifestRepo, files: Mapping[str, str], message: str, settings: RepoSettings) -> str:
    """One commit of `files` (path → text) on the base, with gitops-ci's identities and trailers."""
    author = settings.author or settings.committer
    return repo.commit(files, with_trailers(message, settings.trailers), author, settings.committer)


PushStatus = Literal["landed", "lost-race", "failed"]


@dataclass(frozen=True, kw_only=True)
class PushOutcome:
    """A push: landed (the SHA), lost a race with another push, or failed (maybe landed)."""

    status: PushStatus
    reason: str = ""
    commit: str | None = None  # the SHA that landed


def push(repo: ManifestRepo, sha: str) -> PushOutcome:
    """Fast-forward the branch to `sha`. A moved branch is a lost race; a transient failure may or may not
    have landed (the runner refetches and asks the history)."""
    try:
        landed = repo.publish(sha, repo.branch)
    except PushRejectedError as err:
        return PushOutcome(status="lost-race", reason=str(err))
    except RetryableError as err:
        return PushOutcome(status="failed", reason=str(err))
    return PushOutcome(status="landed", commit=landed)
