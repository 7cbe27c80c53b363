"""Options shared by the commands that change the manifest repo, and the settings they build."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from gitops_ci.change.settings import (
    DEFAULT_MR_BRANCH,
    DEFAULT_MR_TITLE,
    DEFAULT_PATH_TEMPLATE,
    MergeRequestOptions,
    RepoSettings,
    author_from_gitlab,
    signing_key_from,
    trailers_from_ci,
)
from gitops_ci.cli import target_options as target
from gitops_ci.dotenv import MAX_BYTES, MAX_VARIABLES, DotenvReport

if TYPE_CHECKING:
    from gitops_ci.change.follow_up import FollowUpSettings

F = TypeVar("F", bound=Callable[..., Any])

_REPO_OPTIONS = [
    click.option(
        "--repo-url", envvar="GITOPS_REPO_URL", required=True, help="HTTPS URL of the manifest repo."
    ),
    click.option("--branch", envvar="GITOPS_BRANCH", help="Target branch (default: the remote's default)."),
    click.option(
        "--path-template",
        envvar="GITOPS_PATH_TEMPLATE",
        help="Overlay directory of {app} in {env} (default: the repo's gitops-ci.yaml, else "
        f"{DEFAULT_PATH_TEMPLATE}).",
    ),
    click.option(
        "--mode",
        type=click.Choice(["push", "merge-request"]),
        envvar="GITOPS_MODE",
        default="push",
        show_default=True,
        help="Push to the branch, or open one merge request per environment.",
    ),
    click.option(
        "--ca-file", envvar=["GITOPS_CA_FILE", "CI_SERVER_TLS_CA_FILE"], help="CA bundle for HTTPS."
    ),
    click.option(
        "--transport",
        envvar="GITOPS_TRANSPORT",
        type=click.Choice(["git", "api"]),
        default="git",
        show_default=True,
        help="git: clone and push over HTTPS (write_repository). api: GitLab's Commits API, no clone "
        "(needs the api scope).",
    ),
    click.option(
        "--signing-key",
        envvar="GITOPS_SIGNING_KEY",
        metavar="FILE",
        help="Sign every commit with this SSH private key or armored OpenPGP secret key (a GitLab file "
        "variable); a passphrase comes from GITOPS_SIGNING_KEY_PASSPHRASE.",
    ),
    click.option(
        "--workdir",
        envvar="GITOPS_WORKDIR",
        type=click.Path(path_type=Path),
        help="Keep the clone in this (new or empty) directory.",
    ),
    target.max_attempts_option(10, "Tries of each network step (clone, fetch, push) on transient failures."),
    click.option(
        "--push-timeout",
        envvar="GITOPS_PUSH_TIMEOUT",
        metavar="DURATION",
        default="10m",
        show_default=True,
        callback=target.duration,
        help="How long lost push races are retried (the branch moved: fetch, re-apply, push again).",
    ),
    target.BACKOFF,
    target.NETWORK_TIMEOUT,
    click.option(
        "--git-timeout",
        envvar="GITOPS_GIT_TIMEOUT",
        metavar="DURATION",
        default="5m",
        show_default=True,
        callback=target.duration,
        help="Kill a git command (clone, fetch, push) after this long; it counts as a transient failure.",
    ),
    target.dry_run_option("Show the diff; push nothing."),
    click.option(
        "--dotenv",
        envvar="GITOPS_DOTENV",
        type=click.Path(path_type=Path),
        help="Write results as a GitLab dotenv report.",
    ),
    click.option(
        "--dotenv-max-variables",
        envvar="GITOPS_DOTENV_MAX_VARIABLES",
        type=click.IntRange(min=0),
        default=MAX_VARIABLES,
        show_default=True,
        help="Your instance's dotenv_variables limit (GitLab.com: 50 or more; 0: none).",
    ),
    click.option(
        "--dotenv-max-bytes",
        envvar="GITOPS_DOTENV_MAX_BYTES",
        type=click.IntRange(min=0),
        default=MAX_BYTES,
        show_default=True,
        help="Your instance's dotenv_size limit in bytes (0: none).",
    ),
]


def dotenv_report(params: dict[str, Any]) -> DotenvReport | None:
    """The --dotenv report and its limits (removing the options from `params`); None without --dotenv."""
    path = params.pop("dotenv")
    max_variables, max_bytes = params.pop("dotenv_max_variables"), params.pop("dotenv_max_bytes")
    return DotenvReport(path, max_bytes, max_variables) if path is not None else None


_MR_OPTIONS = [
    click.option(
        "--gitlab-url",
        envvar="GITOPS_GITLAB_URL",
        help="GitLab URL (default: CI_SERVER_URL, else the repo's host).",
    ),
    click.option(
        "--mr-branch",
        envvar="GITOPS_MR_BRANCH",
        default=DEFAULT_MR_BRANCH,
        show_default=True,
        help="Source branch of each merge request ({app}, {env}).",
    ),
    click.option("--label", "labels", multiple=True, envvar="GITOPS_MR_LABELS", help="Label (repeatable)."),
    click.option(
        "--assignee", "assignees", multiple=True, envvar="GITOPS_MR_ASSIGNEES", help="Username (repeatable)."
    ),
    click.option(
        "--reviewer", "reviewers", multiple=True, envvar="GITOPS_MR_REVIEWERS", help="Username (repeatable)."
    ),
    click.option(
        "--remove-source-branch/--keep-source-branch",
        default=True,
        envvar="GITOPS_MR_REMOVE_SOURCE_BRANCH",
        show_default=True,
        help="Delete the branch when merged.",
    ),
    click.option("--squash", is_flag=True, envvar="GITOPS_MR_SQUASH", help="Squash when merging."),
    click.option(
        "--auto-merge",
        is_flag=True,
        envvar="GITOPS_AUTO_MERGE",
        help="Merge when the pipeline succeeds (at once when the project has none).",
    ),
    click.option(
        "--merge-timeout",
        type=target.Seconds(),
        default=300.0,
        envvar="GITOPS_MERGE_TIMEOUT",
        show_default=True,
        help="Seconds to wait while GitLab still checks mergeability.",
    ),
    click.option(
        "--poll-interval",
        type=target.Seconds(),
        default=2.0,
        envvar="GITOPS_POLL_INTERVAL",
        show_default=True,
        help="Seconds between status polls.",
    ),
]


def repo_options(*, mr_title: str = DEFAULT_MR_TITLE) -> Callable[[F], F]:
    """The options of a command that changes the manifest repo; `mr_title` is its --mr-title default."""
    title = click.option(
        "--mr-title",
        envvar="GITOPS_MR_TITLE",
        default=mr_title,
        show_default=True,
        help="Merge request title ({app}, {env}, {image}).",
    )
    return lambda func: target.apply(func, *_REPO_OPTIONS, *_MR_OPTIONS, title)


def repo_settings(params: dict[str, Any]) -> RepoSettings:
    """Build RepoSettings from the parsed options (removing them from `params`)."""
    mr = MergeRequestOptions(
        branch_template=params.pop("mr_branch"),
        title_template=params.pop("mr_title"),
        labels=params.pop("labels"),
        assignees=params.pop("assignees"),
        reviewers=params.pop("reviewers"),
        remove_source_branch=params.pop("remove_source_branch"),
        squash=params.pop("squash"),
        auto_merge=params.pop("auto_merge"),
        merge_timeout=params.pop("merge_timeout"),
        poll_interval=params.pop("poll_interval"),
        gitlab_url=params.pop("gitlab_url"),
    )
    return RepoSettings(
        repo_url=params.pop("repo_url"),
        branch=params.pop("branch"),
        path_template=params.pop("path_template") or None,
        mode=params.pop("mode"),
        ca_file=params.pop("ca_file"),
        workdir=params.pop("workdir"),
        max_attempts=params.pop("max_attempts"),
        backoff_seconds=params.pop("backoff"),
        push_timeout_seconds=params.pop("push_timeout"),
        network_timeout_seconds=params.pop("network_timeout"),
        git_timeout_seconds=params.pop("git_timeout"),
        dry_run=params.pop("dry_run"),
        merge_request=mr,
        author=author_from_gitlab(),
        trailers=trailers_from_ci(),
        signing_key=signing_key_from(params.pop("signing_key")),
        transport=params.pop("transport"),
    )


_FOLLOW_UP_OPTIONS = [
    click.option(
        "--sync",
        "sync_after",
        is_flag=True,
        envvar="GITOPS_SYNC",
        help="After the change, tell Argo CD or Flux (see gitops-ci sync).",
    ),
    click.option(
        "--wait",
        "wait_after",
        is_flag=True,
        envvar="GITOPS_WAIT",
        help="Then wait until the cluster runs the revision, synced and healthy (see gitops-ci wait).",
    ),
    target.ARGOCD_WEBHOOK,
    target.ARGOCD_SERVER,
    target.ARGOCD_KUBE,
    target.FLUX_RECEIVER,
    target.FLUX_KUSTOMIZATION,
    target.KUBECONFIG,
    target.KUBE_CONTEXT,
    target.REPO_APP_NAME_TEMPLATE,
    target.APP_NAMESPACE,
    target.PRUNE,
    target.WITH_SOURCE,
    target.TIMEOUT,
    target.INTERVAL,
]


def follow_up_options(func: F) -> F:
    return target.apply(func, *_FOLLOW_UP_OPTIONS)


def follow_up_settings(
    params: dict[str, Any], ca_file: str | None, network_timeout: float
) -> FollowUpSettings | None:
    """FollowUpSettings from the parsed options (removing them from `params`); None without --sync/--wait."""
    values = {name: params.pop(name) for name in _FOLLOW_UP_PARAMS}
    kube = {name: params.pop(name) for name in ("kubeconfig", "kube_context")}
    if not (values["sync_after"] or values["wait_after"]):
        return None  # a plain deploy imports nothing of the follow-ups
    from gitops_ci.change.follow_up import FollowUpSettings
    from gitops_ci.targets.kube import KubeSettings

    return FollowUpSettings(
        sync=values.pop("sync_after"),
        wait=values.pop("wait_after"),
        timeout_seconds=values.pop("timeout"),
        interval_seconds=values.pop("interval"),
        kube=KubeSettings(
            kubeconfig=kube["kubeconfig"],
            context=kube["kube_context"],
            ca_file=ca_file,
            request_timeout=network_timeout,
        ),
        **values,
    )


_FOLLOW_UP_PARAMS = (
    "sync_after", "wait_after", "argocd_webhook", "argocd_server", "argocd_kube", "flux_receiver",
    "flux_kustomizations", "app_name_template", "app_namespace", "prune", "with_source", "timeout",
    "interval",
)  # fmt: skip
