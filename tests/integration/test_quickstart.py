"""The README's first command works as written (run where tests/run made .venv)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


def run_example(script: str) -> subprocess.CompletedProcess[str]:
    """examples/<script> as a newcomer runs it: no GITOPS_ or CI_ variables of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITOPS_", "CI_"))}
    proc = subprocess.run(["bash", str(ROOT / "examples" / script)], capture_output=True, text=True, env=env,
                          timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc


@pytest.mark.skipif(
    not (ROOT / ".venv" / "bin" / "python").exists(), reason="run through tests/run (needs .venv)"
)
def test_quickstart_deploys_the_bundled_example() -> None:
    proc = run_example("quickstart.sh")
    image = "registry.example.com/shop/frontend"
    assert f"staging: frontend: {image}:1.3.2 → {image}:1.5.0" in proc.stdout
    assert (
        '+    newTag: "1.5.0" # renovate: datasource=docker depName=registry.example.com/shop/frontend'
        in proc.stdout
    )
    assert proc.stdout.rstrip().endswith("nothing to commit")


@pytest.mark.skipif(
    not (ROOT / ".venv" / "bin" / "python").exists(), reason="run through tests/run (needs .venv)"
)
def test_the_onboarding_example_starts_a_repo_deploys_promotes_and_validates() -> None:
    proc = run_example("onboarding.sh")
    assert "kubectl apply -n argocd -f clusters/prod-cluster/root.yaml" in proc.stdout
    assert "clusters/prod-cluster/apps/prod-web.yaml" in proc.stdout
    image = "registry.example.com/shop/web"
    assert f"prod: web: {image}:1.0.0 → {image}:1.1.0" in proc.stdout  # promoted from staging
    assert proc.stdout.rstrip().endswith("valid")
