"""`gitops-ci init` and `gitops-ci new-app`: plan the files that are missing and write them in one commit,
through the ManifestRepo port (both transports). Nothing that exists is changed; a re-run changes nothing."""

from __future__ import annotations

from dataclasses import dataclass

from gitops_ci.change.runner import FilesPlanner, FilesResult, land_files
from gitops_ci.change.settings import RepoSettings, image_updates
from gitops_ci.errors import ConfigurationError
from gitops_ci.manifest_repo.port import ManifestRepo
from gitops_ci.naming import SETTINGS_FILE, render
from gitops_ci.onboard import app_files, flux_tenancy, manifests
from gitops_ci.onboard.conventions import (
    Cluster,
    Conventions,
    Engine,
    Environment,
    check_label,
    parse_conventions,
    render_conventions,
)
from gitops_ci.retry import SYSTEM_CLOCK, Clock


@dataclass(frozen=True, kw_only=True)
class InitSettings:
    repo: RepoSettings
    clusters: tuple[Cluster, ...]
    environments: tuple[Environment, ...]
    engine: Engine | None = None  # None: what gitops-ci.yaml says, else argocd
    agent: str | None = None
    ci_access_groups: tuple[str, ...] = ()

    def conventions(self, branch: str, engine: Engine | None = None) -> Conventions:
        conventions = Conventions(
            repo_url=self.repo.repo_url,
            branch=branch,
            engine=self.engine or engine or "argocd",
            clusters=self.clusters,
            environments=self.environments,
            agent=self.agent,
            ci_access_groups=self.ci_access_groups,
            **({"path_template": self.repo.path_template} if self.repo.path_template else {}),
        )
        conventions.check_new()
        return conventions


@dataclass(frozen=True, kw_only=True)
class NewAppSettings:
    repo: RepoSettings
    app: str
    environments: tuple[str, ...]
    image: str
    port: int = 8080
    replicas: int | None = None
    update: bool = False

    def __post_init__(self) -> None:
        check_label(self.app, "--app")
        if not self.environments:
            raise ConfigurationError("no environment: pass --env (repeatable)")
        if not 0 < self.port < 65536:
            raise ConfigurationError(f"--port {self.port} is not a TCP port")
        image_updates(self.app, [self.image])  # a tagless or invalid image is bad input here, not later


@dataclass(frozen=True)
class OnboardResult:
    result: FilesResult
    apply_commands: tuple[str, ...] = ()


def init(settings: InitSettings, clock: Clock = SYSTEM_CLOCK) -> OnboardResult:
    planned = [settings.conventions("main")]  # bad input fails before any clone

    def plan(repo: ManifestRepo) -> dict[str, str]:
        text = repo.read(SETTINGS_FILE)
        existing = parse_conventions(text) if text is not None else None
        conventions = settings.conventions(repo.branch, existing.engine if existing else None)
        planned.append(conventions)
        if existing is not None:
            _check_compatible(existing, conventions, settings)
        files = {SETTINGS_FILE: render_conventions(conventions), **manifests.agent_config(conventions)}
        for cluster in conventions.clusters:
            make = (
                manifests.flux_cluster_files
                if conventions.engine == "flux"
                else manifests.argocd_cluster_files
            )
            files |= make(conventions, cluster)
        return {path: text for path, text in files.items() if repo.read(path) is None}

    clusters = ", ".join(c.name for c in settings.clusters)
    message = f"gitops-ci init: clusters {clusters}"
    result = _write(settings.repo, ("clusters", ".gitlab"), plan, message, "gitops/init", clock)
    return OnboardResult(result, _apply_commands(planned[-1]))


def new_app(settings: NewAppSettings, clock: Clock = SYSTEM_CLOCK) -> OnboardResult:
    (image,) = image_updates(settings.app, [settings.image])

    def plan(repo: ManifestRepo) -> dict[str, str]:
        text = repo.read(SETTINGS_FILE)
        if text is None:
            raise ConfigurationError(f"{repo.url} has no {SETTINGS_FILE}: run gitops-ci init first")
        conventions = parse_conventions(text)
        base = _base_of(conventions.path_template, settings.app)
        files = app_files.base_files(base, settings.app, image, settings.port)
        for env in settings.environments:
            overlay = render(conventions.path_template, "path_template", app=settings.app, env=env)
            files |= app_files.overlay_file(overlay, base, settings.app, env, image, settings.replicas)
            files |= dict([manifests.child(conventions, settings.app, env, overlay)])
        _check_names(repo, conventions, settings)
        missing = {path: text for path, text in files.items() if repo.read(path) is None}
        if missing and repo.listing(base) is not None and not settings.update:
            raise ConfigurationError(
                f"app {settings.app} already exists in {base}; pass --update to add only the missing "
                "environments"
            )
        # an environment's namespace and rights are the cluster's (added to a repo made before they were)
        shared = {
            p: t
            for env in settings.environments
            for p, t in flux_tenancy.environment_files(conventions, env).items()
        }
        return missing | {path: text for path, text in shared.items() if repo.read(path) is None}

    app_dir = _base_of("kustomize/{app}/overlays/{env}", settings.app).rsplit("/", 1)[0]
    message = f"gitops-ci new-app {settings.app}: {', '.join(settings.environments)}"
    source = f"gitops/new-app/{settings.app}"
    return OnboardResult(_write(settings.repo, ("clusters", app_dir), plan, message, source, clock))


