"""`gitops-ci promote`: ship to the target environments exactly the images the source runs.

The source overlay is read on the tip being edited (again on every retry), so a promotion never copies a
stale image; copying means newName, newTag and digest all become the source's, absent fields included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from gitops_ci import logs
from gitops_ci.change.model import Change, EnvironmentChange, RepoDefaults, Target
from gitops_ci.change.runner import ChangeOutcome, run_change
from gitops_ci.change.settings import (
    DEFAULT_PATH_TEMPLATE,
    RepoSettings,
    commit_message,
    overlay_path,
    overlay_paths,
    plain_repo_path,
)
from gitops_ci.errors import ConfigurationError, ImageArgumentError, KustomizationError
from gitops_ci.images.describe import image_of
from gitops_ci.images.reference import (
    ImageUpdate,
    validate_digest,
    validate_name,
    validate_repository,
    validate_tag,
)
from gitops_ci.manifest_repo.port import ManifestRepo
from gitops_ci.naming import check_name, is_name
from gitops_ci.retry import SYSTEM_CLOCK, Clock

log = logs.get_logger(__name__)
DEFAULT_PROMOTE_MESSAGE = "[skip ci] promote app {app} to {env}: {image}"
DEFAULT_PROMOTE_MR_TITLE = "Promote {app} to {env}: {image}"


@dataclass(frozen=True, kw_only=True)
class PromoteSettings:
    repo: RepoSettings
    app: str | None
    all_apps: bool = False
    source: str | None = None  # None: the environment before the first target in gitops-ci.yaml's order
    targets: tuple[str, ...]
    image_names: tuple[str, ...] = ()
    message: str = DEFAULT_PROMOTE_MESSAGE

    def __post_init__(self) -> None:
        if bool(self.app) == self.all_apps:
            raise ConfigurationError("pass either --app APP or --all-apps")
        if not self.targets:
            raise ConfigurationError("no target environment: pass --to ENV")
        if self.source in self.targets:
            raise ConfigurationError(
                f"--from {self.source} is also a --to target; promote to other environments"
            )
        if self.app:
            check_name(self.app, "--app")
        if self.source is not None:
            check_name(self.source, "--from")
        for target in self.targets:
            check_name(target, "--to")


def promote(settings: PromoteSettings, clock: Clock = SYSTEM_CLOCK) -> ChangeOutcome:
    return run_change(promote_change(settings), clock=clock)


def promote_change(settings: PromoteSettings) -> Change:
    given = settings.repo.path_template
    guess = given or DEFAULT_PATH_TEMPLATE  # the clone's first cone; the planner adds what it needs
    if settings.all_apps:
        sparse = [_apps_directory(guess)]
    else:
        assert settings.app is not None
        envs = [e for e in (settings.source, *settings.targets) if e is not None]
        sparse = [overlay_path(guess, settings.app, env) for env in envs]
    commit_message(
        settings.message, app="app", environments=["env"], images=["image"], mode=settings.repo.mode
    )

    def planner(repo: ManifestRepo, defaults: RepoDefaults) -> list[Target]:
        template = given or defaults.path_template
        source = settings.source or source_environment(defaults.environments, settings.targets)
        if settings.all_apps:
            repo.include([_apps_directory(template)])
        apps = _list_apps(repo, template) if settings.all_apps else [settings.app or ""]
        return [t for app in apps for t in _targets(repo, settings, app, template, source)]

    def message(changes: Sequence[EnvironmentChange]) -> str:
        changed = [c for c in changes if c.edit.changed]
        apps = sorted({c.app for c in changed})
        images = sorted({image_of(e.name, e.after) for c in changed for e in c.edit.changes})
        return commit_message(
            settings.message,
            app=", ".join(apps),
            environments=sorted({c.environment for c in changed}),
            images=images,
            mode=settings.repo.mode,
        )

    return Change(settings=settings.repo, sparse_paths=tuple(sparse), planner=planner, message_for=message,
                  reads_defaults=given is None or settings.source is None,
                  overlays=() if settings.all_apps else tuple(sparse))  # fmt: skip


def source_environment(order: Sequence[str], targets: Sequence[str]) -> str:
    """Without --from: the environment just before the earliest target in the repo's promotion order."""
    if not order:
        raise ConfigurationError(
            "no --from: pass --from ENV (or let `gitops-ci init` record the promotion order in "
            "gitops-ci.yaml)"
        )
    unknown = [t for t in targets if t not in order]
    if unknown:
        raise ConfigurationError(
            f"--to {unknown[0]} is not an environment of gitops-ci.yaml ({', '.join(order)}); check --to"
        )
    first = min(order.index(t) for t in targets)
    if first == 0:
        raise ConfigurationError(
            f"--to {order[0]} is the first environment of gitops-ci.yaml ({', '.join(order)}); nothing is "
            "promoted into it: deploy to it, or pass --from"
        )
    return order[first - 1]


