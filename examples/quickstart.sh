#!/usr/bin/env bash
# Quick start: install gitops-ci into .venv and run the main job on the bundled example manifest repo.
# The "GitLab" here is a local bare repository made from examples/manifests, so no server is needed.
# Needs python3 (>= 3.11) and git; writes only .venv/ and a temporary directory.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
export PATH="$PWD/.venv/bin:$PATH"

demo="$(mktemp -d)"
trap 'rm -rf "$demo"' EXIT
git init --quiet --bare --initial-branch=main "$demo/manifests.git"
git -C "$demo/manifests.git" config uploadpack.allowFilter true
git clone --quiet "$demo/manifests.git" "$demo/seed" 2>/dev/null
cp -R examples/manifests/. "$demo/seed/"
git -C "$demo/seed" add --all
git -C "$demo/seed" -c user.name=demo -c user.email=demo@example.invalid commit --quiet -m "example manifests"
git -C "$demo/seed" push --quiet origin main

step() { printf '\n\033[1m$ %s\033[0m\n' "$*" >&2; "$@"; }
step gitops-ci deploy --repo-url "file://$demo/manifests.git" --app frontend --env staging --env prod \
  --image registry.example.com/shop/frontend:1.5.0
step git -C "$demo/manifests.git" show --format='%n%s%n' main
step gitops-ci deploy --repo-url "file://$demo/manifests.git" --app frontend --env staging --env prod \
  --image registry.example.com/shop/frontend:1.5.0
