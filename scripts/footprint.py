#!/usr/bin/env python3
"""What one simulated cluster costs, per component, and what each footprint lever saves (issue 14).

For each lever (baseline first), starts N bare clusters side by side (`scaletest-cluster`, no
profile: the control plane plus node-creator), lets them settle, and measures every process
over the same window: RSS, PSS and private memory (/proc/<pid>/smaps_rollup, averaged over
the window's samples) and CPU (utime + stime over the window). MemAvailable is read before
the first cluster starts and with all of them up: its drop per cluster is what an added
cluster really takes from the machine (shared pages and the kernel's own included). Then,
with --pods, cluster 0 gets that many Pods on fake Nodes and is measured again once every
Pod is Running ("loaded").

A lever is applied without rebuilding anything: --bin-dir points at a directory of wrappers
that exec the pinned binary with the supervisor's arguments plus the lever's (pflag: the
last occurrence of a scalar flag wins) and the lever's environment. So a lever's figures
are the supervisor's defaults plus that one change, whatever the defaults are today.

  scripts/footprint.py [--clusters 2] [--pods 1000] [--lever baseline,gogc ...] [--store-as KEY]
  scripts/footprint.py --heap --lever lean            # kube-apiserver's live heap by area
  scripts/footprint.py --capacity 100 --lever lean    # idle clusters actually started and held
  scripts/footprint.py --record-run results/<run>/summary.json   # a loaded capacity run's verdict
  scripts/footprint.py --render                       # only rewrite the README section

Writes results/bench/footprint.json (every lever's figures, and `perCluster`: one idle
cluster and what each Pod adds, for the runner's budget) and its section of
results/bench/README.md (between `<!-- footprint.py -->` markers).

Hold the machine-wide lock while measuring: flock /tmp/scaletest-heavy.lock scripts/footprint.py
"""
import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_common import exit_once_on

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("SCALETEST_TARGET_DIR", ROOT / "target/release"))
CLK = os.sysconf("SC_CLK_TCK")
KEEP = None  # --keep-profile

COMPONENTS = {"kube-apiserver": "apiserver", "kine": "kine", "kube-scheduler": "kube-scheduler",
              "kube-controller-manager": "controller-manager", "kwok": "kwok",
              "scaletest-node-creator": "node-creator", "scaletest-pod-shim": "pod-shim",
              "scaletest-cluster": "supervisor"}
UPSTREAM = ["kine", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "kubectl"]

# The API groups a simulated cluster serves with `apiGroups: minimal` (see
# crates/scaletest-cluster/src/components.rs, MINIMAL_API_GROUPS, for why each is there).
MINIMAL_GROUPS = ["v1", "apiextensions.k8s.io/v1", "apiregistration.k8s.io/v1", "apps/v1",
                  "authentication.k8s.io/v1", "authorization.k8s.io/v1", "coordination.k8s.io/v1",
                  "events.k8s.io/v1", "flowcontrol.apiserver.k8s.io/v1", "rbac.authorization.k8s.io/v1",
                  "scheduling.k8s.io/v1", "admissionregistration.k8s.io/v1", "networking.k8s.io/v1",
                  "policy/v1", "storage.k8s.io/v1", "resource.k8s.io/v1", "node.k8s.io/v1",
                  "discovery.k8s.io/v1", "certificates.k8s.io/v1"]

# kube-controller-manager's controllers for the chain: the ones its objects need.
CHAIN_CONTROLLERS = ["garbage-collector-controller", "namespace-controller", "node-lifecycle-controller",
                     "taint-eviction-controller", "pod-garbage-collector-controller", "serviceaccount-controller",
                     "replicaset-controller", "deployment-controller"]

# Built-in resources no component of a simulated cluster needs served from a watch cache:
# nothing on the measured path reads them, and the few watches on them (the garbage
# collector's metadata informers, kube-scheduler's volume and DRA informers, the RBAC and
# admission informers) can be served by kine. CRDs are not covered by the flag.
COLD_RESOURCES = ["secrets", "limitranges", "resourcequotas", "podtemplates", "replicationcontrollers", "services",
                  "endpoints", "persistentvolumes", "persistentvolumeclaims", "controllerrevisions.apps",
                  "statefulsets.apps", "daemonsets.apps", "cronjobs.batch", "jobs.batch",
                  "horizontalpodautoscalers.autoscaling", "certificatesigningrequests.certificates.k8s.io",
                  "csidrivers.storage.k8s.io", "csinodes.storage.k8s.io", "csistoragecapacities.storage.k8s.io",
                  "storageclasses.storage.k8s.io", "volumeattachments.storage.k8s.io",
                  "volumeattributesclasses.storage.k8s.io", "poddisruptionbudgets.policy",
                  "priorityclasses.scheduling.k8s.io", "runtimeclasses.node.k8s.io", "ingresses.networking.k8s.io",
                  "ingressclasses.networking.k8s.io", "networkpolicies.networking.k8s.io",
                  "ipaddresses.networking.k8s.io", "servicecidrs.networking.k8s.io", "endpointslices.discovery.k8s.io",
                  "roles.rbac.authorization.k8s.io", "rolebindings.rbac.authorization.k8s.io",
                  "clusterroles.rbac.authorization.k8s.io", "clusterrolebindings.rbac.authorization.k8s.io",
                  "flowschemas.flowcontrol.apiserver.k8s.io", "prioritylevelconfigurations.flowcontrol.apiserver.k8s.io",
                  "mutatingwebhookconfigurations.admissionregistration.k8s.io",
                  "validatingwebhookconfigurations.admissionregistration.k8s.io",
                  "validatingadmissionpolicies.admissionregistration.k8s.io",
                  "validatingadmissionpolicybindings.admissionregistration.k8s.io",
                  "resourceclaims.resource.k8s.io", "resourceclaimtemplates.resource.k8s.io",
                  "resourceslices.resource.k8s.io", "deviceclasses.resource.k8s.io",
                  "apiservices.apiregistration.k8s.io"]

GO_PROGRAMS = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kine", "kwok"]
CONTROLLERS = {"kube-controller-manager": {"args": ["--controllers=" + ",".join(CHAIN_CONTROLLERS)]}}

