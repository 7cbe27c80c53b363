"""`gitops-ci sync`, and the options it shares with `gitops-ci wait`."""

from __future__ import annotations

import json
from typing import Any

import click

from gitops_ci.cli.app import common_options, emit
from gitops_ci.cli.target_options import (
    APP_NAME_TEMPLATE,
    APP_NAMESPACE,
    ARGOCD_SERVER,
    ARGOCD_WEBHOOK,
    BACKOFF,
    FLUX_KUSTOMIZATION,
    FLUX_RECEIVER,
    INTERVAL,
    KUBE_CONTEXT,
    KUBECONFIG,
    NETWORK_TIMEOUT,
    PRUNE,
    WITH_SOURCE,
    apply,
    dry_run_option,
    duration,
    max_attempts_option,
)
from gitops_ci.targets.kube import KubeSettings
from gitops_ci.targets.sync import SyncResult, SyncSettings, sync


def to_json(data: Any) -> str:
    """Like `output.to_json`, without importing the kustomize editor (ruamel.yaml) for these commands."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def app_options(func: click.decorators.FC) -> click.decorators.FC:
    """Which Argo CD applications or Flux Kustomizations, and how to reach them."""
    return apply(
        func,
        click.option("--app", envvar="GITOPS_APP_NAME", help="App name ({app} in the templates)."),
        click.option(
            "--env",
            "environments",
            envvar=["GITOPS_ENVIRONMENT", "GITOPS_ENVIRONMENTS"],
            multiple=True,
            help="Environment (repeatable; GITOPS_ENVIRONMENTS may list several).",
        ),
        APP_NAME_TEMPLATE,
        APP_NAMESPACE,
        ARGOCD_SERVER,
        FLUX_KUSTOMIZATION,
        KUBECONFIG,
        KUBE_CONTEXT,
        click.option(
            "--ca-file",
            envvar=["GITOPS_CA_FILE", "CI_SERVER_TLS_CA_FILE"],
            help="CA bundle for HTTPS (for kubernetes only when the kubeconfig names none).",
        ),
        INTERVAL,
        NETWORK_TIMEOUT,
    )


@click.command("sync")
@click.option("--repo-url", envvar="GITOPS_REPO_URL", help="HTTPS URL of the manifest repo (webhooks).")
@click.option("--branch", envvar="GITOPS_BRANCH", help="Branch the commit was pushed to (webhooks).")
@click.option(
    "--default-branch", envvar="GITOPS_DEFAULT_BRANCH", help="The repo's default branch [--branch]."
)
@click.option("--revision", envvar="GITOPS_COMMIT_SHA", help="The commit the deploy produced.")
@click.option("--before", envvar="GITOPS_BASE_COMMIT_SHA", help="The commit it replaced (Push Hook before).")
@click.option(
    "--changed-file",
    "changed_files",
    envvar="GITOPS_CHANGED_FILES",
    multiple=True,
    help="File the commit changed (repeatable; default: each --env overlay's kustomization.yaml).",
)
@click.option("--path-template", envvar="GITOPS_PATH_TEMPLATE", help="Overlay directory of {app} in {env}.")
@ARGOCD_WEBHOOK
@FLUX_RECEIVER
@PRUNE
@WITH_SOURCE
@click.option(
    "--source-timeout",
    callback=duration,
    metavar="DURATION",
    default="2m",
    show_default=True,
    help="Flux: wait for the source.",
)
@app_options
@max_attempts_option(5, "Tries per request on 5xx, 503 'Queue is full' and dropped connections.")
@BACKOFF
@dry_run_option("Print what would be sent; send nothing.")
@common_options
def sync_command(
    kubeconfig: str | None,
    kube_context: str | None,
    ca_file: str | None,
    interval: float,
    source_timeout: float,
    network_timeout: float,
    backoff: float,
    output_format: str,
    **options: Any,
) -> int:
    """Tell Argo CD or Flux about the new commit now: an Argo CD webhook, an Argo CD API sync, a Flux
    receiver, or a Flux reconcile request. Secrets: GITOPS_WEBHOOK_SECRET, ARGOCD_AUTH_TOKEN."""
    result = sync(
        SyncSettings(
            **options,
            ca_file=ca_file,
            kube=KubeSettings(
                kubeconfig=kubeconfig, context=kube_context, ca_file=ca_file, request_timeout=network_timeout
            ),
            interval_seconds=interval,
            source_timeout_seconds=source_timeout,
            request_timeout_seconds=network_timeout,
            backoff_seconds=backoff,
        )
    )
    emit(to_json(sync_json(result)) if output_format == "json" else sync_text(result))
    return 0


def sync_json(result: SyncResult) -> dict[str, Any]:
    return {
        "dry_run": result.dry_run,
        "revision": result.revision,
        "actions": [
            {"target": a.target, "subject": a.subject, "outcome": a.outcome, "request": a.request}
            for a in result.actions
        ],
    }


def sync_text(result: SyncResult) -> str:
    lines = []
    for action in result.actions:
        request = action.request
        lines.append(f"{action.target}: {action.subject}: {action.outcome}\n")
        if result.dry_run:
            lines.append(f"  {request['method']} {request['url']}\n")
            lines.extend(f"  {name}: {value}\n" for name, value in request["headers"].items())
            body = to_json(request["body"]) if request["body"] is not None else ""
            lines.extend(f"  {line}\n" for line in body.splitlines())
    return "".join(lines)
