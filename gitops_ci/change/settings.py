"""What a change to the manifest repo needs to know, validated before anything touches the network."""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

from gitops_ci import logs
from gitops_ci.errors import ConfigurationError, ImageArgumentError
from gitops_ci.images.reference import ImageUpdate, parse_image_arguments, split_reference
from gitops_ci.manifest_repo.paths import inside_git
from gitops_ci.manifest_repo.port import Identity
from gitops_ci.naming import check_ca_file, check_name, check_ref_name, check_secret, render
from gitops_ci.retry import Clock, with_retries

if TYPE_CHECKING:  # signing is imported only when a key is given
    from gitops_ci.manifest_repo.signing import SigningKey

T = TypeVar("T")
DEFAULT_PATH_TEMPLATE = "kustomize/{app}/overlays/{env}"
DEFAULT_MESSAGE = "[skip ci] update image of app {app} - {env} to {image}"
DEFAULT_MR_BRANCH = "gitops/{app}/{env}"
DEFAULT_MR_TITLE = "Deploy {app} to {env}: {image}"
SKIP_CI = "[skip ci] "
_PLAIN_DIRECTORY = re.compile(r"[A-Za-z0-9._+@=,][A-Za-z0-9._+@=,-]*")
_TRAILER_SOURCES = (
    ("Source-Project", "CI_PROJECT_URL"),
    ("Source-Commit", "CI_COMMIT_SHA"),
    ("Pipeline", "CI_PIPELINE_URL"),
)


@dataclass(frozen=True, kw_only=True)
class MergeRequestOptions:
    """How merge-request mode names, labels and merges the merge request of each environment."""

    branch_template: str = DEFAULT_MR_BRANCH
    title_template: str = DEFAULT_MR_TITLE
    labels: tuple[str, ...] = ()
    assignees: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()
    remove_source_branch: bool = True
    squash: bool = False
    auto_merge: bool = False
    merge_timeout: float = 300.0
    poll_interval: float = 2.0
    gitlab_url: str | None = None

    def __post_init__(self) -> None:
        # App and environment names are checked names, so a template that works for these works for all.
        check_ref_name(render(self.branch_template, "--mr-branch", app="app", env="env"), "--mr-branch")
        render(self.title_template, "--mr-title", app="app", env="env", image="image")


Transport = Literal["git", "api"]


@dataclass(frozen=True, kw_only=True)
class RepoSettings:
    """Where the manifest repo is and how to change it: shared by deploy and promote."""

    repo_url: str
    branch: str | None = None
    path_template: str | None = None  # None: the repo's gitops-ci.yaml, else DEFAULT_PATH_TEMPLATE
    ca_file: str | None = None
    workdir: Path | None = None
    max_attempts: int = 10
    backoff_seconds: float = 0.5
    push_timeout_seconds: float = 600.0
    network_timeout_seconds: float = 30.0
    git_timeout_seconds: float = 300.0
    dry_run: bool = False
    mode: str = "push"
    merge_request: MergeRequestOptions = field(default_factory=MergeRequestOptions)
    author: Identity | None = None
    committer: Identity = field(default_factory=lambda: bot_identity())
    trailers: tuple[tuple[str, str], ...] = ()
    signing_key: SigningKey | None = None
    transport: Transport = "git"

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError("--max-attempts must be at least 1")
        if self.push_timeout_seconds <= 0:
            raise ConfigurationError("--push-timeout must be more than 0 (for example 10m)")
        if self.transport not in ("git", "api"):
            raise ConfigurationError(f"--transport {self.transport!r} is not git or api")
        if self.mode not in ("push", "merge-request"):
            raise ConfigurationError(f"--mode {self.mode!r} is not push or merge-request")
        if self.branch is not None:
            check_ref_name(self.branch, "--branch")
        check_ca_file(self.ca_file)

    def retried(self, step: Callable[[], T], what: str, clock: Clock) -> T:
        """`step`, tried again on a transient failure: --max-attempts in all, --backoff apart."""
        return with_retries(
            step, what=what, max_attempts=self.max_attempts, base=self.backoff_seconds, clock=clock
        )


@dataclass(frozen=True, kw_only=True)
class DeploySettings:
    """A deploy: the app, its environments and images, on the manifest repo of `repo`."""

    repo: RepoSettings
    app: str
    environments: tuple[str, ...]
    images: tuple[str, ...]
    message: str = DEFAULT_MESSAGE

    def __post_init__(self) -> None:
        if not self.app:
            raise ConfigurationError("no app: pass --app or set GITOPS_APP_NAME")
        if not self.environments:
            raise ConfigurationError("no environment: pass --env or set GITOPS_ENVIRONMENT")
        if not self.images:
            raise ConfigurationError(
                "no image: pass --image (e.g. --image registry.example.com/team/app:1.2)"
            )
        check_name(self.app, "--app")
        for env in self.environments:
            check_name(env, "--env")


def bot_identity(environ: Mapping[str, str] | None = None) -> Identity:
    env = os.environ if environ is None else environ
    host = env.get("CI_SERVER_HOST") or "gitops-ci.invalid"
    return Identity(
        env.get("GITOPS_BOT_NAME") or "gitops-ci", env.get("GITOPS_BOT_EMAIL") or f"gitops-ci@{host}"
    )


