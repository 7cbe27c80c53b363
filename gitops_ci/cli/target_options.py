"""Options shared by several commands, one definition each: where Argo CD or Flux is (sync, wait and
deploy), retries, dry runs, and how validate and review build."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from gitops_ci.errors import ConfigurationError
from gitops_ci.naming import DEFAULT_APP_NAME_TEMPLATE
from gitops_ci.targets.durations import parse_duration

F = TypeVar("F", bound=Callable[..., Any])


class Seconds(click.FloatRange):
    """A finite number of seconds, 0 to a day: `nan` passes a range check and `inf` overflows the clock."""

    name = "seconds"

    def __init__(self) -> None:
        super().__init__(min=0, max=86_400)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        seconds = super().convert(value, param, ctx)
        if seconds != seconds:
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return seconds


def duration(ctx: click.Context, param: click.Parameter, value: str | float) -> float:
    """`10m`, `90s`, `1h`, `1h30m` or plain seconds, as a click callback."""
    try:
        return parse_duration(str(value))
    except ConfigurationError as err:
        raise click.BadParameter(str(err)) from None


def apply(func: F, *options: Callable[[F], F]) -> F:
    for option in reversed(options):
        func = option(func)
    return func


def max_attempts_option(default: int, help_text: str) -> Callable[[F], F]:
    return click.option(
        "--max-attempts",
        envvar="GITOPS_MAX_ATTEMPTS",
        type=click.IntRange(min=1),
        default=default,
        show_default=True,
        help=help_text,
    )


BACKOFF = click.option(
    "--backoff",
    envvar="GITOPS_BACKOFF_SECONDS",
    type=Seconds(),
    default=0.5,
    show_default=True,
    help="Base of the jittered exponential backoff, in seconds.",
)


def dry_run_option(help_text: str) -> Callable[[F], F]:
    return click.option("--dry-run", is_flag=True, envvar="GITOPS_DRY_RUN", help=help_text)


NETWORK_TIMEOUT = click.option(
    "--network-timeout",
    envvar="GITOPS_NETWORK_TIMEOUT",
    callback=duration,
    metavar="DURATION",
    default="30s",
    show_default=True,
    help="Give up on a request (or a git transfer below 1 KiB/s) after this long; it counts as a failed try.",
)

ARGOCD_WEBHOOK = click.option(
    "--argocd-webhook", envvar="GITOPS_ARGOCD_WEBHOOK", help="Argo CD .../api/webhook URL."
)
ARGOCD_SERVER = click.option(
    "--argocd-server",
    envvar=["GITOPS_ARGOCD_SERVER", "ARGOCD_SERVER"],
    help="Argo CD API URL; the token comes from ARGOCD_AUTH_TOKEN.",
)
ARGOCD_KUBE = click.option(
    "--argocd-kube",
    is_flag=True,
    envvar="GITOPS_ARGOCD_KUBE",
    help="Read Argo CD Application objects through the kubernetes API instead of --argocd-server.",
)
FLUX_RECEIVER = click.option(
    "--flux-receiver", envvar="GITOPS_FLUX_RECEIVER", help="Flux Receiver URL (.../hook/<digest>)."
)
FLUX_KUSTOMIZATION = click.option(
    "--flux-kustomization",
    "flux_kustomizations",
    envvar="GITOPS_FLUX_KUSTOMIZATION",
    multiple=True,
    help="Flux Kustomization NAMESPACE/NAME, through the kubernetes API (repeatable).",
)
KUBECONFIG = click.option(
    "--kubeconfig", envvar="KUBECONFIG", help="Kubeconfig file (default: ~/.kube/config, in-cluster)."
)
KUBE_CONTEXT = click.option(
    "--kube-context",
    envvar="GITOPS_KUBE_CONTEXT",
    help="Kubeconfig context, e.g. the GitLab agent's path/to/agent-project:agent-name.",
)
APP_NAME_TEMPLATE = click.option(
    "--app-name-template",
    envvar="GITOPS_ARGOCD_APP_NAME_TEMPLATE",
    default=DEFAULT_APP_NAME_TEMPLATE,
    show_default=True,
    help="Argo CD application name of {app} in {env}.",
)
# For deploy's follow-ups: the manifest repo's gitops-ci.yaml (written by init) may name the template.
REPO_APP_NAME_TEMPLATE = click.option(
    "--app-name-template",
    envvar="GITOPS_ARGOCD_APP_NAME_TEMPLATE",
    help=f"Argo CD application name of {{app}} in {{env}} (default: the repo's gitops-ci.yaml, else "
    f"{DEFAULT_APP_NAME_TEMPLATE}).",
)
APP_NAMESPACE = click.option(
    "--app-namespace",
    envvar="GITOPS_ARGOCD_APP_NAMESPACE",
    help="Namespace of the Argo CD applications (apps in any namespace; default: Argo CD's own).",
)
PRUNE = click.option("--prune", is_flag=True, help="Argo CD API sync: delete resources no longer in git.")
WITH_SOURCE = click.option(
    "--with-source", is_flag=True, help="Flux: reconcile the Kustomization's GitRepository first."
)
TIMEOUT = click.option(
    "--timeout",
    envvar="GITOPS_WAIT_TIMEOUT",
    callback=duration,
    metavar="DURATION",
    default="10m",
    show_default=True,
    help="Give up waiting after this long (10m, 90s, 1h or seconds).",
)
INTERVAL = click.option(
    "--interval",
    envvar="GITOPS_WAIT_INTERVAL",
    callback=duration,
    metavar="DURATION",
    default="5s",
    show_default=True,
    help="Time between status polls.",
)


def build_options(func: F) -> F:
    """--kustomize, --build-option, --build-timeout and --jobs: how validate and review run kustomize."""
    return apply(
        func,
        click.option(
            "--kustomize",
            envvar="GITOPS_KUSTOMIZE",
            help="kustomize or kubectl executable (default: kustomize, else kubectl, on PATH).",
        ),
        click.option(
            "--build-option",
            "build_options",
            multiple=True,
            envvar="GITOPS_BUILD_OPTIONS",
            help="Extra flag for every build (repeatable): --reorder, --enable-managedby-label or "
            "--stack-trace.",
        ),
        click.option(
            "--build-timeout",
            envvar="GITOPS_BUILD_TIMEOUT",
            callback=duration,
            metavar="DURATION",
            default="60s",
            show_default=True,
            help="Kill an overlay's build after this long (it then fails).",
        ),
        click.option(
            "--jobs", type=click.IntRange(min=1), envvar="GITOPS_JOBS", help="Builds at a time (default 2-4)."
        ),
    )
