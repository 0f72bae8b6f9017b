#!/usr/bin/env python3
"""Side-by-side benchmarks (issue 7): scaletest against its peers on this machine.

  create    load-driver vs kube-burner's create job: ConfigMaps, then Pods onto kwok
            Nodes, each tool against its own fresh simulated cluster (apiserver limits
            lifted, client QPS limits lifted on both sides).
  binding   pod-shim vs kube-scheduler: one cluster, the reference SUT providing Nodes,
            the whole backlog created at once (scaletest-runner runs it).
  overhead  CPU and RSS of the harness (load-driver, node-creator, pod-shim, SUT,
            supervisor) against the control plane at dev-5k's per-cluster load.
  capacity  clusters per machine: a bounded search for the largest clusterCount that
            passes every SLO, and idle clusters (memory).
  rule      the runner's budget rule's memory points (crates/scaletest-core/src/footprint.rs)
            per control plane (lean, full): one cluster idle and holding 1K Pods created
            at once (BENCH_RULE_SIZES, BENCH_RULE_MODES to choose).

Every figure is a count or a ratio of two things measured in the same invocation:
absolute times drift on a shared 2-core machine. Writes results/bench/<name>.json and
regenerates results/bench/README.md from every JSON there.

  scripts/bench.py [--quick] [--only create,binding,overhead,capacity,rule]
  make bench [QUICK=1]

Needs the release build (`cargo build --release --workspace --bins`), the upstream
binaries (`make upstream`) and kube-burner (`scripts/upstream.sh bench`); make bench
does all three.
"""
import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

import bench_measure as measure
from bench_common import OUT, exit_once_on
from bench_render import render


def keep_unmeasured(new, old, old_date):
    """`new`'s rows by object count, with each of `old`'s that `new` lacks, dated."""
    rows = dict(new)
    for n, row in old.items():
        rows.setdefault(n, {"date": old_date, **row})
    return dict(sorted(rows.items(), key=lambda kv: int(kv[0])))


def write(out, p, r, old, t0, quick):
    """Writes part `p`'s result `r` to out/<p>.json, with the rows of the `old` file it did not re-measure."""
    if p == "binding":
        # A size not measured this time (e.g. 50K) keeps its last row, dated.
        r["sizes"] = keep_unmeasured(r["sizes"], old.get("sizes", {}), old.get("date"))
    if p == "rule":
        # Likewise a control plane or a size not measured this time.
        r["points"] = dict(r["points"])
        for mode, rows in old.get("points", {}).items():
            r["points"][mode] = keep_unmeasured(r["points"].get(mode, {}), rows, old.get("date"))
    r.update({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "quick": quick,
              "machine": measure.machine(), "benchSeconds": round(time.monotonic() - t0, 1)})
    if p in ("overhead", "capacity"):
        r["rampPerSecond"] = measure.dev5k_ramp()
    if p == "create":
        r["peerVersion"] = Path(os.path.realpath(measure.KUBE_BURNER)).parent.name.split("@")[-1]
    path = out / f"{p}.json"
    path.write_text(json.dumps(r, indent=2) + "\n")
    measure.log(f"{p}: wrote {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: a few minutes per part")
    ap.add_argument("--only", default=",".join(measure.PARTS), help="comma-separated parts: " + ", ".join(measure.PARTS))
    ap.add_argument("--render", action="store_true", help="only regenerate results/bench/README.md from the JSON")
    a = ap.parse_args()
    out = OUT / "quick" if a.quick else OUT
    out.mkdir(parents=True, exist_ok=True)
    measure.PROFILE_DIR = out / "profiles"
    if a.render:
        render(out)
        return
    parts = [p for p in a.only.split(",") if p]
    for p in parts:
        if p not in measure.PARTS:
            sys.exit(f"unknown part {p}: one of {', '.join(measure.PARTS)}")
    measure.KUBECTL = measure.upstream_bin("kubectl", "make upstream")
    for b in ("scaletest-cluster", "scaletest-runner", "scaletest-load-driver"):
        measure.our_bin(b)
    if "create" in parts:
        measure.KUBE_BURNER = measure.upstream_bin("kube-burner", "scripts/upstream.sh bench")
    exit_once_on((signal.SIGTERM, signal.SIGHUP), 130)
    try:
        for p in parts:
            t0 = time.monotonic()
            prev = out / f"{p}.json"
            old = json.loads(prev.read_text()) if prev.exists() else {}
            # A part measuring row by row hands each finished row here: what a long part
            # measured survives its interruption.
            measure.CHECKPOINT = lambda r, p=p, old=old, t0=t0: write(out, p, dict(r), old, t0, a.quick)
            write(out, p, measure.PARTS[p](a.quick), old, t0, a.quick)
            render(out)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        measure.kill_all_groups()
    print((out / "README.md").read_text())


if __name__ == "__main__":
    main()
