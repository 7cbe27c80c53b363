#!/usr/bin/env bash
# Quick start: install gitops-ci into .venv and run the main job on the bundled example manifest repo.
# Needs only python3 (≥ 3.11) and git; touches nothing outside this checkout.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
export PATH="$PWD/.venv/bin:$PATH"

overlay=examples/manifests/kustomize/frontend/overlays/prod
echo "# gitops-ci set-image --dry-run --overlay $overlay 'frontend=*:1.4.0'" >&2
gitops-ci set-image --dry-run --overlay "$overlay" 'frontend=*:1.4.0'
