#!/usr/bin/env python3
"""CPU and memory the Pods of a kube run used, from each Node's kubelet summary API.

  scripts/kube-pod-usage.py sample --out FILE [--namespace scaletest] [--interval 5] [--max-seconds 3600]
      Appends one JSON line per sample (time, every container of the namespace's Pods:
      cumulative CPU ns, working set, RSS) read through the apiserver's node proxy
      (`kubectl get --raw /api/v1/nodes/<node>/proxy/stats/summary`, the same on kind or a
      real node). Runs until SIGINT/SIGTERM, until the namespace's Pods came and went, or
      --max-seconds.
  scripts/kube-pod-usage.py summarize FILE RUN_DIR
      Per Pod and container over the run's loaded window (the load gate opened until the
      soak ended, from RUN_DIR/summary.json's startedAt and phases): mean vCPU from the
      cumulative CPU counter, mean and peak working set and RSS. Writes RUN_DIR/pod-usage.json
      and prints a Markdown table.
"""

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 1024 * 1024


def kubectl():
    bin_dir = subprocess.run([os.path.join(ROOT, "scripts/upstream.sh"), "bin-dir"], check=True,
                             capture_output=True, text=True).stdout.strip()
    return os.path.join(bin_dir, "kubectl")


def get_raw(kc, path):
    out = subprocess.run([kc, "get", "--raw", path], capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"kubectl get --raw {path}: {out.stderr.strip()}")
    return json.loads(out.stdout)


def sample_once(kc, namespace):
    pods = {}
    for node in get_raw(kc, "/api/v1/nodes")["items"]:
        name = node["metadata"]["name"]
        summary = get_raw(kc, f"/api/v1/nodes/{name}/proxy/stats/summary")
        for pod in summary.get("pods", []):
            ref = pod["podRef"]
            if ref["namespace"] != namespace:
                continue
            containers = {}
            for c in pod.get("containers", []):
                cpu, mem = c.get("cpu", {}), c.get("memory", {})
                containers[c["name"]] = {
                    "cpuNs": cpu.get("usageCoreNanoSeconds"),
                    "workingSet": mem.get("workingSetBytes"),
                    "rss": mem.get("rssBytes"),
                }
            pods[ref["name"]] = {"node": name, "containers": containers}
    return pods


def sample(args):
    kc = kubectl()
    stop = []
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, lambda *_: stop.append(1))
    seen = False
    deadline = time.monotonic() + args.max_seconds
    with open(args.out, "a") as f:
        while not stop and time.monotonic() < deadline:
            try:
                pods = sample_once(kc, args.namespace)
            except (RuntimeError, subprocess.TimeoutExpired, json.JSONDecodeError) as e:
                print(f"[pod-usage] {e}", file=sys.stderr)
                pods = None
            if pods is not None:
                f.write(json.dumps({"t": time.time(), "pods": pods}) + "\n")
                f.flush()
                if pods:
                    seen = True
                elif seen:
                    break
            time.sleep(args.interval)


def parse_time(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def summarize(args):
    summary = json.load(open(os.path.join(args.run_dir, "summary.json")))
    phases = summary["phases"]
    start = parse_time(summary["startedAt"]) + phases["install"]
    end = start + phases.get("steadyState", 0) + phases.get("soak", 0)
    samples = [json.loads(line) for line in open(args.file)]
    window = [s for s in samples if start <= s["t"] <= end]
    if len(window) < 2:
        sys.exit(f"{args.file}: fewer than 2 samples in the loaded window {start:.0f}..{end:.0f}")
    first, last = window[0], window[-1]
    rows = []
    for pod in sorted(last["pods"]):
        for container in sorted(last["pods"][pod]["containers"]):
            def series(key):
                return [s["pods"][pod]["containers"][container][key] for s in window
                        if pod in s["pods"] and container in s["pods"][pod]["containers"]
                        and s["pods"][pod]["containers"][container][key] is not None]
            cpu = series("cpuNs")
            ws, rss = series("workingSet"), series("rss")
            t0 = next(s["t"] for s in window if pod in s["pods"])
            vcpu = (cpu[-1] - cpu[0]) / 1e9 / (last["t"] - t0) if len(cpu) > 1 else None
            rows.append({
                "pod": pod, "container": container, "vcpu": vcpu,
                "workingSetMeanMiB": sum(ws) / len(ws) / MIB if ws else None,
                "workingSetPeakMiB": max(ws) / MIB if ws else None,
                "rssMeanMiB": sum(rss) / len(rss) / MIB if rss else None,
                "rssPeakMiB": max(rss) / MIB if rss else None,
            })
    result = {"window": {"from": start, "to": end, "seconds": end - start, "samples": len(window),
                         "firstSample": first["t"], "lastSample": last["t"]},
              "containers": rows}
    json.dump(result, open(os.path.join(args.run_dir, "pod-usage.json"), "w"), indent=2)
    fmt = lambda v, d=0: "–" if v is None else f"{v:.{d}f}"  # noqa: E731
    print(f"Loaded window {end - start:.0f} s ({len(window)} samples of the kubelet summary API)\n")
    print("| Pod | container | vCPU (mean) | working set MiB (mean / peak) | RSS MiB (mean / peak) |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['pod']} | {r['container']} | {fmt(r['vcpu'], 3)} | "
              f"{fmt(r['workingSetMeanMiB'])} / {fmt(r['workingSetPeakMiB'])} | "
              f"{fmt(r['rssMeanMiB'])} / {fmt(r['rssPeakMiB'])} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("sample")
    s.add_argument("--out", required=True)
    s.add_argument("--namespace", default="scaletest")
    s.add_argument("--interval", type=float, default=5)
    s.add_argument("--max-seconds", type=float, default=3600)
    m = sub.add_parser("summarize")
    m.add_argument("file")
    m.add_argument("run_dir")
    args = p.parse_args()
    sample(args) if args.cmd == "sample" else summarize(args)


if __name__ == "__main__":
    main()
