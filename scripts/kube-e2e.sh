#!/usr/bin/env bash
# `make kube-e2e`: the kube target end to end on a real node of this machine, no
# Docker engine: builds the images daemonlessly (scripts/images.sh), brings up the
# single-node Kubernetes of scripts/realnode.sh with them imported, runs
#   scaletest-runner run --profile ${PROFILE:-profiles/smoke.yaml} --target kube
# against it with every image named, and tears the node down whatever happened.
# Exit code: the runner's (0 passed, 1 failed, 2 refused), or the step's that failed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=../upstream/versions.env
source upstream/versions.env
profile=${PROFILE:-profiles/smoke.yaml}
images=target/images

step() { printf '[kube-e2e] %s (%s)\n' "$1" "$(date -u +%H:%M:%S)" >&2; }

step "images"
SCALETEST_IMAGE_BUILDER=daemonless scripts/images.sh build
step "workspace (debug)"
cargo build --workspace --bins

trap 'step "down"; scripts/realnode.sh down' EXIT
step "real node up"
kubeconfig=$(scripts/realnode.sh up "$images"/scaletest-harness.oci.tar "$images"/scaletest-sut.oci.tar \
  "$images"/scaletest-prometheus.oci.tar)
export KUBECONFIG=$kubeconfig
step "run $profile --target kube"
rc=0
target/debug/scaletest-runner run --profile "$profile" --target kube --context scaletest-realnode \
  --image harness=scaletest-harness:dev --image sut=scaletest-sut:dev \
  --image "prometheus=scaletest-prometheus:$PROMETHEUS_VERSION" ${OUTPUT:+--output "$OUTPUT"} || rc=$?
step "runner exit code $rc"
exit $rc