def _write(
    repo_settings: RepoSettings,
    sparse: tuple[str, ...],
    plan: FilesPlanner,
    message: str,
    source_branch: str,
    clock: Clock,
) -> FilesResult:
    """One commit on the branch, or (--mode merge-request) one merge request from `source_branch`."""
    from gitops_ci.change.files_merge_request import propose_files
    from gitops_ci.manifest_repo.open import open_repo

    with open_repo(repo_settings, sparse, clock) as repo:
        if repo_settings.mode == "merge-request":
            return propose_files(repo, plan, message, repo_settings, source_branch, clock)
        return land_files(repo, plan, message, repo_settings, clock)


def _base_of(template: str, app: str) -> str:
    prefix, found, rest = template.partition("{app}")
    if not found or not rest.startswith("/") or "{" in prefix:
        raise ConfigurationError(
            f"path_template {template!r}: new-app needs <dir>/{{app}}/<overlays>/{{env}}"
        )
    return f"{prefix}{app}/base"


def _check_names(repo: ManifestRepo, conventions: Conventions, settings: NewAppSettings) -> None:
    """Application names are global in one Argo CD: refuse one that two environments or clusters share."""
    names = {env: conventions.app_name(settings.app, env) for env in settings.environments}
    if len(set(names.values())) != len(names):
        raise ConfigurationError(
            f"app_name_template {conventions.app_name_template!r} gives two environments the same name "
            f"({', '.join(sorted(names.values()))}); put {{env}} in it"
        )
    for env, name in names.items():
        if name in manifests.reserved_names(conventions):
            raise ConfigurationError(f"{name} names a cluster's root or project; pick another --app")
        check_label(name, "the Application name (app_name_template)")
        own = conventions.cluster_of(env)
        for cluster in conventions.clusters:
            if cluster != own and repo.read(f"{manifests.apps_dir(cluster)}/{name}.yaml") is not None:
                raise ConfigurationError(f"{name} already names an Application of cluster {cluster.name}")


def _check_compatible(existing: Conventions, wanted: Conventions, settings: InitSettings) -> None:
    """init never changes an existing gitops-ci.yaml, so what it would add must agree with it."""
    given = {
        "--engine": (settings.engine, existing.engine),
        "--path-template": (settings.repo.path_template, existing.path_template),
        "--agent": (settings.agent, existing.agent),
        "--ci-access-group": (settings.ci_access_groups or None, existing.ci_access_groups or None),
    }
    for option, (value, recorded) in given.items():
        if value is not None and value != recorded:
            shown = ", ".join(value) if isinstance(value, tuple) else value
            was = ", ".join(recorded) if isinstance(recorded, tuple) else recorded
            raise ConfigurationError(
                f"{option} {shown} disagrees with {SETTINGS_FILE}, which says {was or 'none'}; init never "
                f"changes an existing {SETTINGS_FILE}: give what it says, or change it first"
            )
    for env in wanted.environments:
        if env not in existing.environments:
            raise ConfigurationError(
                f"{SETTINGS_FILE} exists without environment {env.name} on {env.cluster}; init never "
                "changes an existing file: add it there"
            )
    for cluster in wanted.clusters:
        if cluster not in existing.clusters:
            raise ConfigurationError(f"{SETTINGS_FILE} exists without cluster {cluster.name}; add it there")


def _apply_commands(conventions: Conventions) -> tuple[str, ...]:
    if conventions.engine == "flux":
        return tuple(f"kubectl apply -f clusters/{c.name}/source.yaml -f clusters/{c.name}/apps.yaml"
                     for c in conventions.clusters)  # fmt: skip
    namespace = conventions.argocd_namespace
    return tuple(f"kubectl apply -n {namespace} -f clusters/{c.name}/root.yaml" for c in conventions.clusters)