# name -> {program: {"args": [...], "env": {...}}}; one change each ("apiGroups" takes the
# controllers with it: the others' informers would list groups no longer served), then "all".
LEVERS = {
    "baseline": {},
    "controllers": CONTROLLERS,
    "apiGroups": {"kube-apiserver": {"args": ["--runtime-config=api/all=false," +
                                              ",".join(f"{g}=true" for g in MINIMAL_GROUPS)]}, **CONTROLLERS},
    "watchCache": {"kube-apiserver": {"args": ["--watch-cache-sizes=" + ",".join(f"{r}#0" for r in COLD_RESOURCES)]}},
    "admission": {"kube-apiserver": {"args": ["--disable-admission-plugins=PodSecurity,LimitRanger,ResourceQuota,"
                                              "DefaultStorageClass,StorageObjectInUseProtection,"
                                              "PersistentVolumeClaimResize,RuntimeClass,CertificateApproval,"
                                              "CertificateSigning,ClusterTrustBundleAttest,"
                                              "CertificateSubjectRestriction,DefaultIngressClass,"
                                              "PodTopologyLabels,MutatingAdmissionPolicy,MutatingAdmissionWebhook,"
                                              "ValidatingAdmissionPolicy,ValidatingAdmissionWebhook"]}},
    "gogc": {p: {"env": {"GOGC": "50"}} for p in GO_PROGRAMS},
    "gogc25": {p: {"env": {"GOGC": "25"}} for p in GO_PROGRAMS},
    # Idle loops: kine polls SQLite every second for rows it did not insert itself (there are
    # none: it is the only writer), the apiserver counts every resource's keys every minute.
    "idleLoops": {"kine": {"args": ["--datastore-poll-interval=5s"]},
                  "kube-apiserver": {"args": ["--etcd-count-metric-poll-period=5m"]}},
    # The baseline's settings now that GOGC=50 is the supervisor's default (a full control
    # plane without a profile, Go's own GOGC): a repeat of the baseline, for the noise.
    "gogc100": {p: {"env": {"GOGC": "100"}} for p in GO_PROGRAMS},
    # What the supervisor adopted (harness.controlPlane: lean), for before/after.
    "lean": {"scaletest-cluster": {"args": ["--control-plane", "lean"]}},
}
# lean as it was plus the watch cache and idle-loop levers: what made them lean's defaults.
LEVERS["leanIdle"] = {**LEVERS["lean"], "kine": LEVERS["idleLoops"]["kine"], "kube-apiserver": {"args": [
    *LEVERS["watchCache"]["kube-apiserver"]["args"], *LEVERS["idleLoops"]["kube-apiserver"]["args"]]}}


def log(msg):
    print(f"[footprint {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def bin_dir():
    d = subprocess.run([str(ROOT / "scripts/upstream.sh"), "bin-dir"], capture_output=True, text=True).stdout.strip()
    for name in UPSTREAM:
        if not (Path(d) / name).exists():
            sys.exit(f"{Path(d) / name} missing: run `make upstream` first")
    return Path(d)


def wrappers(dest, real, lever):
    """A --bin-dir whose binaries are the pinned ones plus the lever's arguments and environment."""
    dest.mkdir(parents=True)
    for name in UPSTREAM:
        change = lever.get(name)
        if not change:
            (dest / name).symlink_to(real / name)
            continue
        env = " ".join(f"{k}={shlex.quote(v)}" for k, v in change.get("env", {}).items())
        args = " ".join(shlex.quote(a) for a in change.get("args", []))
        (dest / name).write_text(f'#!/bin/sh\nexec env {env} {real / name} "$@" {args}\n')
        (dest / name).chmod(0o755)
    return dest


def meminfo():
    return {l.split(":")[0]: int(l.split()[1]) * 1024 for l in Path("/proc/meminfo").read_text().splitlines()}


def tree(root):
    """Every live descendant of root (root included): pid -> component name."""
    children = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                s = Path(f"/proc/{d}/stat").read_text()
                children.setdefault(int(s[s.rindex(")") + 2:].split()[1]), []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        try:
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe")).removesuffix(" (deleted)")
        except OSError:
            continue
        out[pid] = COMPONENTS.get(exe, exe)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pid):
    s = Path(f"/proc/{pid}/stat").read_text()
    f = s[s.rindex(")") + 2:].split()
    return (int(f[11]) + int(f[12])) / CLK


def smaps(pid):
    """(rss, pss, private) bytes of pid."""
    v = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        k, rest = line.split(":", 1)
        v[k] = int(rest.split()[0]) * 1024
    return v["Rss"], v["Pss"], v["Private_Clean"] + v["Private_Dirty"]


def measure(roots, seconds, samples=4):
    """Per component, summed over the clusters under `roots` and divided by their count:
    mean RSS/PSS/private over `samples` samples and CPU over `seconds`."""
    procs = {}
    for r in roots:
        procs.update(tree(r))
    cpu0 = {}
    for pid in procs:
        try:
            cpu0[pid] = cpu_seconds(pid)
        except OSError:
            pass
    mem = {}
    t0 = time.monotonic()
    for i in range(samples):
        time.sleep(seconds / samples)
        for pid, comp in procs.items():
            try:
                r, p, pr = smaps(pid)
            except OSError:
                continue
            m = mem.setdefault(comp, [0, 0, 0])
            m[0] += r / samples
            m[1] += p / samples
            m[2] += pr / samples
    secs = time.monotonic() - t0
    cpu, gone = {}, []
    for pid, comp in procs.items():
        try:
            cpu[comp] = cpu.get(comp, 0.0) + cpu_seconds(pid) - cpu0.get(pid, 0.0)
        except OSError:
            gone.append(comp)
    n = len(roots)
    mib = 2**20
    out = {comp: {"rssMiB": round(m[0] / n / mib, 1), "pssMiB": round(m[1] / n / mib, 1),
                  "privateMiB": round(m[2] / n / mib, 1), "mvcpu": round(1000 * cpu.get(comp, 0.0) / secs / n, 1)}
           for comp, m in sorted(mem.items())}
    out["total"] = {k: round(sum(v[k] for v in out.values()), 1) for k in ["rssMiB", "pssMiB", "privateMiB", "mvcpu"]}
    return {"seconds": round(secs, 1), "exited": gone, "perCluster": out}


class Cluster:
    def __init__(self, tmp, name, bins, groups, args=()):
        self.data = Path(tmp) / name
        self.data.mkdir(parents=True)
        self.log = Path(tmp) / f"{name}.log"
        with open(self.log, "ab") as f:
            self.proc = subprocess.Popen([str(TARGET / "scaletest-cluster"), "--name", name, "--data-dir",
                                          str(self.data), "--bin-dir", str(bins), *args],
                                         stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        groups.add(self.proc.pid)
        self.groups = groups

    def wait_ready(self, timeout=600):
        ep = self.data / "endpoints.json"
        deadline = time.monotonic() + timeout
        while not ep.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
                raise RuntimeError(f"{self.data.name} did not start:\n{tail}")
            time.sleep(0.2)
        self.endpoints = json.loads(ep.read_text())
        self.kubeconfig = self.endpoints["kubeconfig"]

    def kubectl(self, *args, stdin=None, check=True):
        r = subprocess.run([str(BIN / "kubectl"), "--kubeconfig", self.kubeconfig, *args], input=stdin,
                           capture_output=True, text=True, timeout=600)
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:3])}: {r.stderr.strip()[:500]}")
        return r

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        self.groups.discard(self.proc.pid)


