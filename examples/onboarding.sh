#!/usr/bin/env bash
# Start a manifest repo: init, new-app, deploy and promote on an empty local bare repository (standing in for
# GitLab, as in quickstart.sh), then validate the result. Run examples/quickstart.sh first (it makes .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"

demo="$(mktemp -d)"
trap 'rm -rf "$demo"' EXIT
git init --quiet --bare --initial-branch=main "$demo/manifests.git"
git -C "$demo/manifests.git" config uploadpack.allowFilter true
git clone --quiet "$demo/manifests.git" "$demo/seed" 2>/dev/null
echo "# manifests" >"$demo/seed/README.md"
git -C "$demo/seed" add README.md
git -C "$demo/seed" -c user.name=demo -c user.email=demo@example.invalid commit --quiet -m "an empty repo"
git -C "$demo/seed" push --quiet origin main
repo="file://$demo/manifests.git"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*" >&2; "$@"; }
step gitops-ci init --repo-url "$repo" \
  --cluster dev-cluster=https://dev.k8s.example.com --cluster prod-cluster=https://prod.k8s.example.com \
  --env dev=dev-cluster --env staging=dev-cluster --env prod=prod-cluster --agent ci --ci-access-group platform
step gitops-ci new-app --repo-url "$repo" --app web --env dev --env staging --env prod \
  --image registry.example.com/shop/web:1.0.0 --port 8080 --replicas 2
step gitops-ci deploy --repo-url "$repo" --app web --env staging --image registry.example.com/shop/web:1.1.0
step gitops-ci promote --repo-url "$repo" --app web --to prod   # from staging: the order init recorded
git clone --quiet "$demo/manifests.git" "$demo/checkout"
step git -C "$demo/checkout" log --format=%s
step gitops-ci validate "$demo/checkout"
