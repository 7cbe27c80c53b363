"""The repo-level settings file that `init` writes and every onboarding command reads: environments in
promotion order and their clusters, the engine, and the path and Application name templates."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

from gitops_ci.change.settings import overlay_path
from gitops_ci.errors import ConfigurationError, KustomizationError
from gitops_ci.manifest_repo.credentials import check_repo_url
from gitops_ci.naming import SETTINGS_FILE, check_ref_name, render
from gitops_ci.onboard.emit import to_yaml

Engine = Literal["argocd", "flux"]
DNS_LABEL_MAX = 63
_GROUP = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}(/[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}){0,19}")


@dataclass(frozen=True)
class Cluster:
    name: str
    server: str


@dataclass(frozen=True)
class Environment:
    name: str
    cluster: str


@dataclass(frozen=True, kw_only=True)
class Conventions:
    repo_url: str
    branch: str
    engine: Engine = "argocd"
    clusters: tuple[Cluster, ...]
    environments: tuple[Environment, ...]
    path_template: str = "kustomize/{app}/overlays/{env}"
    app_name_template: str = "{env}-{app}"
    argocd_namespace: str = "argocd"
    agent: str | None = None
    ci_access_groups: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        names = [c.name for c in self.clusters]
        for name in names:
            check_label(name, "--cluster name")
        if len(set(names)) != len(names):
            raise ConfigurationError("a --cluster name is given twice; name each cluster once")
        for cluster in self.clusters:
            if cluster.name == "default":  # Argo CD's own AppProject
                raise ConfigurationError(
                    "--cluster default: Argo CD's default project has that name; pick another"
                )
            problem = _server_problem(cluster.server)
            if problem is not None:
                shown = cluster.server.rpartition("@")[2][:100]  # never its credentials
                raise ConfigurationError(f"--cluster {cluster.name}={shown!r}: the API server {problem}")
        for env in self.environments:
            check_label(env.name, "--env name")
            if env.cluster not in names:
                raise ConfigurationError(
                    f"--env {env.name}={env.cluster}: no --cluster {env.cluster}; define it first"
                )
        if len({e.name for e in self.environments}) != len(self.environments):
            raise ConfigurationError("an --env is given twice; name each environment once")
        if self.agent is not None:
            check_label(self.agent, "--agent")
        elif self.ci_access_groups:  # the groups go into the agent's configuration: without one, nowhere
            raise ConfigurationError("--ci-access-group needs --agent: the agent is what grants the access")
        for group in self.ci_access_groups:
            if not _GROUP.fullmatch(group):
                raise ConfigurationError(
                    f"--ci-access-group {group[:70]!r} is not a GitLab group path (letters, digits, _ . -, "
                    "segments joined by /, e.g. platform/teams)"
                )
        render(self.app_name_template, "app_name_template", app="app", env="env")
        overlay_path(self.path_template, "app", "env")
        if self.engine not in ("argocd", "flux"):
            raise ConfigurationError(f"engine {self.engine[:40]!r} is not argocd or flux")
        # Written into every Application and printed in the one command a person runs by hand: the repo's
        # settings file is repo content, so these are checked as strictly as the options they came from.
        check_repo_url(self.repo_url)
        check_ref_name(self.branch, "branch")
        check_label(self.argocd_namespace, "argocd_namespace")

    def is_system_namespace(self, name: str) -> bool:
        """A namespace the cluster or the GitOps engine owns: never an environment's."""
        return name in {"default", "flux-system", self.argocd_namespace} or name.startswith("kube-")

    def check_new(self) -> None:
        """What init refuses to write, beyond what every gitops-ci.yaml must be (a file written by an older
        version stays readable): names that Argo CD, Flux or the cluster take, and a template that does not
        give each app and environment an overlay of its own."""
        for cluster in self.clusters:
            if cluster.name.endswith("-root"):  # <cluster>-root is the root's AppProject
                raise ConfigurationError(
                    f"--cluster {cluster.name}: the roots' AppProjects are named <cluster>-root; pick another"
                )
        for env in self.environments:
            if self.is_system_namespace(env.name):  # the environment's apps go there
                raise ConfigurationError(
                    f"--env {env.name}: an environment's name is its namespace, and {env.name} is the "
                    "cluster's or the GitOps engine's own; pick another"
                )
        if "{app}" not in self.path_template or "{env}" not in self.path_template:
            raise ConfigurationError(
                f"--path-template {self.path_template[:120]!r} needs {{app}} and {{env}}: one overlay per "
                "app and environment (e.g. kustomize/{app}/overlays/{env})"
            )

    def cluster_of(self, env: str) -> Cluster:
        found = next((e for e in self.environments if e.name == env), None)
        if found is None:
            known = ", ".join(e.name for e in self.environments)
            raise ConfigurationError(
                f"--env {env} is not an environment of this repo ({known}); run init to add it"
            )
        return next(c for c in self.clusters if c.name == found.cluster)

    def app_name(self, app: str, env: str) -> str:
        return render(self.app_name_template, "app_name_template", app=app, env=env)

    def overlay_of(self, path: str) -> tuple[str, str] | None:
        """(app, env) when `path` is the overlay the path template gives an app in one of the environments;
        both normalised as rendering does (`./kustomize/{app}/...` names the same overlays)."""
        found = re.fullmatch(
            _template_pattern(posixpath.normpath(self.path_template)), posixpath.normpath(path)
        )
        if found is None or found["env"] not in {e.name for e in self.environments}:
            return None
        return found["app"], found["env"]


