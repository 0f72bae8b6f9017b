#!/usr/bin/env bash
# `make kube-e2e`: the kube target end to end on a real node of this machine, no
# Docker engine: builds the images daemonlessly (scripts/images.sh), brings up the
# single-node Kubernetes of scripts/realnode.sh with them imported, runs
#   scaletest-runner run --profile ${PROFILE:-profiles/smoke.yaml} --target kube
# against it with every image named, checks that the run left no namespace behind,
# and tears the node down whatever happened.
# SCALETEST_RUNNER names the runner binary (default: target/debug/scaletest-runner,
# built here); OUTPUT the run's folder; EXTRA_IMAGES more of scripts/images.sh's images
# to build and import (e.g. `EXTRA_IMAGES=karpenter PROFILE=profiles/karpenter.yaml`,
# whose profile names that image, which is then kept); SUT_IMAGE the image passed as
# `--image sut=` (default scaletest-sut:dev, none when the profile names its own); RUN_ARGS
# more runner flags (e.g. `--set ...`); POD_USAGE=1 (with OUTPUT) samples the CPU and
# memory of the run's Pods from the kubelet (scripts/kube-pod-usage.py) and writes
# OUTPUT/pod-usage.json and OUTPUT/pod-usage.md over the loaded window. crates/runner/tests/kube_realnode.rs runs
# this in `make test`.
# Exit code: the runner's (0 passed, 1 failed, 2 refused), 3 when the run left a
# namespace, or the step's that failed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=../upstream/versions.env
source upstream/versions.env
profile=${PROFILE:-profiles/smoke.yaml}
images=target/images
runner=${SCALETEST_RUNNER:-}

step() { printf '[kube-e2e] %s (%s)\n' "$1" "$(date -u +%H:%M:%S)" >&2; }

step "images"
extra=${EXTRA_IMAGES:-}
# A profile naming its own controller's image keeps it: `--image sut=` would replace it.
own_image=$(awk '/^[^ #]/ { in_sut = ($0 ~ /^sut:/) } in_sut && /^  image:/ { print "yes"; exit }' "$profile")
default_sut=scaletest-sut:dev
[ -z "$own_image" ] || default_sut=""
sut_image=${SUT_IMAGE-$default_sut}
# shellcheck disable=SC2086 # a list of image names
SCALETEST_IMAGE_BUILDER=daemonless scripts/images.sh build harness sut prometheus $extra
if [ -z "$runner" ]; then
  step "workspace (debug)"
  cargo build --workspace --bins
  runner=target/debug/scaletest-runner
fi

trap 'step "down"; scripts/realnode.sh down' EXIT
step "real node up"
archives=("$images"/scaletest-harness.oci.tar "$images"/scaletest-sut.oci.tar "$images"/scaletest-prometheus.oci.tar)
for name in $extra; do archives+=("$images/scaletest-$name.oci.tar"); done
kubeconfig=$(scripts/realnode.sh up "${archives[@]}")
export KUBECONFIG=$kubeconfig
usage=""
if [ "${POD_USAGE:-}" = 1 ] && [ -n "${OUTPUT:-}" ]; then
  usage=$(mktemp "${TMPDIR:-/tmp}/scaletest-pod-usage.XXXXXX")
  scripts/kube-pod-usage.py sample --out "$usage" &
  usage_pid=$!
  trap 'kill "$usage_pid" 2>/dev/null || true; rm -f "$usage"; step "down"; scripts/realnode.sh down' EXIT
fi
step "run $profile --target kube"
rc=0
"$runner" run --profile "$profile" --target kube --context scaletest-realnode \
  --image harness=scaletest-harness:dev ${sut_image:+--image "sut=$sut_image"} \
  --image "prometheus=scaletest-prometheus:$PROMETHEUS_VERSION" ${OUTPUT:+--output "$OUTPUT"} \
  ${RUN_ARGS:-} || rc=$?
step "runner exit code $rc"
if [ -n "$usage" ]; then
  kill "$usage_pid" 2>/dev/null || true
  wait "$usage_pid" || true
  scripts/kube-pod-usage.py summarize "$usage" "$OUTPUT" > "$OUTPUT/pod-usage.md" \
    || step "pod usage: no summary (see above)"
fi
# The runner deletes the namespace its install created: only the cluster's own remain.
left=$("$(scripts/upstream.sh bin-dir)/kubectl" get namespaces -o name \
  | grep -v -x -E 'namespace/(default|kube-system|kube-public|kube-node-lease)' || true)
if [ -n "$left" ]; then
  step "the run left $(echo "$left" | tr '\n' ' ')"
  [ $rc -ne 0 ] || rc=3
fi
exit $rc