def source_updates(
    kustomization: tuple[str, str], path: str, names: Sequence[str]
) -> tuple[ImageUpdate, ...]:
    """Updates that make a target's entries equal to the source overlay's (all entries, or those named)."""
    from gitops_ci.images.editor import editor_for  # ruamel.yaml: imported while the repo opens

    file, text = kustomization
    entries = editor_for(file).images(text, file)
    by_name = {e["name"]: e for e in entries}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise KustomizationError(f"{path} has no images entry named {', '.join(missing)}; check --image")
    chosen = [by_name[n] for n in names] if names else list(by_name.values())
    for entry in chosen:
        _check_entry(entry, path)
    return tuple(
        ImageUpdate(
            e["name"], e.get("newName"), e.get("newTag"), e.get("digest"), argument=f"{e['name']} from {path}"
        )
        for e in chosen
    )


def _check_entry(entry: dict[str, str], path: str) -> None:
    """What is copied must be a valid image: the source overlay is repo content, not trusted input."""
    try:
        validate_name(entry["name"])
        if "newName" in entry:
            validate_repository(entry["newName"])
        if "newTag" in entry:
            validate_tag(entry["newTag"])
        if "digest" in entry:
            validate_digest(entry["digest"])
    except ImageArgumentError as err:
        raise KustomizationError(
            f"{path}: images entry {entry['name'][:60]!r}: {err}; fix the source overlay first"
        ) from None


def _targets(
    repo: ManifestRepo, settings: PromoteSettings, app: str, template: str, environment: str
) -> list[Target]:
    paths = overlay_paths(template, app, [environment, *settings.targets])
    source, target_paths = paths.pop(environment), paths
    if not settings.all_apps:
        repo.include([source, *target_paths.values()])
    if settings.all_apps and not all(repo.listing(p) for p in (source, *target_paths.values())):
        envs = ", ".join([environment, *settings.targets])
        log.info("%s: skipped, it lacks one of the overlays %s", app, envs)
        return []
    found = repo.kustomization(source)
    if found is None:
        raise KustomizationError(
            f"source overlay {source} does not exist; check --app, --from and --path-template"
        )
    updates = source_updates(found, source, settings.image_names)
    return [
        Target(app=app, environment=env, path=path, updates=updates) for env, path in target_paths.items()
    ]


def _apps_directory(template: str) -> str:
    prefix = template.split("{app}", 1)[0].rstrip("/")
    if "{" in prefix or "{app}" not in template:
        raise ConfigurationError("--all-apps needs a --path-template whose {app} part comes before {env}")
    return plain_repo_path(prefix or ".")


def _list_apps(repo: ManifestRepo, template: str) -> list[str]:
    listing = repo.listing(_apps_directory(template))
    names = [name for name in (listing.dirs if listing else ()) if not name.startswith(".")]
    for name in names:
        if not is_name(name):
            log.warning("%r: skipped, not a valid app name", name[:60])
    return [name for name in names if is_name(name)]