def _template_pattern(template: str) -> str:
    """A regex of a path template: {app} and {env} one path segment each, the same wherever repeated."""
    pattern, seen = "", set()
    for part in re.split(r"(\{app\}|\{env\})", template):
        name = part[1:-1] if part in ("{app}", "{env}") else None
        if name is None:
            pattern += re.escape(part)
        else:
            pattern += f"(?P={name})" if name in seen else f"(?P<{name}>[^/]+)"
            seen.add(name)
    return pattern


def _server_problem(server: str) -> str | None:
    """What is wrong with an API server URL that goes into every Application and AppProject of its cluster."""
    if any(c.isspace() or not c.isprintable() for c in server):
        return "must be an https:// URL (no spaces or control characters)"
    try:
        url = urlsplit(server)
        url.port  # noqa: B018 - raises on a bad port
    except ValueError:
        return "is not a URL"
    if url.scheme != "https" or not url.hostname:
        return "must be an https:// URL (no spaces or control characters)"
    if url.username is not None or url.query or url.fragment:
        return "must not carry credentials, a query or a fragment: it is written into the repo"
    if any(c in "*?[]{}!" for c in server.replace(f"[{url.hostname}]", "")):
        return "must not contain glob characters: Argo CD matches an AppProject's destinations as globs"
    return None


def check_label(value: str, option: str) -> str:
    """A DNS-1123 label: what Kubernetes, Argo CD and the GitLab agent accept as a name."""
    valid = 0 < len(value) <= DNS_LABEL_MAX and value.isascii() and value[0].isalnum() and value[-1].isalnum()
    if not valid or any(not (c.islower() or c.isdigit() or c == "-") for c in value):
        raise ConfigurationError(
            f"{option} {value[:70]!r} is not a DNS-1123 label: lowercase letters, digits and '-', starting "
            f"and ending with a letter or digit, at most {DNS_LABEL_MAX} characters"
        )
    return value


def render_conventions(c: Conventions) -> str:
    data: dict[str, Any] = {
        "version": 1,
        "repo_url": c.repo_url,
        "branch": c.branch,
        "engine": c.engine,
        "path_template": c.path_template,
        "app_name_template": c.app_name_template,
        "argocd_namespace": c.argocd_namespace,
        "clusters": [{"name": k.name, "server": k.server} for k in c.clusters],
        "environments": [{"name": e.name, "cluster": e.cluster} for e in c.environments],
    }
    if c.agent:
        data["agent"] = {"name": c.agent, "ci_access_groups": list(c.ci_access_groups)}
    comment = (
        "gitops-ci's conventions for this repo, written by `gitops-ci init`: environments in promotion\n"
        "order and the cluster each runs on. gitops-ci reads its defaults here; options override them."
    )
    return to_yaml(data, comment)


def parse_conventions(text: str) -> Conventions:
    from gitops_ci.images import yamlconf

    try:
        data = yamlconf.load(text)
        agent = data.get("agent") or {}
        return Conventions(
            repo_url=str(data["repo_url"]),
            branch=str(data["branch"]),
            engine=str(data.get("engine", "argocd")),  # type: ignore[arg-type]
            clusters=tuple(Cluster(str(k["name"]), str(k["server"])) for k in data["clusters"]),
            environments=tuple(Environment(str(e["name"]), str(e["cluster"])) for e in data["environments"]),
            path_template=str(data.get("path_template", "kustomize/{app}/overlays/{env}")),
            app_name_template=str(data.get("app_name_template", "{env}-{app}")),
            argocd_namespace=str(data.get("argocd_namespace", "argocd")),
            agent=str(agent["name"]) if agent.get("name") else None,
            ci_access_groups=tuple(str(g) for g in agent.get("ci_access_groups") or ()),
        )
    except (
        KeyError,
        TypeError,
        AttributeError,
        ValueError,
        ConfigurationError,
        yamlconf.AnyYAMLError,
    ) as err:
        said = " ".join(str(err).split())[:300]
        raise KustomizationError(
            f"{SETTINGS_FILE}: not gitops-ci settings ({said}); fix it or run init again"
        ) from None