def author_from_gitlab(environ: Mapping[str, str] | None = None) -> Identity | None:
    """The user who started the pipeline, when GitLab says who that was."""
    env = os.environ if environ is None else environ
    if env.get("GITLAB_USER_NAME") and env.get("GITLAB_USER_EMAIL"):
        return Identity(env["GITLAB_USER_NAME"], env["GITLAB_USER_EMAIL"])
    return None


def signing_key_from(path: str | None, environ: Mapping[str, str] | None = None) -> SigningKey | None:
    """--signing-key (or GITOPS_SIGNING_KEY), with its passphrase from GITOPS_SIGNING_KEY_PASSPHRASE."""
    if not path:
        return None
    from gitops_ci.manifest_repo.signing import PASSPHRASE_VARIABLE, load_signing_key

    env = os.environ if environ is None else environ
    passphrase = env.get(PASSPHRASE_VARIABLE)
    logs.register_secret(passphrase)
    check_secret(passphrase, PASSPHRASE_VARIABLE)
    return load_signing_key(path, passphrase)


def trailers_from_ci(environ: Mapping[str, str] | None = None) -> tuple[tuple[str, str], ...]:
    env = os.environ if environ is None else environ
    return tuple((key, env[var]) for key, var in _TRAILER_SOURCES if env.get(var))


def overlay_path(template: str, app: str, env: str) -> str:
    """The overlay directory inside the repo (see `plain_repo_path`)."""
    return plain_repo_path(render(template, "--path-template", app=app, env=env))


def overlay_paths(template: str, app: str, environments: Sequence[str]) -> dict[str, str]:
    """Each environment's overlay; two environments sharing one would make a deploy of one change both."""
    paths: dict[str, str] = {}
    for env in environments:
        path = overlay_path(template, app, env)
        shared = next((other for other, taken in paths.items() if taken == path and other != env), None)
        if shared is not None:
            raise ConfigurationError(
                f"the path template {template[:120]!r} gives environments {shared} and {env} one overlay "
                f"({path}); put {{env}} in --path-template or in gitops-ci.yaml's path_template"
            )
        paths[env] = path
    return paths


def plain_repo_path(raw: str) -> str:
    """A directory inside the repo named by --path-template (or gitops-ci.yaml's path_template): refuses
    anything that would leave the repo, and any directory name that is not plain (it reaches git's
    sparse-checkout patterns, where `*` or a newline would mean more)."""
    normalised = posixpath.normpath(raw)
    escapes = normalised == ".." or normalised.startswith("../") or any(p == ".." for p in raw.split("/"))
    if raw.startswith("/") or escapes or "\\" in raw or "\0" in raw:
        raise ConfigurationError(
            f"overlay path {raw[:120]!r} leaves the repository; fix --path-template, --app or --env"
        )
    if inside_git(normalised):
        raise ConfigurationError(
            f"overlay path {raw[:120]!r} is inside .git, git's own directory and not the repo's content; fix "
            "--path-template or the path_template of gitops-ci.yaml"
        )
    odd = next((part for part in normalised.split("/") if not _PLAIN_DIRECTORY.fullmatch(part)), None)
    if odd is not None:
        raise ConfigurationError(
            f"overlay path {raw[:120]!r}: {odd[:60]!r} is not a plain directory name (letters, digits and "
            "._-+@=, not starting with -); fix --path-template or the path_template of gitops-ci.yaml"
        )
    return normalised


def image_updates(app: str, images: Sequence[str]) -> list[ImageUpdate]:
    """`--image ref` means `app=ref`; with `=` it is set-image syntax. A plain reference must name a tag or
    a digest: without one it is almost always a forgotten `:$CI_COMMIT_SHORT_SHA`."""
    for image in images:
        if not image:
            raise ImageArgumentError("--image is empty (an unset variable?); pass the image the job built")
        if "=" not in image and split_reference(image)[1:] == (None, None):
            raise ImageArgumentError(
                f"--image {image!r} has no tag or digest (a forgotten :$CI_COMMIT_SHORT_SHA?); add one, or "
                f"to set only the name write set-image syntax: --image {app}={image}"
            )
    return parse_image_arguments([image if "=" in image else f"{app}={image}" for image in images])


def with_trailers(subject: str, trailers: Sequence[tuple[str, str]]) -> str:
    if not trailers:
        return subject
    return subject + "\n\n" + "\n".join(f"{key}: {value}" for key, value in trailers)


def commit_message(
    template: str, *, app: str, environments: Sequence[str], images: Sequence[str], mode: str
) -> str:
    """The commit subject; merge-request commits must not skip the MR pipeline that gates auto-merge."""
    subject = render(template, "--message", app=app, env=", ".join(environments), image=", ".join(images))
    if not subject.strip():
        raise ConfigurationError("--message is empty; give a commit subject, e.g. 'update {app} in {env}'")
    if mode == "merge-request" and template == DEFAULT_MESSAGE:
        subject = subject.removeprefix(SKIP_CI)
    return subject
