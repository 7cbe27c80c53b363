"""`gitops-ci deploy`: set the app's image in its overlays, as one change of the manifest repo."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from gitops_ci.change.model import Change, EnvironmentChange, Target
from gitops_ci.change.runner import ChangeOutcome, run_change
from gitops_ci.change.settings import (
    DEFAULT_PATH_TEMPLATE,
    DeploySettings,
    commit_message,
    image_updates,
    overlay_paths,
)
from gitops_ci.retry import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from gitops_ci.change.follow_up import FollowUpSettings


def deploy(
    settings: DeploySettings, follow: FollowUpSettings | None = None, clock: Clock = SYSTEM_CLOCK
) -> ChangeOutcome:
    """The change, then its follow-ups (sync, wait) when asked for."""
    change = deploy_change(settings)
    if follow is None or not (follow.sync or follow.wait):
        return run_change(change, clock=clock)
    from gitops_ci.change.follow_up import FollowUp

    return run_change(change, FollowUp(follow, settings), clock)


def deploy_change(settings: DeploySettings) -> Change:
    """The change a deploy makes; bad input (a template, an image) fails here, before any clone. Without
    --path-template the overlays are where the repo's gitops-ci.yaml says (the clone guesses the default)."""
    updates = tuple(image_updates(settings.app, settings.images))
    images = [u.reference() for u in updates]

    def targets(template: str) -> list[Target]:
        paths = overlay_paths(template, settings.app, settings.environments)
        return [Target(app=settings.app, environment=e, path=p, updates=updates) for e, p in paths.items()]

    def message(changes: Sequence[EnvironmentChange]) -> str:
        envs = [c.environment for c in changes if c.edit.changed] or list(settings.environments)
        return commit_message(
            settings.message, app=settings.app, environments=envs, images=images, mode=settings.repo.mode
        )

    message([])
    given = settings.repo.path_template
    overlays = tuple(t.path for t in targets(given or DEFAULT_PATH_TEMPLATE))
    return Change(
        settings=settings.repo,
        sparse_paths=overlays,
        overlays=overlays,
        planner=lambda repo, defaults: targets(given or defaults.path_template),
        message_for=message,
        reads_defaults=given is None,
    )
