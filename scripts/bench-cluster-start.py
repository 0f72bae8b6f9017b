#!/usr/bin/env python3
"""Cold start time to Ready and idle RSS per component of one simulated cluster.

Starts scaletest-cluster N times with a fresh data dir each (cold: new PKI,
empty sqlite), records startupSeconds from its endpoints file, lets the
cluster idle, then reads VmRSS of every child from /proc. Writes
results/cluster-start.json and results/cluster-start.md. Rerun: make bench.
"""
import json, os, platform, signal, statistics, subprocess, sys, tempfile, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(os.environ.get("SCALETEST_CLUSTER_BIN", ROOT / "target/release/scaletest-cluster"))
RUNS = int(os.environ.get("RUNS", "3"))
IDLE = float(os.environ.get("IDLE_SECONDS", "30"))
COMPONENTS = ["kine", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "scaletest-node-creator"]


def rss_kib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def children_of(data_dir):
    found = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or str(data_dir).encode() not in b" ".join(argv):
            continue
        name = os.path.basename(argv[0].decode())
        if name in COMPONENTS:
            found[name] = int(d.name)
    return found


def one_run(i):
    with tempfile.TemporaryDirectory(prefix="scaletest-bench-") as tmp:
        data = Path(tmp) / "c"
        t0 = time.monotonic()
        proc = subprocess.Popen([str(BIN), "--name", f"bench-{i}", "--data-dir", str(data)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            ep = data / "endpoints.json"
            while not ep.exists():
                if proc.poll() is not None or time.monotonic() - t0 > 300:
                    sys.exit(f"cluster did not start; logs in {data}/logs")
                time.sleep(0.05)
            wall = time.monotonic() - t0
            startup = json.loads(ep.read_text())["startupSeconds"]
            time.sleep(IDLE)
            supervisor = rss_kib(proc.pid)
            rss = {name: rss_kib(pid) for name, pid in children_of(data).items()}
            rss["scaletest-cluster"] = supervisor
            return {"startupSeconds": startup, "wallSeconds": wall, "idleRssKiB": rss}
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)


def main():
    if not BIN.exists():
        sys.exit(f"{BIN} missing: run `cargo build --release` (make bench does)")
    runs = [one_run(i) for i in range(RUNS)]
    names = sorted({n for r in runs for n in r["idleRssKiB"]})
    median_rss = {n: statistics.median(r["idleRssKiB"].get(n, 0) for r in runs) for n in names}
    result = {
        "benchmark": "cluster-start",
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
        "runs": runs,
        "startupSecondsMedian": statistics.median(r["startupSeconds"] for r in runs),
        "idleRssMiBMedian": {n: round(v / 1024, 1) for n, v in median_rss.items()},
        "idleRssMiBTotal": round(sum(median_rss.values()) / 1024, 1),
        "idleSeconds": IDLE,
    }
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    (out / "cluster-start.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# One simulated cluster: cold start and idle footprint",
        "",
        f"Measured {result['date']} on {os.cpu_count()} CPUs by `make bench` "
        f"({RUNS} cold starts, RSS after {IDLE:.0f} s idle; medians).",
        "",
        f"Cold start to Ready (kine → apiserver → CRDs → controller-manager → scheduler → kwok → node-creator): "
        f"**{result['startupSecondsMedian']:.2f} s**",
        "",
        "| component | idle RSS (MiB) |",
        "|---|---:|",
    ]
    lines += [f"| {n} | {v} |" for n, v in result["idleRssMiBMedian"].items()]
    lines += [f"| **total** | **{result['idleRssMiBTotal']}** |", ""]
    (out / "cluster-start.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
