"""What a change to the manifest repo is made of, and what it reports: small frozen values."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

from gitops_ci.change.settings import DEFAULT_PATH_TEMPLATE, RepoSettings
from gitops_ci.manifest_repo.port import ManifestRepo

if TYPE_CHECKING:  # types only: the YAML editor is imported while the repo opens (runner.run_change)
    from gitops_ci.images.files import OverlayEdit
    from gitops_ci.images.reference import ImageUpdate

ChangeStatus = Literal["pushed", "up-to-date", "dry-run", "merge-requests"]
MergeRequestAction = Literal[
    "created", "updated", "unchanged", "merged", "auto-merge", "up-to-date", "dry-run"
]


@dataclass(frozen=True)
class RepoDefaults:
    """What the repo's gitops-ci.yaml (written by `init`) says, where no option said it."""

    path_template: str = DEFAULT_PATH_TEMPLATE
    app_name_template: str | None = None  # None: the file does not exist (follow-ups use the seed's)
    environments: tuple[str, ...] = ()  # in promotion order


BUILT_IN_DEFAULTS = RepoDefaults()


@dataclass(frozen=True, kw_only=True)
class Target:
    """One overlay to edit, and how."""

    app: str
    environment: str
    path: str
    updates: tuple[ImageUpdate, ...]


@dataclass(frozen=True, kw_only=True)
class EnvironmentChange:
    """A target's kustomization before and after the edit."""

    app: str
    environment: str
    path: str
    edit: OverlayEdit

    @property
    def file(self) -> str:
        return f"{self.path}/{self.edit.file.name}"


@dataclass(frozen=True, kw_only=True)
class MergeRequestResult:
    """What happened to one environment's merge request."""

    app: str
    environment: str
    source_branch: str
    action: MergeRequestAction
    iid: int | None = None
    web_url: str | None = None
    commit: str | None = None

    def with_action(self, action: MergeRequestAction) -> MergeRequestResult:
        return replace(self, action=action)


@dataclass(frozen=True, kw_only=True)
class DeployResult:
    """What a change did: pushed (the commit), up to date, a dry run, or merge requests."""

    status: ChangeStatus
    repo_url: str
    branch: str
    commit: str | None
    base_commit: str
    changes: tuple[EnvironmentChange, ...]
    attempts: int = 1
    merge_requests: tuple[MergeRequestResult, ...] = ()
    defaults: RepoDefaults = BUILT_IN_DEFAULTS

    @property
    def changed_files(self) -> list[str]:
        return [c.file for c in self.changes if c.edit.changed]


Planner = Callable[[ManifestRepo, RepoDefaults], list[Target]]
MessageFor = Callable[[Sequence[EnvironmentChange]], str]


@dataclass(frozen=True, kw_only=True)
class Change:
    """What to change: the paths to check out (the planner may add more once it has read the repo's
    defaults), the overlays it edits if known before planning (the API transport reads them ahead), how to
    find the targets, the commit message, and whether the repo's gitops-ci.yaml is needed (not when options
    give everything it would)."""

    settings: RepoSettings
    sparse_paths: tuple[str, ...]
    planner: Planner
    message_for: MessageFor
    reads_defaults: bool = True
    overlays: tuple[str, ...] = ()