def load(c, pods, density=100):
    """`pods` Pods (100m each) on enough fake Nodes made by node-creator; waits until all Run."""
    nodes = -(-pods // density)
    items = [{"apiVersion": "scaletest.dev/v1alpha1", "kind": "UpcomingNode", "metadata": {"name": f"fp-{i:04d}"},
              "spec": {"allocatable": {"cpu": str(density // 10), "memory": f"{density * 128}Mi",
                                       "pods": str(density)}}} for i in range(nodes)]
    c.kubectl("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    for _ in range(600):
        if c.kubectl("get", "sa", "default", check=False).returncode == 0:
            break
        time.sleep(0.5)
    pod = lambda i: {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"fp-{i:05d}", "labels": {"fp": "1"}},
                     "spec": {"containers": [{"name": "c", "image": "registry.invalid/fake",
                                              "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}}}]}}
    for start in range(0, pods, 200):
        items = [pod(i) for i in range(start, min(start + 200, pods))]
        c.kubectl("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    deadline = time.monotonic() + 900
    while True:
        phases = c.kubectl("get", "pods", "-l", "fp=1", "-o", "jsonpath={.items[*].status.phase}").stdout.split()
        running = phases.count("Running")
        if running >= pods:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {running} of {pods} Pods Running after 900 s")
        time.sleep(3)


def go_heap(c):
    """The apiserver's live heap and goroutines (its own /metrics)."""
    text = c.kubectl("get", "--raw", "/metrics").stdout
    val = lambda name: next((float(l.split()[-1]) for l in text.splitlines() if l.startswith(name + " ")), None)
    mib = lambda name: round(val(name) / 2**20, 1) if val(name) is not None else None
    # The next GC's target is the live heap after the last GC times (1 + GOGC/100).
    return {"heapAllocMiB": mib("go_memstats_heap_alloc_bytes"), "nextGcMiB": mib("go_memstats_next_gc_bytes"),
            "goroutines": val("go_goroutines")}


def one_lever(name, lever, n, pods, settle, window):
    groups = set()
    with tempfile.TemporaryDirectory(prefix="scaletest-footprint-") as tmp:
        bins = wrappers(Path(tmp) / "bin", BIN, lever)
        before = meminfo()["MemAvailable"]
        clusters = []
        try:
            for i in range(n):
                clusters.append(Cluster(tmp, f"fp-{i}", bins, groups, lever.get("scaletest-cluster", {}).get("args", [])))
                clusters[-1].wait_ready()
                log(f"{name}: cluster {i + 1}/{n} ready")
            time.sleep(settle)
            after = meminfo()["MemAvailable"]
            res = {"lever": name, "change": lever, "clusters": n,
                   "memAvailableDropMiBPerCluster": round((before - after) / n / 2**20, 1),
                   "idle": measure([c.proc.pid for c in clusters], window), "idleApiserver": go_heap(clusters[0])}
            log(f"{name}: idle {res['idle']['perCluster']['total']}, "
                f"MemAvailable -{res['memAvailableDropMiBPerCluster']} MiB/cluster")
            if pods:
                t0 = time.monotonic()
                load(clusters[0], pods)
                res["loadSeconds"] = round(time.monotonic() - t0, 1)
                time.sleep(settle)
                res["loaded"] = measure([clusters[0].proc.pid], window)
                res["loadedApiserver"] = go_heap(clusters[0])
                res["pods"] = pods
                log(f"{name}: loaded {res['loaded']['perCluster']['total']}")
            res["restarts"] = sum(c.log.read_text(errors="replace").count("restarting") for c in clusters)
            return res
        finally:
            for c in clusters:
                c.stop()


def capacity(name, lever, n, hold, window, floor_gib):
    """n idle clusters actually started one after another (never extrapolated), held for
    `hold` s, then stopped all at once. Starting stops early if MemAvailable falls under
    `floor_gib` (the machine is shared: never push it into swap or the OOM killer)."""
    groups = set()
    with tempfile.TemporaryDirectory(prefix="scaletest-footprint-") as tmp:
        bins = wrappers(Path(tmp) / "bin", BIN, lever)
        before = meminfo()["MemAvailable"]
        clusters, res = [], {"lever": name, "change": lever, "target": n, "floorGiB": floor_gib}
        t0 = time.monotonic()
        try:
            for i in range(n):
                if meminfo()["MemAvailable"] < floor_gib * 2**30:
                    res["stoppedStartingBecause"] = f"MemAvailable under {floor_gib} GiB after {i} clusters"
                    log(f"capacity: {res['stoppedStartingBecause']}")
                    break
                clusters.append(Cluster(tmp, f"fp-{i}", bins, groups, lever.get("scaletest-cluster", {}).get("args", [])))
                try:
                    clusters[-1].wait_ready()
                except RuntimeError as e:  # the attempt is a result too: hold what did start
                    clusters.pop().stop()
                    last = [l for l in str(e).splitlines()[1:] if l.strip()][-1:]
                    res["stoppedStartingBecause"] = f"fp-{i} did not start with {i} up" + (
                        f" (its log's last line: {last[0][:300]})" if last else "")
                    log(f"capacity: {res['stoppedStartingBecause']}")
                    break
                if (i + 1) % 10 == 0:
                    avail = meminfo()["MemAvailable"]
                    res.setdefault("memAvailableGiBEvery10", []).append(round(avail / 2**30, 1))
                    log(f"capacity: {i + 1}/{n} ready, MemAvailable {avail / 2**30:.1f} GiB")
            if not clusters:
                raise RuntimeError(res.get("stoppedStartingBecause", "no cluster started"))
            res["started"] = len(clusters)
            res["startSeconds"] = round(time.monotonic() - t0, 1)
            held = time.monotonic()
            res["idle"] = measure([c.proc.pid for c in clusters], window)
            after = meminfo()["MemAvailable"]
            res["memAvailableDropMiBPerCluster"] = round((before - after) / len(clusters) / 2**20, 1)
            res["memAvailableGiBWithAll"] = round(after / 2**30, 1)
            while time.monotonic() - held < hold:
                time.sleep(10)
                dead = [c.data.name for c in clusters if c.proc.poll() is not None]
                if dead:
                    res["exitedDuringHold"] = dead
                    break
            res["heldSeconds"] = round(time.monotonic() - held)
            # "Up" is each kube-apiserver answering /readyz at the end of the hold, not only
            # its supervisor alive.
            res["readyAtEnd"] = sum(c.kubectl("--request-timeout=30s", "get", "--raw", "/readyz", check=False).stdout.strip() == "ok"
                                    for c in clusters if c.proc.poll() is None)
            res["restarts"] = sum(c.log.read_text(errors="replace").count("restarting") for c in clusters)
            res["loadAverage1m"] = round(os.getloadavg()[0], 1)
        finally:
            for c in clusters:
                if c.proc.poll() is None:
                    c.proc.send_signal(signal.SIGTERM)
            t1 = time.monotonic()
            left = []
            for c in clusters:
                try:
                    c.proc.wait(timeout=120)
                    os.killpg(c.proc.pid, 0)  # anything of its process group still there?
                    left.append(c.data.name)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    pass
                c.stop()
            res["stopSeconds"] = round(time.monotonic() - t1, 1)
            # A supervisor's exit status is 0 after a clean SIGTERM teardown.
            res["stoppedCleanly"] = all(c.proc.returncode == 0 for c in clusters) and not left
            res["leftProcesses"] = left
    res["cpus"] = os.cpu_count()
    res["memTotalGiB"] = round(meminfo()["MemTotal"] / 2**30, 1)
    res["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return res


# Where kube-apiserver's live heap goes, by the frames an allocation passed through
# (`go tool pprof -focus`); areas can overlap, the rest is everything else.
HEAP_AREAS = {"OpenAPI v2/v3 specs and their definitions": "openapi",
              "REST handlers (routes, one set per resource and version)": "InstallREST|installAPIResources",
              "Prometheus metrics": "prometheus", "watch caches": "cacher", "compiled regexps": "regexp",
              "etcd clients (gRPC to kine)": "grpc|etcd3"}


def apiserver_pprof(name, lever, settle, paths):
    """One cluster with the lever and kube-apiserver's /debug/pprof on: each of `paths`
    (name -> /debug/pprof/… path) fetched after `settle` s, into a temporary directory
    (also copied into --keep-profile). Yields {name: file}; the cluster is stopped first."""
    lever = {**lever, "kube-apiserver": {**lever.get("kube-apiserver", {}),
                                         "args": [*lever.get("kube-apiserver", {}).get("args", []), "--profiling=true"]}}
    tmp = tempfile.TemporaryDirectory(prefix="scaletest-footprint-")
    bins = wrappers(Path(tmp.name) / "bin", BIN, lever)
    c = Cluster(tmp.name, f"{name}-0", bins, set(), lever.get("scaletest-cluster", {}).get("args", []))
    files = {}
    try:
        c.wait_ready()
        time.sleep(settle)
        for key, path in paths.items():
            files[key] = Path(tmp.name) / f"apiserver-{key}.pb"
            files[key].write_bytes(subprocess.run([str(BIN / "kubectl"), "--kubeconfig", c.kubeconfig, "get", "--raw",
                                                   path], capture_output=True, check=True, timeout=300).stdout)
            if KEEP:
                shutil.copy(files[key], KEEP / files[key].name)
    finally:
        c.stop()
    return tmp, files


def pprof_total(pb, *args):
    """What `go tool pprof -top` says the samples (after `args`, e.g. -focus) account for:
    MiB for a heap profile, seconds for a CPU profile."""
    out = subprocess.run(["go", "tool", "pprof", "-top", *args, str(pb)], capture_output=True, text=True).stdout
    line = next((l for l in out.splitlines() if "Showing nodes accounting for" in l), "")
    num = line.split("accounting for ")[1].split(",")[0] if line else "0"
    scale = {"GB": 1024, "MB": 1, "kB": 1 / 1024, "ms": 1 / 1000, "s": 1, "B": 1 / 2**20}
    unit = next((u for u in scale if num.endswith(u)), "")
    return float(num[:len(num) - len(unit)] or 0) * scale.get(unit, 1)


def heap_profile(name, lever, settle):
    """kube-apiserver's live heap after a forced GC, split by HEAP_AREAS, and its goroutines."""
    tmp, f = apiserver_pprof(name, lever, settle, {"heap": "/debug/pprof/heap?gc=1",
                                                   "goroutine": "/debug/pprof/goroutine?debug=1"})
    with tmp:
        goroutines = f["goroutine"].read_text().split("\n")[0]
        return {"lever": name, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **heap_areas(f["heap"]),
                "goroutines": goroutines.removeprefix("goroutine profile: total ")}


# The OpenAPI part of the heap by who holds it (`-focus`): what a kube-apiserver built
# without the eager parts would save, and what it needs anyway.
OPENAPI_PARTS = {"v2 spec, built at start (routes.OpenAPI.InstallV2)": "InstallV2",
                 "v3 specs, built at start (routes.OpenAPI.InstallV3)": "InstallV3",
                 "v3 specs serialized for the aggregator's own download (handler3)": "handler3",
                 "type definitions (GetOpenAPIDefinitions; server-side apply's type converter needs them)":
                     "GetOpenAPIDefinitions"}


def heap_areas(pb):
    """A heap profile's live heap, split by HEAP_AREAS and its OpenAPI part by OPENAPI_PARTS."""
    def mib(*focus):
        return round(pprof_total(pb, "-sample_index=inuse_space", *focus), 1)

    return {"liveHeapMiB": mib(), "areasMiB": {area: mib(f"-focus={rx}") for area, rx in HEAP_AREAS.items()},
            "openapiMiB": {part: mib(f"-focus={rx}") for part, rx in OPENAPI_PARTS.items()},
            # the specs' parts counted once (a frame can hold two of them)
            "openapiSpecsMiB": mib("-focus=" + "|".join(rx for rx in OPENAPI_PARTS.values()
                                                         if rx != "GetOpenAPIDefinitions"))}


# Where an idle kube-apiserver's CPU goes, by the frames a sample passed through (areas
# can overlap: a collection started by an allocation in the watch cache counts in both).
CPU_AREAS = {"garbage collection": "runtime.gcBgMarkWorker|runtime.gcAssist|runtime.bgsweep|runtime.bgscavenge",
             "Go scheduler and timers (goroutines waking)": "runtime.schedule|runtime.findRunnable|runtime.checkTimers",
             "watch caches (bookmarks, dispatch)": "cacher",
             "etcd clients (gRPC to kine)": "grpc|etcd3", "HTTP serving (its own loopback clients included)": "net/http",
             "leases and controllers of its own": "lease|controller", "priority and fairness": "flowcontrol",
             "metrics": "prometheus|metrics"}


def cpu_profile(name, lever, settle, seconds=60):
    """Where one idle cluster's kube-apiserver spends its CPU over `seconds`, split by CPU_AREAS."""
    tmp, f = apiserver_pprof(name, lever, settle, {"cpu": f"/debug/pprof/profile?seconds={seconds}"})
    with tmp:
        mvcpu = lambda *focus: round(pprof_total(f["cpu"], *focus) / seconds * 1000, 1)
        return {"lever": name, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seconds": seconds,
                "apiserverMvcpu": mvcpu(),
                "areasMvcpu": {area: mvcpu(f"-focus={rx}") for area, rx in CPU_AREAS.items()}}


# What each lever does (its mechanism; the figures say what it is worth).
WHY = {
    "controllers": "kube-controller-manager runs only the chain's controllers: each one it skips is informers "
                   "and workers it never starts",
    "apiGroups": "kube-apiserver serves only the chain's group versions (with the controllers, whose informers "
                 "would list the others): every group version served costs storage, a watch cache per resource, "
                 "REST handlers and OpenAPI/discovery documents",
    "watchCache": "no watch cache for the built-in resources nobody on the measured path reads (their watches "
                  "go to kine; not adopted: 10,000 Pods at once stalled such a cluster for 24 min with kine at "
                  "7.3 GB and acknowledged Pods lost, see rule.json)",
    "admission": "the admission plugins a simulated cluster's objects never need are off",
    "gogc": "GOGC=50 for every Go process: the heap may grow to 1.5x the live heap instead of 2x",
    "gogc25": "GOGC=25: 1.25x",
    "idleLoops": "kine polls SQLite every 5 s instead of every second (it is the only writer: its own inserts "
                 "notify at once), the apiserver counts each resource's keys every 5 min instead of every minute "
                 "(measured after GOGC=50 became the default: compare it with `gogc`, not the baseline)",
    "lean": "the supervisor's default for the reference SUT: `--control-plane lean` (the groups and controllers "
            "above, every watch cache kept) with GOGC=50 for every Go process but kine (Go's default: at 50 its "
            "one write lock stalled 10,000 Pods at once), kine's 5 s poll and the apiserver's 5 min key count "
            "(`idleLoops`, made defaults for every cluster); measured again after the watch caches came back",
    "all": "every wrapper lever above at once",
    "leanIdle": "`lean` as it was plus `watchCache` and `idleLoops`, through wrappers (what made them defaults)",
}


def loaded_runs(doc):
    """The loaded capacity attempts recorded, oldest first (one dict before there could be several)."""
    r = doc.get("capacityLoaded") or []
    return [r] if isinstance(r, dict) else r


def run_facts(summary_path):
    """The verdict of a scaletest-runner run (the loaded capacity goal), from its summary.json."""
    s = json.loads(Path(summary_path).read_text())
    m = s["metrics"]
    if m.get("componentRestarts") is None:  # a failed run has no metrics: its supervisors' logs say
        logs = list(Path(summary_path).parent.glob("logs/*/scaletest-cluster.log"))
        if logs:
            m["componentRestarts"] = sum(p.read_text(errors="replace").count("exited; restarting") for p in logs)
    # The profile as the run read it (copied into its folder): its ramp, Pods/s per cluster.
    rates = [float(x) for y in Path(summary_path).parent.glob("*.yaml")
             for x in re.findall(r"ramp:\s*\{?\s*rate:\s*([0-9.]+)", y.read_text())]
    return {"runId": s["runId"], "clusters": s["scale"]["kwokClusters"], "objectsPerCluster": s["scale"]["objectsPerCluster"],
            "rampPerCluster": rates[0] if rates else None,
            "passed": s["passed"], "controlPlane": s.get("controlPlane"), "componentRestarts": m.get("componentRestarts"),
            "slos": [{k: x[k] for k in ["name", "threshold", "value", "passed"]} for x in s["slos"]],
            "invariantsHeld": all(i["held"] for c in s["clusters"] for i in c["invariants"]),
            "bindingLatencyP99Seconds": m.get("bindingLatencyP99Seconds"),
            "startedAt": s["startedAt"], "reason": s.get("reason")}


# The lever whose figures are the supervisor's defaults today (the "after" of the README).
ADOPTED = "lean"
KEYS = ["rssMiB", "pssMiB", "privateMiB", "mvcpu"]


def per_cluster(doc):
    """The budget's inputs, from the adopted lever: one idle cluster and what each Pod adds
    (loaded minus idle of the same cluster, over its Pods). For the runner's estimate."""
    l = doc["levers"].get(ADOPTED)
    if not l or "loaded" not in l:
        return None
    idle, loaded = l["idle"]["perCluster"]["total"], l["loaded"]["perCluster"]["total"]
    return {"lever": ADOPTED, "date": l["date"], "pods": l["pods"], "idle": idle,
            "perPod": {("mvcpu" if k == "mvcpu" else k.replace("MiB", "KiB")):
                       round((loaded[k] - idle[k]) / l["pods"] * (1 if k == "mvcpu" else 1024), 3) for k in KEYS},
            "memAvailableDropMiBPerCluster": (doc.get("capacity") or {}).get("memAvailableDropMiBPerCluster")}


def markdown(doc):
    """The footprint section of results/bench/README.md, every figure from `doc`."""
    lv = doc["levers"]
    base = lv.get("baseline")
    if not base:
        return []
    row = lambda t: " / ".join(f"{t[k]:g}" for k in KEYS)
    L = ["## Footprint of one simulated cluster, lever by lever", "",
         "`scripts/footprint.py` (under `flock /tmp/scaletest-heavy.lock`): per lever, "
         f"{base['clusters']} bare clusters side by side, every process's RSS / PSS / private "
         "(`smaps_rollup`, mean of 4 samples) and CPU over the same window, per cluster; then cluster 0 with "
         f"{base.get('pods', 0):,} Pods (100m each, on fake Nodes) once every Pod is Running. A lever is the "
         "supervisor's arguments plus that one change (the `change` in [footprint.json](footprint.json)), "
         "all other settings as in the baseline. Figures in MiB and mvCPU (thousandths of a core).", "",
         "| lever | idle RSS / PSS / private / mvCPU | apiserver private | loaded RSS / PSS / private / mvCPU "
         "| apiserver heap idle → loaded (next GC target) | restarts | load avg |",
         "|---|---|---:|---|---|---:|---:|"]
    for name, l in lv.items():
        i = l["idle"]["perCluster"]
        lo = l.get("loaded", {}).get("perCluster")
        heap = lambda h: f"{h['heapAllocMiB']:g} ({h['nextGcMiB']:g})" if h and h.get("nextGcMiB") else "–"
        L.append(f"| {name} | {row(i['total'])} | {i['apiserver']['privateMiB']:g} | "
                 f"{row(lo['total']) if lo else '–'} | {heap(l.get('idleApiserver'))} → {heap(l.get('loadedApiserver'))} "
                 f"| {l.get('restarts', 0)} | {l.get('loadAverage1m', '–')} |")
    d = lambda l, ph, c, k: l[ph]["perCluster"][c][k] - base[ph]["perCluster"][c][k] \
        if ph in l and ph in base and c in l[ph]["perCluster"] else None
    sign = lambda v, unit: "–" if v is None else f"{v:+.1f} {unit}"
    L.append("")
    for name, l in lv.items():
        if name in WHY:
            L.append(f"- **{name}**: {WHY[name]}. Against the baseline: idle private "
                     f"{sign(d(l, 'idle', 'total', 'privateMiB'), 'MiB')} (apiserver "
                     f"{sign(d(l, 'idle', 'apiserver', 'privateMiB'), 'MiB')}, controller-manager "
                     f"{sign(d(l, 'idle', 'controller-manager', 'privateMiB'), 'MiB')}), idle CPU "
                     f"{sign(d(l, 'idle', 'total', 'mvcpu'), 'mvCPU')}; loaded private "
                     f"{sign(d(l, 'loaded', 'total', 'privateMiB'), 'MiB')}, loaded CPU "
                     f"{sign(d(l, 'loaded', 'total', 'mvcpu'), 'mvCPU')}.")
    for name, rep in lv.items():
        first = lv.get(name.removesuffix("Repeat")) if name.endswith("Repeat") else None
        if not first:
            continue
        gap = lambda ph, k: f"{abs(rep[ph]['perCluster']['total'][k] - first[ph]['perCluster']['total'][k]):.1f}" \
            if ph in rep and ph in first else "–"
        L += ["", f"`{name.removesuffix('Repeat')}` measured twice ({first['date']}, {rep['date']}) differs by "
              f"{gap('idle', 'privateMiB')} MiB idle private, {gap('idle', 'mvcpu')} mvCPU idle CPU, "
              f"{gap('loaded', 'privateMiB')} MiB loaded private and {gap('loaded', 'mvcpu')} mvCPU loaded CPU (a Go "
              "heap's size between collections, other work on the machine): smaller differences above are noise."]
    after = lv.get(ADOPTED)
    if after:
        L += ["", f"Per component, before (baseline, {base['date']}) and after (`{ADOPTED}`, the supervisor's "
              f"default for the reference SUT, {after['date']}): RSS / PSS / private MiB / mvCPU.", "",
              "| component | idle before | idle after | loaded before | loaded after |", "|---|---|---|---|---|"]
        comps = [c for c in base["idle"]["perCluster"] if c != "total"] + ["total"]
        for c in comps:
            cell = lambda l, ph: row(l[ph]["perCluster"][c]) if ph in l and c in l[ph]["perCluster"] else "–"
            L.append(f"| {c} | {cell(base, 'idle')} | {cell(after, 'idle')} | {cell(base, 'loaded')} | "
                     f"{cell(after, 'loaded')} |")
    h = doc.get("heap")
    if h:
        L += ["", f"kube-apiserver's live heap with `{h['lever']}` ({h['date']}, after a forced GC, "
              f"`scripts/footprint.py --heap`): {h['liveHeapMiB']:g} MiB and {h['goroutines']} goroutines; "
              "by the frames its allocations passed through: "
              + "; ".join(f"{a} {v:g} MiB" for a, v in h["areasMiB"].items()) + "."]
        top, v = max(h["areasMiB"].items(), key=lambda kv: kv[1])
        if top.startswith("OpenAPI") and h.get("openapiMiB"):
            o = h["openapiMiB"]
            eager = h["openapiSpecsMiB"]
            L += ["", f"The largest part, {top} ({v:g} of {h['liveHeapMiB']:g} MiB), by who holds it: "
                  + "; ".join(f"{part} {m:g} MiB" for part, m in o.items()) + ". kube-apiserver v1.37.2 builds "
                  "the specs at start for every group version served, whether or not a client ever asks for "
                  f"them, and has no flag or feature gate that turns that off. The specs ({eager:g} MiB, about "
                  f"{eager * 1.5:.0f} MiB of memory at GOGC=50) are the next lever: a kube-apiserver built from "
                  "source (`upstream/k8s`) with them made on first request; the type definitions stay."]
    u = doc.get("cpu")
    if u:
        areas = sorted(u["areasMvcpu"].items(), key=lambda kv: -kv[1])
        L += ["", f"An idle kube-apiserver's CPU with `{u['lever']}` ({u['date']}, `scripts/footprint.py --cpu`, "
              f"{u['seconds']} s of pprof samples): {u['apiserverMvcpu']:g} mvCPU; by the frames its samples passed "
              "through (areas overlap): " + "; ".join(f"{a} {v:g}" for a, v in areas) + "."]
    L += ["", "**Sharing between clusters.** The executables' pages are already shared by the kernel (the gap "
          "between RSS and PSS above; PSS falls further as clusters are added). Sharing a process would couple "
          "faults and load: one kine for several apiservers (its `--etcd-prefix` per cluster) would save its "
          "private memory per cluster but give them one SQLite writer lock, so one cluster's burst delays the "
          "others' writes, and a kine fault or crash takes every cluster down at once; kwok, kube-scheduler and "
          "kube-controller-manager each serve one apiserver. Nothing is shared, by design."]
    k = doc.get("capacity")
    if k:
        t = k["idle"]["perCluster"]["total"]
        L += ["", f"## Idle clusters actually started ({k['date']}, lever `{k['lever']}`)", "",
              f"{k['started']} of {k['target']} clusters started ({k['startSeconds']:g} s), held "
              f"{k['heldSeconds']} s" + (f", exited during the hold: {', '.join(k['exitedDuringHold'])}"
                                         if k.get("exitedDuringHold") else " with every supervisor up")
              + (f", {k['readyAtEnd']} of {k['started']} kube-apiservers answering /readyz at its end"
                 if k.get("readyAtEnd") is not None else "")
              + f", {k['restarts']} component restarts, stopped {'cleanly' if k['stoppedCleanly'] else 'NOT cleanly'} "
              f"in {k['stopSeconds']:g} s" + (f"; starting stopped: {k['stoppedStartingBecause']}"
                                               if k.get("stoppedStartingBecause") else "") + ".",
              f"Per cluster with all of them up: RSS / PSS / private / mvCPU {row(t)}; MemAvailable fell "
              f"{k['memAvailableDropMiBPerCluster']:g} MiB per cluster (to {k['memAvailableGiBWithAll']:g} GiB, "
              "other work on the machine moves it too)" + (
                  f"; every 10 clusters started it read {', '.join(f'{g:g}' for g in k['memAvailableGiBEvery10'])} GiB, "
                  f"{(k['memAvailableGiBEvery10'][0] - k['memAvailableGiBEvery10'][-1]) * 1024 / (10 * (len(k['memAvailableGiBEvery10']) - 1)):.0f} "
                  "MiB per cluster from the 10th to the last" if len(k.get("memAvailableGiBEvery10", [])) > 1 else "")
              + f"; load average {k['loadAverage1m']}."]
    for i, e in enumerate(doc.get("capacityEarlier", [])):
        L += [""] if i == 0 else []
        L.append(f"- Earlier ({e['date']}, lever `{e['lever']}`{', ' + e['note'] if e.get('note') else ''}): "
                 f"{e['started']} of {e['target']} started, up {e['heldSeconds']} s, {e['restarts']} restarts, "
                 f"PSS {e['idle']['perCluster']['total']['pssMiB']:g} MiB and "
                 f"{e['idle']['perCluster']['total']['mvcpu']:g} mvCPU per cluster, MemAvailable "
                 f"{e['memAvailableGiBWithAll']:g} GiB with all up"
                 + (f" (starting stopped: {e['stoppedStartingBecause']})" if e.get("stoppedStartingBecause") else "")
                 + ".")
    for r in loaded_runs(doc):
        ramp = f", ramp {r['rampPerCluster']:g} Pods/s per cluster" if r.get("rampPerCluster") else ""
        slos = "; ".join(f"{x['name']} {x['value']:.2f} against {x['threshold']:g} ({'passed' if x['passed'] else 'FAILED'})"
                         for x in r["slos"] if x.get("value") is not None)
        cp = r.get("controlPlane") or {}
        p99 = lambda k: f"{cp[k]:.2f} s" if cp.get(k) is not None else "not measured"
        L += ["", f"## {r['clusters']} clusters x {r['objectsPerCluster']:,} Pods{ramp}, every SLO ({r['startedAt']})", "",
              f"Run `{r['runId']}` {'PASSED' if r['passed'] else 'FAILED'}"
              + (f" ({r['reason']})" if r.get("reason") else "") + (f": {slos}" if slos else "")
              + f"; every invariant {'held' if r['invariantsHeld'] else 'did NOT hold'}; component restarts: "
              + (f"{r['componentRestarts']:g}" if r.get("componentRestarts") is not None else "not measured") + "; "
              + (f"control plane {'saturated' if cp.get('saturated') else 'not saturated'} (mutating p99 "
                 f"{p99('mutatingP99Seconds')}, read p99 {p99('readP99Seconds')})."
                 if cp.get("mutatingP99Seconds") is not None else
                 "control plane saturation not judged (the run failed before its metrics were read).")]
    return L + goals(doc)


def goals(doc):
    """Issue 14's goals beside the figures above, and for a goal missed what holds it back."""
    after = doc["levers"].get(ADOPTED)
    if not after:
        return []
    idle, loaded = after["idle"]["perCluster"], after.get("loaded", {}).get("perCluster")
    heap, cpu, k = doc.get("heap"), doc.get("cpu"), doc.get("capacity")
    runs = loaded_runs(doc)
    share = lambda part, c: f"{c[part]['privateMiB']:g} of {c['total']['privateMiB']:g} MiB is {part}'s"
    specs = (f"a kube-apiserver that builds its OpenAPI specs on first request: their {heap['openapiSpecsMiB']:g} "
             f"MiB of live heap are about {heap['openapiSpecsMiB'] * 1.5:.0f} MiB at GOGC=50"
             if heap and heap.get("openapiSpecsMiB") else "the apiserver's heap profile (`--heap`)")
    top = lambda areas: max(areas.items(), key=lambda kv: kv[1])
    rows = [("idle cluster, private", "≤ 150 MiB", f"{idle['total']['privateMiB']:g} MiB",
             idle["total"]["privateMiB"] <= 150,
             f"{share('apiserver', idle)}" + (f"; its live heap {heap['liveHeapMiB']:g} MiB, of it "
                                              f"{top(heap['areasMiB'])[0]} {top(heap['areasMiB'])[1]:g} MiB" if heap else ""),
             specs)]
    if k:
        t = k["idle"]["perCluster"]["total"]
        rows.append((f"idle cluster, PSS with {k['started']} up", "≤ 150 MiB", f"{t['pssMiB']:g} MiB",
                     t["pssMiB"] <= 150 and k["started"] >= 100,
                     "private memory, as above (the binaries' pages are shared among the clusters)", specs))
    rows.append(("idle cluster, CPU", "≤ 5 mvCPU", f"{idle['total']['mvcpu']:g} mvCPU", idle["total"]["mvcpu"] <= 5,
                 f"apiserver {idle['apiserver']['mvcpu']:g}, kine {idle['kine']['mvcpu']:g}, controller-manager "
                 f"{idle['controller-manager']['mvcpu']:g}" + (
                     f"; the apiserver's largest area by pprof: {top(cpu['areasMvcpu'])[0]} "
                     f"{top(cpu['areasMvcpu'])[1]:g} of {cpu['apiserverMvcpu']:g} mvCPU" if cpu else ""),
                 "the apiserver's own periodic loops (the pprof areas above" + (
                     f"; {heap['goroutines']} goroutines, each watch cache's and informer's timers" if heap else "")
                 + "): fewer informers, so fewer resources watched (a watch cache dropped while its resource is "
                 "still watched sends that watch to kine: see `watchCache`); kube-controller-manager's node monitor ticks every second "
                 "(`--node-monitor-period=1s`: it lifts new Nodes' not-ready taint on the binding path)"))
    if loaded:
        rows.append(("1,000 Pods, private", "≤ 300 MiB", f"{loaded['total']['privateMiB']:g} MiB",
                     loaded["total"]["privateMiB"] <= 300, share("apiserver", loaded), specs))
    if k:
        rows.append(("idle clusters started, up 10 min, stopped cleanly", "≥ 100",
                     f"{k['started']} up {k['heldSeconds']} s"
                     + (f" ({k['readyAtEnd']} ready at its end)" if k.get("readyAtEnd") is not None else "")
                     + f", restarts {k['restarts']}, "
                     f"{'stopped cleanly' if k['stoppedCleanly'] else 'NOT stopped cleanly'}",
                     k["started"] >= 100 and k["heldSeconds"] >= 600 and k["stoppedCleanly"] and not k["restarts"]
                     and not k.get("exitedDuringHold") and k.get("readyAtEnd", k["started"]) == k["started"],
                     k.get("stoppedStartingBecause") or f"MemAvailable {k['memAvailableGiBWithAll']:g} GiB with all up",
                     capacity_lever(k, idle, after["clusters"])))
    if runs:
        r = runs[-1]
        rows.append((f"{r['clusters']} x {r['objectsPerCluster']:,} Pods, every SLO, no restarts", "pass",
                     f"{'PASSED' if r['passed'] else 'FAILED'} (`{r['runId']}`)",
                     r["passed"] and r["clusters"] >= 8 and not r.get("componentRestarts"),
                     r.get("reason") or "; ".join(
                         ([f"ramp {r['rampPerCluster']:g} Pods/s per cluster"] if r.get("rampPerCluster") else [])
                         + [f"passed with the simulated control plane saturated: {', '.join(cp['evidence'])}"
                            for cp in [r.get("controlPlane") or {}] if cp.get("saturated")]),
                     "the run's report (its control plane's latencies, each component's CPU)"))
    return ["", f"## The goals against the figures (`{ADOPTED}`, the default for the reference SUT)", "",
            "| goal | target | measured | met | what holds it back | next lever |", "|---|---|---|---|---|---|"] + [
        f"| {g} | {t} | {m} | {'yes' if ok else 'no'} | {why} | {'–' if ok else nxt} |"
        for g, t, m, ok, why, nxt in rows]


def capacity_lever(k, idle, side_by_side):
    """What `target` idle clusters would need of the machine at the figures measured: the
    resource they overrun is the lever."""
    cpu = idle["total"]["mvcpu"] * k["target"] / 1000
    mem = k["memAvailableDropMiBPerCluster"] * k["target"] / 1024
    have = [f"CPU: {k['target']} clusters at {idle['total']['mvcpu']:g} mvCPU each ({side_by_side} side by side) need "
            f"{cpu:.1f} cores" + (f" of the machine's {k['cpus']}" if k.get("cpus") else ""),
            f"memory: at {k['memAvailableDropMiBPerCluster']:g} MiB each they take {mem:.1f} GiB"
            + (f" of its {k['memTotalGiB']:g}" if k.get("memTotalGiB") else "")]
    return "; ".join(have) + ": the idle CPU and private memory levers above"


def write_markdown(doc, readme):
    """Re-renders results/bench/README.md, whose footprint section is markdown(doc)
    (bench_render.section_footprint), from the JSON beside it."""
    import bench_render

    bench_render.render(readme.parent)


def save(doc, out):
    doc["perCluster"] = per_cluster(doc)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")
    write_markdown(doc, out.parent / "README.md")


def main():
    global BIN, KEEP
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clusters", type=int, default=2)
    ap.add_argument("--pods", type=int, default=1000, help="Pods in cluster 0 for the loaded figures (0: idle only)")
    ap.add_argument("--lever", default=",".join(LEVERS), help=f"comma-separated, of {', '.join(LEVERS)}, all")
    ap.add_argument("--settle", type=int, default=30)
    ap.add_argument("--window", type=int, default=60)
    ap.add_argument("--out", type=Path, default=ROOT / "results/bench/footprint.json")
    ap.add_argument("--store-as", help="the key to store one lever's figures under (a repeat: baselineRepeat)")
    ap.add_argument("--render", action="store_true", help="only rewrite the README section from --out")
    ap.add_argument("--record-run", type=Path,
                    help="record a scaletest-runner run's summary.json as the loaded capacity attempt")
    ap.add_argument("--heap", action="store_true",
                    help="instead of the levers: kube-apiserver's live heap by area with --lever's one lever")
    ap.add_argument("--keep-profile", type=Path, help="--heap / --cpu: also copy the raw pprof file into this directory")
    ap.add_argument("--cpu", action="store_true",
                    help="instead of the levers: an idle kube-apiserver's CPU by area with --lever's one lever")
    ap.add_argument("--capacity", type=int, default=0,
                    help="instead of the levers: start this many idle clusters with --lever's one lever")
    ap.add_argument("--hold", type=int, default=600, help="--capacity: seconds every cluster must stay up")
    ap.add_argument("--floor-gib", type=float, default=4.0, help="--capacity: stop starting under this MemAvailable")
    a = ap.parse_args()
    KEEP = a.keep_profile
    exit_once_on((signal.SIGTERM,), "terminated")  # so every cluster is stopped
    BIN = bin_dir()
    names = a.lever.split(",")
    combined = {}
    for n in names:
        if n != "all" and n not in LEVERS:
            sys.exit(f"--lever: unknown lever {n!r}, expected one of {', '.join(LEVERS)}, all")
    for change in [LEVERS[n] for n in ["controllers", "apiGroups", "watchCache", "admission", "gogc"]]:
        for prog, c in change.items():
            m = combined.setdefault(prog, {"args": [], "env": {}})
            m["args"] += [x for x in c.get("args", []) if x not in m["args"]]
            m["env"].update(c.get("env", {}))
    doc = json.loads(a.out.read_text()) if a.out.exists() else {}
    doc.setdefault("levers", {})
    if a.render:
        return save(doc, a.out)
    if a.record_run:
        facts = run_facts(a.record_run)
        runs = [r for r in loaded_runs(doc) if r["runId"] != facts["runId"]]
        doc["capacityLoaded"] = runs + [facts]
        save(doc, a.out)
        return log(f"capacityLoaded: {facts}")
    if not (TARGET / "scaletest-cluster").exists():
        sys.exit(f"{TARGET / 'scaletest-cluster'} missing: run `cargo build --release --workspace --bins` "
                 "(or point SCALETEST_TARGET_DIR at a build)")
    if a.heap:
        n = names[0]
        doc["heap"] = heap_profile(n, combined if n == "all" else LEVERS[n], a.settle)
        save(doc, a.out)
        log(f"heap: {doc['heap']}")
        return
    if a.cpu:
        n = names[0]
        doc["cpu"] = cpu_profile(n, combined if n == "all" else LEVERS[n], a.settle)
        save(doc, a.out)
        return log(f"cpu: {doc['cpu']}")
    if a.capacity:
        n = names[0]
        if doc.get("capacity"):  # an earlier attempt stays in the README beside the new one
            doc.setdefault("capacityEarlier", []).append(doc["capacity"])
        doc["capacity"] = capacity(n, combined if n == "all" else LEVERS[n], a.capacity, a.hold, a.window,
                                   a.floor_gib)
        save(doc, a.out)
        log(f"capacity: {json.dumps(doc['capacity'])[:600]}")
        return
    for n in names:
        res = one_lever(n, combined if n == "all" else LEVERS[n], a.clusters, a.pods, a.settle, a.window)
        res["date"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        res["loadAverage1m"] = round(os.getloadavg()[0], 1)
        doc["levers"][a.store_as or n] = res
        save(doc, a.out)
    log(f"wrote {a.out}")


if __name__ == "__main__":
    main()
