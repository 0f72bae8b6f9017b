#!/usr/bin/env python3
"""pod-shim bind throughput and node-creator Node creation rate, against a
real simulated cluster (kube-apiserver on kine). Rates are read from the
components' own counters, sampled every 100 ms. Writes results/harness-bench.json
and results/harness-bench.md. Rerun: make bench. Sizes: NODES, PODS env vars.
"""
import json, os, signal, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("SCALETEST_TARGET_DIR", ROOT / "target/release"))
BIN_DIR = subprocess.run([str(ROOT / "scripts/upstream.sh"), "bin-dir"], capture_output=True, text=True).stdout.strip()
KUBECTL = Path(BIN_DIR) / "kubectl"
NODES = int(os.environ.get("NODES", "100"))
PODS = int(os.environ.get("PODS", "3000"))
DENSITY = 100


def metric(addr, name):
    text = urllib.request.urlopen(f"http://{addr}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def kubectl(kubeconfig, *args, stdin=None):
    r = subprocess.run([str(KUBECTL), "--kubeconfig", str(kubeconfig), *args], input=stdin, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"kubectl {' '.join(args)}: {r.stderr}")
    return r.stdout


def upcoming_nodes(n, prefix):
    items = [{
        "apiVersion": "scaletest.dev/v1alpha1", "kind": "UpcomingNode",
        "metadata": {"name": f"{prefix}-{i:04d}"},
        "spec": {"allocatable": {"cpu": "10", "memory": "12800Mi", "pods": str(DENSITY)}},
    } for i in range(n)]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def pods(n):
    items = [{
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"bench-{i:05d}", "namespace": "default"},
        "spec": {"containers": [{"name": "a", "image": "registry.invalid/x:1",
                                 "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]},
    } for i in range(n)]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def create_in_background(kubeconfig, manifest):
    p = subprocess.Popen([str(KUBECTL), "--kubeconfig", str(kubeconfig), "create", "-f", "-"], stdin=subprocess.PIPE,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    p.stdin.write(manifest)
    p.stdin.close()
    return p


def rate_of(addr, counter, want, timeout=600):
    """Samples `counter` until it reaches `want`; returns (count, seconds from first increase to the last)."""
    first = last = None
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        v = metric(addr, counter)
        now = time.monotonic()
        if v > 0 and first is None:
            first = now
        if v >= want:
            last = now
            return v, last - (first or start)
        time.sleep(0.1)
    sys.exit(f"{counter} stuck at {metric(addr, counter)} of {want}")


class Cluster:
    def __init__(self, *args):
        self.tmp = tempfile.TemporaryDirectory(prefix="scaletest-bench-")
        self.data = Path(self.tmp.name) / "c"
        self.proc = subprocess.Popen([str(TARGET / "scaletest-cluster"), "--data-dir", str(self.data), *args],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ep = self.data / "endpoints.json"
        deadline = time.monotonic() + 300
        while not ep.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"cluster did not start; logs in {self.data}/logs")
            time.sleep(0.1)
        self.endpoints = json.loads(ep.read_text())
        self.kubeconfig = self.endpoints["kubeconfig"]

    def addr(self, component):
        return next(c for c in self.endpoints["components"] if c["name"] == component)["metrics"]["address"]

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=120)
        self.tmp.cleanup()


def main():
    if not (TARGET / "scaletest-cluster").exists():
        sys.exit(f"{TARGET}/scaletest-cluster missing: run `cargo build --release --workspace --bins` (make bench does)")
    result = {"benchmark": "harness", "date": time.strftime("%Y-%m-%d"), "cpus": os.cpu_count(), "nodes": NODES, "pods": PODS}

    c = Cluster()  # kube-scheduler mode: node-creator alone
    # Created in the background: the rate is sampled while they arrive.
    creating = create_in_background(c.kubeconfig, upcoming_nodes(NODES, "nc"))
    n, secs = rate_of(c.addr("node-creator"), "scaletest_node_creator_nodes_created_total", NODES)
    creating.wait()
    result["nodeCreator"] = {"nodes": n, "seconds": round(secs, 2), "nodesPerSecond": round(n / max(secs, 1e-3), 1)}
    c.stop()

    c = Cluster("--scheduler", "pod-shim")
    shim = c.addr("pod-shim")
    # A backlog first: every Pod marked Unschedulable, no Node yet. Then the
    # Nodes arrive and pod-shim binds the whole backlog as fast as it can.
    for _ in range(300):
        if subprocess.run([str(KUBECTL), "--kubeconfig", c.kubeconfig, "get", "sa", "default"], capture_output=True).returncode == 0:
            break
        time.sleep(0.2)
    t0 = time.monotonic()
    kubectl(c.kubeconfig, "create", "-f", "-", stdin=pods(PODS))
    created_secs = time.monotonic() - t0
    rate_of(shim, "scaletest_pod_shim_unschedulable_marks_total", PODS)
    creating = create_in_background(c.kubeconfig, upcoming_nodes(-(-PODS // DENSITY), "ps"))
    b, secs = rate_of(shim, "scaletest_pod_shim_binds_total", PODS)
    creating.wait()
    lat_sum = metric(shim, "scaletest_pod_shim_bind_latency_seconds_sum")
    result["podShim"] = {
        "binds": b, "seconds": round(secs, 2), "bindsPerSecond": round(b / max(secs, 1e-3), 1),
        "workers": metric(shim, "scaletest_pod_shim_workers"),
        "meanBindLatencySeconds": round(lat_sum / max(b, 1), 3),
        "kubectlCreateSeconds": round(created_secs, 2),
    }
    c.stop()

    out = ROOT / "results"
    (out / "harness-bench.json").write_text(json.dumps(result, indent=2) + "\n")
    nc, ps = result["nodeCreator"], result["podShim"]
    md = "\n".join([
        "# Harness micro-benchmarks: node-creator and pod-shim against a real apiserver",
        "",
        f"Measured {result['date']} on {result['cpus']} CPUs by `make bench` (release build; one simulated cluster each).",
        "",
        "| what | count | seconds | rate |",
        "|---|---:|---:|---:|",
        f"| node-creator: UpcomingNode → fake Node | {nc['nodes']:.0f} | {nc['seconds']} | {nc['nodesPerSecond']} Nodes/s |",
        f"| pod-shim: bind through `/binding` ({ps['workers']:.0f} workers) | {ps['binds']:.0f} | {ps['seconds']} | {ps['bindsPerSecond']} binds/s |",
        "",
        f"pod-shim binds a backlog: {PODS} Pods created first (kubectl took {ps['kubectlCreateSeconds']} s, i.e. "
        f"{PODS / max(ps['kubectlCreateSeconds'], 1e-3):.0f} Pods/s) and all marked Unschedulable, then the "
        f"UpcomingNodes created; the rate runs from the first bind to the last. node-creator's rate runs from its "
        f"first Node to its last while kubectl creates the UpcomingNodes, so it cannot exceed kubectl's create rate.",
        "",
    ])
    (out / "harness-bench.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
