#!/usr/bin/env bash
# Brings one simulated cluster up with scaletest-cluster, puts a kwok Node of
# density 100 and a 120-replica Deployment on it, shows `kubectl get
# nodes,pods` (100 Running, 20 Pending: the Node is full), and tears it down.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${SCALETEST_CLUSTER_BIN:-$root/target/debug/scaletest-cluster}
kubectl="$("$root/scripts/upstream.sh" bin-dir)/kubectl"
[ -x "$bin" ] || { echo "error: $bin missing: run \`cargo build\` first" >&2; exit 1; }
[ -x "$kubectl" ] || { echo "error: $kubectl missing: run \`make upstream\` first" >&2; exit 1; }

data=$(mktemp -d -t scaletest-demo-XXXXXX)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    echo "--- tearing down"
    kill -TERM "$pid"; wait "$pid" || true
  fi
  rm -rf "$data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$bin" --name demo --data-dir "$data/cluster" >"$data/supervisor.log" 2>&1 &
pid=$!
echo "--- starting a simulated cluster (logs: $data/cluster/logs)"
for _ in $(seq 1 360); do
  [ -f "$data/cluster/endpoints.json" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$data/supervisor.log" >&2; exit 1; }
  sleep 0.5
done
[ -f "$data/cluster/endpoints.json" ] || { echo "error: cluster not ready in 180s" >&2; exit 1; }
export KUBECONFIG="$data/cluster/pki/admin.kubeconfig"
grep -o '"startupSeconds": [0-9.]*' "$data/cluster/endpoints.json"

"$kubectl" apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-0
  annotations: {kwok.x-k8s.io/node: fake}
  labels: {type: kwok}
status:
  allocatable: {cpu: "10", memory: 12800Mi, pods: "100"}
  capacity: {cpu: "10", memory: 12800Mi, pods: "100"}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: demo, namespace: default}
spec:
  replicas: 120
  selector: {matchLabels: {app: demo}}
  template:
    metadata: {labels: {app: demo}}
    spec:
      containers:
      - name: app
        image: registry.invalid/fake:1
        resources: {requests: {cpu: 100m, memory: 128Mi}}
YAML
echo "--- waiting for kube-scheduler to fill the Node (100 Pods) and kwok to run them"
for _ in $(seq 1 120); do
  running=$("$kubectl" get pods --field-selector=status.phase=Running --no-headers 2>/dev/null | wc -l)
  total=$("$kubectl" get pods --no-headers 2>/dev/null | wc -l)
  [ "$running" -ge 100 ] && [ "$total" -ge 120 ] && break
  sleep 1
done
echo "\$ kubectl get nodes,pods -o wide"
"$kubectl" get nodes,pods -o wide >"$data/get.txt"
head -n 12 "$data/get.txt"
echo "... ($(wc -l <"$data/get.txt") lines)"
echo "Running: $("$kubectl" get pods --field-selector=status.phase=Running --no-headers | wc -l)" \
     " Pending: $("$kubectl" get pods --field-selector=status.phase=Pending --no-headers | wc -l)"
