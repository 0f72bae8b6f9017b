#!/usr/bin/env bash
# `make chart-lint`: the kube-mode artefacts checked without Docker or a cluster.
#   1. hadolint (pinned, installed by scripts/hadolint.sh) on Dockerfile.harness,
#      images/*/Dockerfile and the daemonless images/daemonless/*.Containerfile
#   2. helm lint --strict charts/scaletest
#   3. helm template charts/scaletest for every profile in profiles/
# The server-side dry run and a real install into a simulated cluster are in
# crates/scaletest-cluster/tests/chart.rs (`make test`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

scripts/hadolint.sh

helm="$(scripts/upstream.sh bin-dir)/helm"
[ -x "$helm" ] || helm=$(command -v helm) || { echo "helm not found: run \`make upstream\`" >&2; exit 1; }
"$helm" lint --strict charts/scaletest
for profile in profiles/*.yaml; do
  "$helm" template scaletest charts/scaletest --namespace scaletest \
    --set-file "profile=$profile" --set runId=lint >/dev/null
  echo "helm template: $profile ok"
done
