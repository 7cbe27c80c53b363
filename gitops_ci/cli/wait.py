"""`gitops-ci wait`."""

from __future__ import annotations

from typing import Any

import click

from gitops_ci.cli.app import common_options, emit
from gitops_ci.cli.sync import app_options, to_json
from gitops_ci.cli.target_options import ARGOCD_KUBE, TIMEOUT
from gitops_ci.targets.kube import KubeSettings
from gitops_ci.targets.wait import RolloutFailedError, RolloutTimeoutError, WaitResult, WaitSettings, wait
from gitops_ci.targets.wait_status import short


@click.command("wait")
@click.option("--revision", envvar="GITOPS_COMMIT_SHA", help="The commit to wait for (the deploy's).")
@ARGOCD_KUBE
@TIMEOUT
@app_options
@common_options
def wait_command(
    revision: str | None,
    kubeconfig: str | None,
    kube_context: str | None,
    ca_file: str | None,
    timeout: float,
    interval: float,
    network_timeout: float,
    output_format: str,
    **options: Any,
) -> int:
    """Wait until the cluster runs --revision: Argo CD applications Synced and Healthy at it (through the
    Argo CD API or the Application objects), or Flux Kustomizations Ready with it applied. Fails fast on
    Degraded, a failed sync, or the timeout. The Argo CD API token comes from ARGOCD_AUTH_TOKEN."""
    settings = WaitSettings(
        revision=revision or "",
        **options,
        ca_file=ca_file,
        kube=KubeSettings(
            kubeconfig=kubeconfig, context=kube_context, ca_file=ca_file, request_timeout=network_timeout
        ),
        timeout_seconds=timeout,
        interval_seconds=interval,
        request_timeout_seconds=network_timeout,
    )
    try:
        result = wait(settings)
    except (RolloutFailedError, RolloutTimeoutError) as err:
        emit(_render(err.result, output_format))
        raise
    emit(_render(result, output_format))
    return 0


def _render(result: WaitResult, output_format: str) -> str:
    if output_format == "json":
        return to_json(wait_json(result))
    return "".join(f"{t.line()}: {t.state}\n" for t in result.targets)


def wait_json(result: WaitResult) -> dict[str, Any]:
    return {
        "status": result.status,
        "revision": result.revision,
        "elapsed_seconds": round(result.elapsed_seconds, 1),
        "targets": [
            {
                "name": t.name,
                "kind": t.kind,
                "state": t.state,
                "revision": t.revision,
                "short_revision": short(t.revision) if t.revision else None,
                "status": t.status,
                "messages": list(t.messages),
            }
            for t in result.targets
        ],
    }
