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

Every figure is a count or a ratio of two things measured in the same invocation:
absolute times drift on a shared 2-core machine. Writes results/bench/<name>.json and
regenerates results/bench/README.md from every JSON there.

  scripts/bench.py [--quick] [--only create,binding,overhead,capacity]
  make bench [QUICK=1]

Needs the release build (`cargo build --release --workspace --bins`), the upstream
binaries (`make upstream`) and kube-burner (`scripts/upstream.sh bench`); make bench
does all three.
"""
import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import benchprof

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("SCALETEST_TARGET_DIR", ROOT / "target/release"))
OUT = ROOT / "results/bench"  # the quick size writes to OUT / "quick", never over the full figures
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
DENSITY = 100
POD_CPU, POD_MEMORY = "100m", "128Mi"
IMAGE = "registry.invalid/scaletest:fake"  # the load-driver's; kwok never pulls it
NAMESPACES = 10

# Process classes, by executable name.
CONTROL_PLANE = {"kube-apiserver": "apiserver", "kine": "kine", "kube-scheduler": "kube-scheduler",
                 "kube-controller-manager": "controller-manager", "kwok": "kwok"}
HARNESS = {"scaletest-load-driver": "load-driver", "scaletest-node-creator": "node-creator",
           "scaletest-pod-shim": "pod-shim", "scaletest-sut": "sut", "scaletest-cluster": "supervisor"}
OTHER = {"prometheus": "prometheus", "scaletest-runner": "runner", "kube-burner": "kube-burner"}
CLASSES = {**CONTROL_PLANE, **HARNESS, **OTHER}

# Every process group this script started, torn down on any exit path.
_groups = set()


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def upstream_bin(name, make_target):
    d = subprocess.run([str(ROOT / "scripts/upstream.sh"), "bin-dir"], capture_output=True, text=True).stdout.strip()
    p = Path(d) / name
    if not p.exists():
        sys.exit(f"{p} missing: run `{make_target}` first")
    return p


def our_bin(name):
    p = TARGET / name
    if not p.exists():
        sys.exit(f"{p} missing: run `cargo build --release --workspace --bins` (make bench does)")
    return p


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(cmd, log_path, cwd=None):
    """Starts cmd in its own process group (so teardown reaches all of it)."""
    f = open(log_path, "ab")
    p = subprocess.Popen([str(c) for c in cmd], stdout=f, stderr=subprocess.STDOUT, cwd=cwd,
                         start_new_session=True)
    f.close()
    _groups.add(p.pid)
    return p


def stop(p, grace=120):
    """SIGTERM to the leader (it stops its children in order), then SIGKILL to the group."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    if p.poll() is None:
        p.wait(timeout=10)
    _groups.discard(p.pid)


def kill_all_groups(*_):
    """On any exit: SIGTERM every group we started (leaders tear down their children in
    order: the runner its clusters, a supervisor its control plane), then SIGKILL what is left."""
    for g in list(_groups):
        try:
            os.killpg(g, signal.SIGTERM)
        except ProcessLookupError:
            _groups.discard(g)
    deadline = time.monotonic() + 120
    while _groups and time.monotonic() < deadline:
        for g in list(_groups):
            try:
                os.killpg(g, 0)
            except ProcessLookupError:
                _groups.discard(g)
        time.sleep(0.5)
    for g in list(_groups):
        try:
            os.killpg(g, signal.SIGKILL)
        except ProcessLookupError:
            pass
    _groups.clear()


def wait_rusage(p):
    """Reaps p and returns (exit status, CPU seconds user+system, peak RSS MiB) from the kernel."""
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    _groups.discard(p.pid)
    return p.returncode, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def tail(path, lines=15):
    """The end of a log, for an error message (temp dirs are gone by the time it is read)."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def go_duration(text):
    """Seconds in a Go duration string such as 1m5s, 21s or 850ms."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    return round(sum(float(v) * units[u] for v, u in re.findall(r"([0-9.]+)(ms|us|µs|ns|h|m|s)", text)), 3)


def scrape(addr, timeout=5):
    return urllib.request.urlopen(f"http://{addr}/metrics", timeout=timeout).read().decode()


def metric_sum(text, name):
    """Sum of every series of `name` (any labels)."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---------------------------------------------------------------- /proc sampling

def proc_stat(pid):
    """(ppid, cpu seconds, rss bytes, start time in ticks) of pid from /proc/<pid>/stat."""
    s = Path(f"/proc/{pid}/stat").read_text()
    f = s[s.rindex(")") + 2:].split()
    return int(f[1]), (int(f[11]) + int(f[12])) / CLK, int(f[21]) * PAGE, int(f[19])


def exe_name(pid):
    try:
        return os.path.basename(os.readlink(f"/proc/{pid}/exe")).removesuffix(" (deleted)")
    except OSError:
        return Path(f"/proc/{pid}/comm").read_text().strip()


class Sampler:
    """Samples CPU and RSS of every descendant of `root` every `interval` s.

    CPU per class is the sum over its processes of their last cumulative CPU (processes
    that exited keep their last sample); RSS per class is the sum over its live processes
    at one instant, so its peak is a simultaneous peak. `mark(tag)` snapshots the CPU
    totals, so a window's CPU is the difference of two marks.
    """

    def __init__(self, root, interval=0.5):
        self.root, self.interval = root, interval
        self.cpu = {}  # (pid, start time) -> (class, cpu s): a reused pid is another process
        self.classes = {}  # pid -> its last class, for attributing profile samples
        self.rss_samples = []  # (t, {class: bytes})
        self.marks = {}
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def sample(self):
        parent = {}
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    parent[int(d)] = proc_stat(int(d))
                except (OSError, ValueError, IndexError):
                    pass
        children = {}
        for pid, (ppid, _, _, _) in parent.items():
            children.setdefault(ppid, []).append(pid)
        todo, tree = [self.root], []
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children.get(pid, []))
        rss = {}
        with self.lock:
            for pid in tree:
                if pid not in parent:
                    continue
                # Classified on every sample: a child seen between fork and exec still
                # runs the supervisor's image, and must not keep that class once it execs.
                try:
                    cls = CLASSES.get(exe_name(pid), "other")
                except OSError:
                    continue
                _, cpu, r, start = parent[pid]
                self.cpu[(pid, start)] = (cls, cpu)
                self.classes[pid] = cls
                rss[cls] = rss.get(cls, 0) + r
            self.rss_samples.append((time.monotonic() - self.t0, rss))

    def run(self):
        while not self.stop_ev.is_set():
            try:
                self.sample()
            except OSError:
                pass
            self.stop_ev.wait(self.interval)

    def cpu_by_class(self):
        with self.lock:
            out = {}
            for cls, cpu in self.cpu.values():
                out[cls] = out.get(cls, 0.0) + cpu
            return out

    def mark(self, tag):
        self.sample()
        self.marks[tag] = (time.monotonic() - self.t0, self.cpu_by_class())

    def finish(self):
        self.stop_ev.set()
        self.thread.join()

    def window(self, start, end):
        """{class: {cpuSeconds, vcpu, rssMeanMiB, rssPeakMiB}} between two marks."""
        (t0, c0), (t1, c1) = self.marks[start], self.marks[end]
        secs = max(t1 - t0, 1e-6)
        samples = [r for t, r in self.rss_samples if t0 <= t <= t1] or [self.rss_samples[-1][1]]
        out = {}
        for cls in sorted(set(c1) | {k for s in samples for k in s}):
            cpu = c1.get(cls, 0.0) - c0.get(cls, 0.0)
            series = [s.get(cls, 0) / 2**20 for s in samples]
            out[cls] = {"cpuSeconds": round(cpu, 2), "vcpu": round(cpu / secs, 3),
                        "rssMeanMiB": round(sum(series) / len(series), 1), "rssPeakMiB": round(max(series), 1)}
        return {"seconds": round(secs, 1), "classes": out}


class Profile:
    """A CPU profile (perf, see benchprof.py) of every process the sampler sees, from
    start() to finish(); finish() returns its summary for the JSON (None without perf)
    and writes it as text to results/bench/profiles/<name>.txt."""

    def __init__(self, tmp, name, sampler):
        self.name, self.sampler = name, sampler
        self.rec = benchprof.Recorder(Path(tmp) / f"{name}.perf.data")

    def start(self):
        self.rec.start()
        if self.rec.proc:
            _groups.add(self.rec.proc.pid)
        elif os.environ.get("BENCH_PROFILE", "1") != "0":
            log(f"{self.name}: no CPU profile: perf or go not found (`scripts/upstream.sh bench` installs perf)")
        return self

    def stop(self):
        return self.rec.stop()

    def finish(self):
        if not self.stop():
            return None
        self.sampler.sample()  # a process started since the last sample still gets its class
        summary = benchprof.summarize(self.rec.path, lambda pid: self.sampler.classes.get(pid))
        PROFILE_DIR.mkdir(parents=True, exist_ok=True)
        (PROFILE_DIR / f"{self.name}.txt").write_text(benchprof.text_report(self.name, summary) + "\n")
        self.rec.path.unlink(missing_ok=True)
        return summary


# ---------------------------------------------------------------- one simulated cluster

class Cluster:
    """One `scaletest-cluster` (no profile: control plane + node-creator or pod-shim)."""

    def __init__(self, tmp, name, *args):
        self.data = Path(tmp) / name
        self.data.mkdir(parents=True)
        self.proc = spawn([our_bin("scaletest-cluster"), "--name", name, "--data-dir", self.data, *args],
                          Path(tmp) / f"{name}.supervisor.log")
        ep = self.data / "endpoints.json"
        deadline = time.monotonic() + 300
        while not ep.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                stop(self.proc)
                sys.exit(f"cluster {name} did not start:\n{tail(Path(tmp) / f'{name}.supervisor.log')}")
            time.sleep(0.1)
        self.endpoints = json.loads(ep.read_text())
        self.kubeconfig = self.endpoints["kubeconfig"]

    def addr(self, component):
        return next(c for c in self.endpoints["components"] if c["name"] == component)["metrics"]["address"]

    def kubectl(self, *args, stdin=None, check=True):
        r = subprocess.run([str(KUBECTL), "--kubeconfig", self.kubeconfig, *args], input=stdin,
                           capture_output=True, text=True, timeout=600)
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args[:3])}: {r.stderr.strip()[:500]}")
        return r

    def wait_default_sa(self):
        for _ in range(600):
            if self.kubectl("get", "sa", "default", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("no default ServiceAccount after 120 s")

    def nodes(self, count):
        """count fake Nodes (through node-creator), waited for."""
        items = [{"apiVersion": "scaletest.dev/v1alpha1", "kind": "UpcomingNode",
                  "metadata": {"name": f"bench-{i:04d}"},
                  "spec": {"allocatable": {"cpu": "10", "memory": "12800Mi", "pods": str(DENSITY)}}}
                 for i in range(count)]
        self.kubectl("create", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
        addr = self.addr("node-creator")
        for _ in range(1200):
            if metric_sum(scrape(addr), "scaletest_node_creator_nodes_created_total") >= count:
                return
            time.sleep(0.25)
        raise RuntimeError(f"node-creator did not make {count} Nodes in 300 s")

    def storage_latency(self, resource):
        """Mean seconds of the apiserver's POSTs of `resource`, and of the storage (kine)
        creates inside them, since the cluster started (its own histograms)."""
        text = self.kubectl("get", "--raw", "/metrics").stdout

        def mean(name, *sel):
            s = n = 0.0
            for line in text.splitlines():
                if all(x in line for x in sel):
                    if line.startswith(name + "_sum{"):
                        s += float(line.rsplit(" ", 1)[1])
                    elif line.startswith(name + "_count{"):
                        n += float(line.rsplit(" ", 1)[1])
            return round(s / n, 4) if n else None

        return {"apiserverPostMeanSeconds": mean("apiserver_request_duration_seconds", 'verb="POST"',
                                                 f'resource="{resource}"'),
                "storageCreateMeanSeconds": mean("etcd_request_duration_seconds", 'operation="create"',
                                                 f'resource="{resource}"')}

    def count(self, resource, selector, want):
        """Objects matching selector, polled until `want` (the list is served from the
        apiserver's watch cache, which can trail the last acknowledged create) or 30 s."""
        deadline = time.monotonic() + 30
        while True:
            got = len(self.kubectl("get", resource, "-A", "-l", selector, "-o", "name").stdout.split())
            if got >= want or time.monotonic() > deadline:
                return got
            time.sleep(2)

    def stop(self):
        stop(self.proc)


# ---------------------------------------------------------------- 1. create throughput

CM_DATA = {"payload": "scaletest-bench-0123456789abcdef"}


def ld_profile(kind, n, concurrency):
    """The load-driver's profile: every object in one burst, QPS limit lifted."""
    lp = {"objectsPerCluster": n, "namespaces": NAMESPACES, "qps": 1_000_000, "burst": concurrency,
          "pod": {"cpu": POD_CPU, "memory": POD_MEMORY}, "phases": [{"burst": {"count": n}}]}
    if kind == "configmaps":
        lp["kind"] = "manifest"
        lp["template"] = "configmap.yaml"
        del lp["pod"]
    return {"name": f"bench-create-{kind}", "kwok": {"clusterCount": 1}, "loadProfile": lp,
            "costEstimate": {"awsSpotUsdPerHour": 0, "vcpu": 1, "memoryGb": 1, "hours": 0.1}}


def run_load_driver(c, tmp, kind, n, concurrency):
    d = Path(tmp) / "load-driver"
    d.mkdir()
    (d / "configmap.yaml").write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                                  "metadata": {"name": "{{name}}"}, "data": CM_DATA}) + "\n")
    prof = ld_profile(kind, n, concurrency)
    profile_path = d / f"{prof['name']}.yaml"  # the profile's name is its file name
    profile_path.write_text(json.dumps(prof) + "\n")
    addr = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    p = spawn([our_bin("scaletest-load-driver"), "--kubeconfig", c.kubeconfig, "--profile", profile_path,
               "--run-id", "bench", "--metrics-addr", addr], d / "load-driver.log")
    created = errors = 0.0
    deadline = t0 + 900
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"load-driver exited early:\n{tail(d / 'load-driver.log')}")
        try:
            text = scrape(addr, timeout=2)
            created = metric_sum(text, "scaletest_load_driver_created_total")
            errors = metric_sum(text, "scaletest_load_driver_errors_total")
        except OSError:
            pass
        if created >= n:
            break
        time.sleep(0.05)
    wall = time.monotonic() - t0
    p.send_signal(signal.SIGTERM)
    _, cpu, rss = wait_rusage(p)
    if created < n:
        raise RuntimeError(f"load-driver created {created:.0f} of {n} in 900 s:\n{tail(d / 'load-driver.log')}")
    resource = "configmaps" if kind == "configmaps" else "pods"
    return {"seconds": round(wall, 2), "cpuSeconds": round(cpu, 2), "peakRssMiB": round(rss, 1),
            "inFlight": concurrency, "errors": errors, "objectsInCluster": c.count(resource, "scaletest-run=bench", n)}


def run_kube_burner(c, tmp, kind, n):
    d = Path(tmp) / "kube-burner"
    d.mkdir()
    # YAML, as kube-burner's templates are written (it renders them as Go templates first).
    if kind == "configmaps":
        obj = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: configmap-{{.Iteration}}\ndata:\n" + "".join(
            f"  {k}: {v}\n" for k, v in CM_DATA.items())
    else:
        obj = ("apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod-{{.Iteration}}\nspec:\n"
               "  automountServiceAccountToken: false\n  terminationGracePeriodSeconds: 0\n"
               f"  containers:\n  - name: app\n    image: {IMAGE}\n    resources:\n"
               f"      requests: {{cpu: {POD_CPU}, memory: {POD_MEMORY}}}\n")
    (d / "object.yaml").write_text(obj)
    job = {"name": f"create-{kind}", "jobType": "create", "jobIterations": n,
           "qps": 1_000_000, "burst": 1_000_000,
           "namespace": "kube-burner", "namespacedIterations": True, "iterationsPerNamespace": n // NAMESPACES,
           "cleanup": False, "podWait": False, "waitWhenFinished": False, "verifyObjects": False,
           "errorOnVerify": False, "preLoadImages": False,
           "objects": [{"objectTemplate": "object.yaml", "replicas": 1}]}
    (d / "config.yaml").write_text(json.dumps({"global": {"gc": False, "measurements": []}, "jobs": [job]}) + "\n")
    logf = d / "kube-burner.log"
    t0 = time.monotonic()
    p = spawn([KUBE_BURNER, "init", "-c", "config.yaml", "--kubeconfig", c.kubeconfig, "--uuid", "bench",
               "--log-level", "info"], logf, cwd=d)
    # wait4 blocks: a watchdog kills the group if it outlives the bound.
    bound = int(os.environ.get("BENCH_PEER_TIMEOUT", "1800"))
    timer = threading.Timer(bound, lambda: os.killpg(p.pid, signal.SIGKILL))
    timer.start()
    try:
        code, cpu, rss = wait_rusage(p)
    finally:
        timer.cancel()
    wall = time.monotonic() - t0
    timed_out = code == -signal.SIGKILL and wall >= bound
    if code != 0 and not timed_out:
        raise RuntimeError(f"kube-burner exited {code}:\n{tail(logf)}")
    text = logf.read_text(errors="replace")
    took = re.findall(r"Job \S+ took (\S+)\"", text)
    # What went wrong, by message with names and numbers blanked out.
    kinds = {}
    for m in re.findall(r'level=error msg="((?:[^"\\]|\\.)*)"', text):
        k = re.sub(r"[0-9]+", "N", m.replace('\\"', "'"))[:160]
        kinds[k] = kinds.get(k, 0) + 1
    resource = "configmaps" if kind == "configmaps" else "pods"
    return {"seconds": round(wall, 2), "cpuSeconds": round(cpu, 2), "peakRssMiB": round(rss, 1),
            "errors": len(re.findall(r"level=error", text)),
            "errorKinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])[:4]),
            "jobSecondsReported": go_duration(took[-1]) if took else None,
            "timedOutAfterSeconds": bound if timed_out else None,
            "objectsInCluster": c.count(resource, f"kube-burner-job=create-{kind}", n)}


def bench_create(quick):
    n = 2000 if quick else 10_000
    concurrency = int(os.environ.get("BENCH_LD_CONCURRENCY", "100"))
    result = {"benchmark": "create", "objects": n, "namespaces": NAMESPACES, "loadDriverInFlight": concurrency,
              "kinds": {}}
    for kind in ("configmaps", "pods"):
        row = {}
        # Alternate the order so neither tool always gets the cooler machine.
        order = ("load-driver", "kube-burner") if kind == "configmaps" else ("kube-burner", "load-driver")
        if kind == "configmaps":
            # The mechanism: our driver with kube-burner's concurrency (every object in flight at once).
            order += ("load-driver-unbounded",)
        for tool in order:
            with tempfile.TemporaryDirectory(prefix="scaletest-bench-") as tmp:
                log(f"create: {n} {kind} with {tool} (fresh cluster)")
                c = Cluster(tmp, "c", "--apiserver-limits", "unlimited")
                try:
                    c.wait_default_sa()
                    if kind == "pods":
                        c.nodes(math.ceil(n / DENSITY))
                    sampler = Sampler(os.getpid())
                    prof = Profile(tmp, f"create-{kind}-{tool}", sampler).start()
                    try:
                        if tool.startswith("load-driver"):
                            r = run_load_driver(c, tmp, kind, n, n if tool.endswith("unbounded") else concurrency)
                        else:
                            r = run_kube_burner(c, tmp, kind, n)
                    finally:
                        summary = prof.finish()
                        sampler.finish()
                    if summary:
                        r["profile"] = summary
                    r.update(c.storage_latency(kind))
                    r["loadAverage1m"] = round(os.getloadavg()[0], 1)  # the machine is shared: context for the figure
                finally:
                    c.stop()
            # A peer run stopped at its time bound is credited with what it had stored.
            done = r["objectsInCluster"] if r.get("timedOutAfterSeconds") else n
            r["objectsPerSecond"] = round(done / r["seconds"], 1)
            r["cpuMsPerObject"] = round(1000 * r["cpuSeconds"] / n, 3)
            log(f"  {tool}: {r}")
            row[tool] = r
        ours, peer = row["load-driver"], row["kube-burner"]
        row["ratios"] = {"rate": round(ours["objectsPerSecond"] / peer["objectsPerSecond"], 2),
                         "cpu": round(ours["cpuSeconds"] / max(peer["cpuSeconds"], 1e-3), 2),
                         "peakRss": round(ours["peakRssMiB"] / max(peer["peakRssMiB"], 1e-3), 2)}
        result["kinds"][kind] = row
    return result


# ---------------------------------------------------------------- runner runs (2, 3, 4)

def runner_run(tmp, profile, timeout, cpu_profile=False):
    """Runs one profile with scaletest-runner while sampling every process under it.

    Returns the summary plus the harness/control-plane CPU and RSS in the loaded window
    (load gate open → teardown) and the steady-state window (steady → teardown), and with
    cpu_profile a perf profile of the loaded window."""
    d = Path(tmp) / profile["name"]
    d.mkdir()
    path = d / f"{profile['name']}.yaml"  # the profile's name is its file name
    path.write_text(json.dumps(profile) + "\n")
    out = d / "run"
    p = subprocess.Popen([str(our_bin("scaletest-runner")), "run", "--profile", str(path), "--output", str(out),
                          "--max-duration", f"{timeout}s"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    _groups.add(p.pid)
    s = Sampler(p.pid)
    s.mark("start")
    prof = Profile(tmp, profile["name"], s) if cpu_profile else None
    prof_summary = None
    runner_log = []
    try:
        for line in p.stdout:
            runner_log.append(line)
            if line.startswith("[steady] waiting"):
                s.mark("gate")
                if prof:
                    prof.start()
            elif line.startswith("[soak]") and "soak" not in s.marks:
                s.mark("soak")
            elif line.startswith("[teardown]") and "teardown" not in s.marks:
                s.mark("teardown")
                if prof:
                    prof.stop()
        p.wait(timeout=timeout + 300)
        if prof and "teardown" in s.marks:
            prof_summary = prof.finish()
    finally:
        if prof:
            prof.stop()
        s.finish()
        stop(p)
    (d / "runner.log").write_text("".join(runner_log))
    summary_path = out / "summary.json"
    if not summary_path.exists():
        raise RuntimeError(f"runner wrote no summary (exit {p.returncode}): {''.join(runner_log[-15:])}")
    summary = json.loads(summary_path.read_text())
    res = {"summary": summary, "exitCode": p.returncode, "restarts": restarts(out)}
    if prof_summary:
        res["profile"] = prof_summary
    if "gate" in s.marks and "teardown" in s.marks:
        res["loaded"] = s.window("gate", "teardown")
    if "soak" in s.marks and "teardown" in s.marks:
        res["soak"] = s.window("soak", "teardown")
    return res


def restarts(out):
    """Every component restart in a run's logs: which component, how it exited, and the
    first panic or fatal line of its log (the run's directory is temporary). Reads the
    supervisor's "exited; restarting" line (crates/scaletest-cluster/src/process.rs)."""
    found = []
    for sup in sorted(Path(out).glob("logs/*/scaletest-cluster.log")):
        for line in sup.read_text(errors="replace").splitlines():
            m = re.search(r'exited; restarting component="([^"]+)" status=(.*?) backoff', line)
            if not m:
                continue
            why, stack = None, []
            comp_log = sup.parent / f"{m.group(1)}.log"
            if comp_log.exists():
                lines = comp_log.read_text(errors="replace").splitlines()
                at = next((i for i, l in enumerate(lines) if l.startswith(("panic:", "fatal error:", "F1", "F0"))), None)
                if at is not None:
                    # The panic and the top of its goroutine's stack: enough to file upstream.
                    why, stack = lines[at].strip()[:300], [l.strip()[:200] for l in lines[at + 1:at + 14] if l.strip()]
            found.append({"cluster": sup.parent.name, "component": m.group(1), "status": m.group(2), "firstFatal": why,
                          "stack": stack or None})
    return found


def base_profile(name, clusters, objects, scheduler, phases, soak, steady_timeout, qps=50, burst=100):
    return {
        "name": name,
        "kwok": {"clusterCount": clusters},
        "harness": {"scheduler": scheduler, "density": DENSITY},
        "loadProfile": {"kind": "pods", "objectsPerCluster": objects, "namespaces": 1, "qps": qps,
                        "burst": burst, "pod": {"cpu": POD_CPU, "memory": POD_MEMORY}, "phases": phases},
        "costEstimate": {"awsSpotUsdPerHour": 0, "vcpu": 1, "memoryGb": 1, "hours": 0.1},
        "durations": {"soak": soak, "steadyStateTimeout": steady_timeout},
    }


def brief_summary(r):
    m = r["summary"]["metrics"]
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in {
        "passed": r["summary"]["passed"], "reason": r["summary"].get("reason"),
        "bindingP50Seconds": m.get("bindingLatencyP50Seconds"), "bindingP99Seconds": m.get("bindingLatencyP99Seconds"),
        "apiserverRequestP99Seconds": m.get("apiserverRequestP99Seconds"), "objectsActive": m.get("objectsActive"),
        "nodesCreated": m.get("nodesCreated"), "steadyStateSeconds": r["summary"].get("phases", {}).get("steadyState"),
        "componentRestarts": m.get("componentRestarts"), "objectsLost": m.get("objectsLost"),
        "restarts": r.get("restarts") or None,
    }.items()}


# ---------------------------------------------------------------- 2. binding

def binding_sizes(quick):
    if os.environ.get("BENCH_BINDING_SIZES"):
        return [int(x) for x in os.environ["BENCH_BINDING_SIZES"].split(",") if x]
    # 50K Pods take 10-20 min per binder here: only when asked (BENCH_BINDING_SIZES=10000,50000).
    return [2000] if quick else [10_000]


def bench_binding(quick):
    # A binder still short of every Pod at this bound is credited with what it had bound.
    steady_timeout = os.environ.get("BENCH_BIND_TIMEOUT", "40m")
    result = {"benchmark": "binding", "sizes": {}, "binderWorkers": 16}
    for n in binding_sizes(quick):
        row = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
        for sched in ("pod-shim", "kube-scheduler"):
            with tempfile.TemporaryDirectory(prefix="scaletest-bench-") as tmp:
                log(f"binding: {n} Pods with {sched} (runner, reference SUT)")
                prof = base_profile(f"bench-bind-{sched}-{n}", 1, n, sched, [{"burst": {"count": n}}], "10s",
                                    steady_timeout, qps=1_000_000, burst=100)
                prof["loadProfile"]["namespaces"] = NAMESPACES
                prof["harness"]["apiserverLimits"] = "unlimited"
                r = runner_run(tmp, prof, timeout=int(go_duration(steady_timeout)) + 1200, cpu_profile=True)
            b = brief_summary(r)
            if "profile" in r:
                b["profile"] = r["profile"]
            b["loadAverage1m"] = round(os.getloadavg()[0], 1)
            steady = b["steadyStateSeconds"]
            short = re.search(r"steady state not reached within \S+: .*?\(([0-9.]+) active, ([0-9.]+) bound",
                              b.get("reason") or "")
            if steady:
                b["podsBoundPerSecond"] = round(n / steady, 1)
            elif short:
                b["timedOutAfterSeconds"] = go_duration(steady_timeout)
                b["podsBoundAtTimeout"] = int(float(short.group(2)))
                b["podsBoundPerSecond"] = round(b["podsBoundAtTimeout"] / b["timedOutAfterSeconds"], 1)
            else:
                b["podsBoundPerSecond"] = None
            if "loaded" in r:
                cl = r["loaded"]["classes"]
                b["binderCpuSeconds"] = cl.get(sched, {}).get("cpuSeconds")
                b["apiserverCpuSeconds"] = cl.get("apiserver", {}).get("cpuSeconds")
                b["kineCpuSeconds"] = cl.get("kine", {}).get("cpuSeconds")
                b["window"] = r["loaded"]
            log(f"  {sched}: { {k: v for k, v in b.items() if k not in ('window', 'profile')} }")
            row[sched] = b
        ours, peer = row["pod-shim"], row["kube-scheduler"]
        row["ratios"] = {"podsBoundPerSecond": round(ours["podsBoundPerSecond"] / peer["podsBoundPerSecond"], 2)
                         if ours["podsBoundPerSecond"] and peer["podsBoundPerSecond"] else None,
                         "bindingP99": round(ours["bindingP99Seconds"] / peer["bindingP99Seconds"], 2)
                         if ours["bindingP99Seconds"] and peer["bindingP99Seconds"] else None}
        result["sizes"][str(n)] = row
    return result


# ---------------------------------------------------------------- 3. overhead

def dev5k_ramp():
    """dev-5k's ramp (Pods/s per cluster), read from its profile so the bench follows it."""
    m = re.search(r"ramp:\s*\{\s*rate:\s*([0-9.]+)\s*\}", (ROOT / "profiles" / "dev-5k.yaml").read_text())
    if not m:
        sys.exit("bench: profiles/dev-5k.yaml has no `ramp: {rate: N}` phase to copy")
    return float(m.group(1))


def dev5k_like(name, clusters, objects=1000, steady="2m", soak="2m"):
    return base_profile(name, clusters, objects, "kube-scheduler",
                        [{"ramp": {"rate": dev5k_ramp()}}, {"steady": {"duration": steady, "churnPercent": 5,
                                                             "churnInterval": "30s"}}], soak, "10m")


def split(window):
    cl = window["classes"]
    cp = {k: cl[k] for k in CONTROL_PLANE.values() if k in cl}
    hs = {k: cl[k] for k in HARNESS.values() if k in cl}
    tot = lambda d, f: round(sum(v[f] for v in d.values()), 2)
    return cp, hs, {f: {"controlPlane": tot(cp, f), "harness": tot(hs, f)} for f in ("cpuSeconds", "vcpu", "rssMeanMiB")}


def bench_overhead(quick):
    clusters = 1 if quick else 5
    with tempfile.TemporaryDirectory(prefix="scaletest-bench-") as tmp:
        log(f"overhead: dev-5k-like load ({clusters} cluster(s) x 1000 Pods, kube-scheduler, reference SUT)")
        prof = dev5k_like("bench-overhead", clusters, steady="1m" if quick else "2m", soak="30s" if quick else "2m")
        r = runner_run(tmp, prof, timeout=1800, cpu_profile=True)
    if "loaded" not in r:
        raise RuntimeError("overhead: the runner never opened the load gate")
    w = r["loaded"]
    cp, hs, totals = split(w)
    c = totals["cpuSeconds"]
    m = totals["rssMeanMiB"]
    res = {"benchmark": "overhead", "clusters": clusters, "objectsPerCluster": 1000, "run": brief_summary(r),
           "windowSeconds": w["seconds"], "classes": w["classes"], "totals": totals,
           "profile": r.get("profile"),
           "harnessCpuShareOfControlPlane": round(c["harness"] / c["controlPlane"], 3),
           "harnessRssShareOfControlPlane": round(m["harness"] / m["controlPlane"], 3),
           "perCluster": {
               "vcpu": round((totals["vcpu"]["controlPlane"] + totals["vcpu"]["harness"]) / clusters, 3),
               "rssMiB": round((m["controlPlane"] + m["harness"]) / clusters, 1),
               "fakeNodes": 1000 // DENSITY}}
    pc = res["perCluster"]
    res["perFakeNode"] = {"vcpu": round(pc["vcpu"] / pc["fakeNodes"], 4), "rssMiB": round(pc["rssMiB"] / pc["fakeNodes"], 1)}
    res["references"] = {"seedPerCluster": {"vcpu": 0.4, "rssMiB": 0.5 * 1000 ** 3 / 2**20},
                         "kubemarkPerHollowNode": {"vcpu": 0.09, "rssMiB": 220}}
    res["ratios"] = {"perClusterVcpuVsSeed": round(pc["vcpu"] / 0.4, 2),
                     "perClusterRssVsSeed": round(pc["rssMiB"] / (0.5 * 1000 ** 3 / 2**20), 2),
                     "perFakeNodeVcpuVsKubemark": round(res["perFakeNode"]["vcpu"] / 0.09, 3),
                     "perFakeNodeRssVsKubemark": round(res["perFakeNode"]["rssMiB"] / 220, 3)}
    return res


# ---------------------------------------------------------------- 4. capacity

def idle_clusters(count, settle):
    """Starts `count` bare clusters one after another; RSS and CPU of all of them idle."""
    with tempfile.TemporaryDirectory(prefix="scaletest-bench-") as tmp:
        clusters = []
        try:
            for i in range(count):
                clusters.append(Cluster(tmp, f"idle-{i}"))
                log(f"capacity: idle cluster {i + 1}/{count} ready")
            time.sleep(settle)
            pids = [c.proc.pid for c in clusters]
            # One sampler per supervisor tree, marked over the same window.
            samplers = [Sampler(p, interval=1.0) for p in pids]
            for s in samplers:
                s.mark("a")
            time.sleep(settle)
            for s in samplers:
                s.mark("b")
                s.finish()
            windows = [s.window("a", "b") for s in samplers]
            mem = {l.split(":")[0]: int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines()}
        finally:
            for c in clusters:
                c.stop()
    rss = [sum(v["rssMeanMiB"] for v in w["classes"].values()) for w in windows]
    cpu = [sum(v["vcpu"] for v in w["classes"].values()) for w in windows]
    return {"clusters": count, "rssMiBPerCluster": round(sum(rss) / count, 1),
            "vcpuPerCluster": round(sum(cpu) / count, 4), "memAvailableGiBWithAll": round(mem["MemAvailable"] / 2**20, 1),
            "memTotalGiB": round(mem["MemTotal"] / 2**20, 1), "idleSeconds": settle}


def budget_rule():
    """The runner's local budget constants, read from crates/runner/src/estimate.rs."""
    src = (ROOT / "crates/runner/src/estimate.rs").read_text()
    num = lambda name: re.search(rf"{name}: f64 = ([0-9.]+)", src).group(1)
    return {"gibPerCluster": float(num("LOCAL_GIB_PER_CLUSTER")), "kibPerObject": float(num("LOCAL_GIB_PER_OBJECT")),
            "memoryShare": float(num("LOCAL_MEMORY_SHARE"))}


def bench_capacity(quick):
    res = {"benchmark": "capacity", "search": []}
    tried = set()

    def attempt(tmp, clusters, objects):
        tried.add((clusters, objects))
        log(f"capacity: {clusters} cluster(s) x {objects} Pods (dev-5k shape, every SLO)")
        prof = dev5k_like(f"bench-capacity-{clusters}x{objects}", clusters, objects, steady="1m", soak="1m")
        r = runner_run(tmp, prof, timeout=1800)
        b = brief_summary(r)
        b.update({"clusters": clusters, "objectsPerCluster": objects, "loadAverage1m": round(os.getloadavg()[0], 1)})
        if "loaded" in r:
            w = r["loaded"]
            b["vcpuTotal"] = round(sum(v["vcpu"] for k, v in w["classes"].items() if k not in OTHER.values()), 2)
            b["rssMiBTotal"] = round(sum(v["rssMeanMiB"] for k, v in w["classes"].items() if k not in OTHER.values()), 1)
        log(f"  {b}")
        res["search"].append(b)
        return b["passed"]

    # First the largest per-cluster size one cluster passes at (dev-5k's 1,000 first), then
    # double clusterCount at that size until a run fails, then one bisection step. Bounded.
    sizes = [200, 100] if quick else [1000, 500, 200]
    limit = int(os.environ.get("BENCH_CAPACITY_RUNS", "4" if quick else "6"))
    objects, passed, failed = None, 0, None
    with tempfile.TemporaryDirectory(prefix="scaletest-bench-") as tmp:
        for o in sizes:
            if attempt(tmp, 1, o):
                objects, passed = o, 1
                break
        while objects and len(tried) < limit:
            nxt = passed * 2 if failed is None else (passed + failed) // 2
            if nxt <= passed or (nxt, objects) in tried or (failed is not None and nxt >= failed):
                break
            if attempt(tmp, nxt, objects):
                passed = nxt
            else:
                failed = nxt
    res.update({"objectsPerCluster": objects or sizes[-1], "largestPassingClusters": passed,
                "firstFailingClusters": failed, "largestPassingObjects": passed * (objects or 0)})
    objects = objects or sizes[-1]
    idle = idle_clusters(2 if quick else 6, 20 if quick else 30)
    budget = 0.8 * idle["memTotalGiB"] * 1024
    idle["memoryBoundClusters"] = int(budget // idle["rssMiBPerCluster"])
    idle["cpuBoundClusters"] = int(os.cpu_count() // idle["vcpuPerCluster"]) if idle["vcpuPerCluster"] else None
    res["idle"] = idle
    # What crates/runner/src/estimate.rs admits locally at this size.
    rule = budget_rule()
    per = rule["gibPerCluster"] + objects * rule["kibPerObject"] / 2**20
    res["budgetRule"] = {**rule, "gibPerClusterAtSize": round(per, 3),
                         "admitsClusters": int(rule["memoryShare"] * idle["memTotalGiB"] // per)}
    return res


# ---------------------------------------------------------------- the table

def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, float):
        v = f"{v:.3g}" if abs(v) < 10 else f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.1f}"
    return f"{v}{unit}"


# Since then the supervisor runs kine with a bounded pool and a busy timeout above the
# apiserver's request timeout; figures from before are not comparable.
KINE_FIXES = "2026-11-30 17:00 UTC"


def before_fixes(date):
    return (", before the kine fixes of 2026-11-30 (section 1's notes): not comparable with the sections "
            "measured after them" if date and date < KINE_FIXES else "")


def paragraphs(ps):
    """Markdown lines: each paragraph followed by a blank line."""
    return [x for p in ps for x in (p, "")]


def prof_cpu(r, cls):
    """CPU seconds of a class from its profile's sample count (perf samples at benchprof.FREQ Hz)."""
    x = (r or {}).get("profile", {}).get(cls)
    return x["samples"] / benchprof.FREQ if x else None


def prof_says(r, cls, activities=3, top=0):
    """'SQLite 50 %, runtime 28 %, …' for a class in a run's profile ('' without one)."""
    x = (r or {}).get("profile", {}).get(cls)
    if not x:
        return ""
    acts = [(a, v) for a, v in x["activities"].items() if a != "other"][:activities]
    text = "; ".join(f"{a} {v:.0f} %" for a, v in acts)
    if top:
        text += "; top functions " + ", ".join(f"`{f}` {v:.0f} %" for f, v in x["top"][:top])
    return text


def vcpu(r, cls):
    """A class's mean vCPU over a create run, from its profile."""
    cpu = prof_cpu(r, cls)
    return cpu / r["seconds"] if cpu is not None and r.get("seconds") else None


def entry(r, cls, activity):
    """The commonest place a class entered an activity (outermost frame ← its caller)."""
    es = (r or {}).get("profile", {}).get(cls, {}).get("entries", {}).get(activity)
    return es[0][0] if es else None


def http2_client():
    """Whether our binaries can speak HTTP/2 at all (kube-rs needs the `h2` crate for it)."""
    return re.search(r'(?m)^name = "h2"$', (ROOT / "Cargo.lock").read_text()) is not None


def explain_create(c):
    """The why of section 1, from the figures and each run's CPU profile (profiles/)."""
    cm = c["kinds"].get("configmaps", {})
    ours, peer, unb = cm.get("load-driver"), cm.get("kube-burner"), cm.get("load-driver-unbounded")
    out = [f"The explanations below use the {c['objects']:,}-ConfigMap rows unless they say otherwise; CPU "
           "splits come from each run's profile (`perf record` of every process at 49 Hz, summarised in "
           "[profiles/](profiles/): per process, the share by activity, the top functions and where each "
           "activity was entered)."]
    if not (ours and peer):
        return out
    runs = [r for row in c["kinds"].values() for t, r in row.items() if t != "ratios" and r.get("profile")]
    totals = [sum(x["samples"] for x in r["profile"].values()) / benchprof.FREQ / r["seconds"] for r in runs]
    cp = lambda r: (vcpu(r, "apiserver") or 0) + (vcpu(r, "kine") or 0)
    if totals:
        api = [vcpu(r, "apiserver") or 0 for r in runs]
        kine = [vcpu(r, "kine") or 0 for r in runs]
        ratio = c["kinds"]["configmaps"]["ratios"]
        out.append(
            f"**Where the limit is.** Every create run used the whole machine (its processes' profile samples add "
            f"up to {min(totals):.1f}–{max(totals):.1f} of the 2 cores); the apiserver alone {min(api):.2f}–{max(api):.2f} "
            f"vCPU and kine {min(kine):.2f}–{max(kine):.2f}. The rate is what the control plane does with the CPU the "
            f"driver leaves it, not what either client can send. With the load-driver the apiserver's CPU went to "
            f"{prof_says(ours, 'apiserver', 5)}; kine's to {prof_says(ours, 'kine', 3)}. kube-burner took "
            f"{vcpu(peer, 'kube-burner') or 0:.2f} vCPU for its creates, the load-driver {vcpu(ours, 'load-driver') or 0:.2f}; "
            f"the apiserver and kine got {cp(ours):.2f} vCPU during the load-driver's run and {cp(peer):.2f} during "
            f"kube-burner's ({cp(ours) / max(cp(peer), 1e-6):.2f}×), about the {ratio['rate']}× in rate. "
            "A client cannot be 1.5× faster than another "
            f"when both already leave the apiserver most of the machine; the goal's CPU half "
            f"({ratio['cpu']}× kube-burner's CPU) is where the load-driver's lead shows.")
    if ours.get("storageCreateMeanSeconds") is not None and peer.get("storageCreateMeanSeconds") is not None:
        out.append(
            f"**Latency.** A ConfigMap POST took {peer['apiserverPostMeanSeconds']:.2f} s on average with "
            f"kube-burner, of which {peer['storageCreateMeanSeconds']:.2f} s waiting on storage (kine), against "
            f"{ours['apiserverPostMeanSeconds']:.3f} s / {ours['storageCreateMeanSeconds']:.3f} s with the "
            "load-driver: kube-burner bounds only the request rate, so with the QPS limit lifted every object is "
            "in flight at once (one goroutine each) and the requests queue for kine's SQLite writer; the "
            f"load-driver keeps its `burst` ({ours['inFlight']}) in flight and gets the same throughput without the queue.")
    tls = lambda r, cls: (r or {}).get("profile", {}).get(cls, {}).get("activities", {}).get("TLS and crypto", 0)
    cpu = (f"**CPU.** Per object the load-driver spends {ours['cpuMsPerObject']} ms of CPU against kube-burner's "
           f"{peer['cpuMsPerObject']} ms. kube-burner's goes to {prof_says(peer, 'kube-burner', 4)} (it renders a Go "
           "template and decodes YAML per object and runs a goroutine per object through client-go); the "
           f"load-driver's to {prof_says(ours, 'load-driver', 4)}. The apiserver spent {tls(peer, 'apiserver'):.0f} % "
           f"of its CPU in TLS and crypto serving kube-burner"
           + (f" (most of it entered through `{entry(peer, 'apiserver', 'TLS and crypto')}`)"
              if entry(peer, 'apiserver', 'TLS and crypto') else "")
           + f", {tls(ours, 'apiserver'):.0f} % serving the load-driver.")
    if unb:
        cpu += (f" With every object in flight at once the load-driver costs {unb['cpuMsPerObject']} ms per object "
                f"({unb['cpuSeconds'] / max(peer['cpuSeconds'], 1e-3):.2f}× kube-burner's CPU, "
                f"{unb['peakRssMiB'] / max(peer['peakRssMiB'], 1e-3):.1f}× its memory) and {tls(unb, 'load-driver'):.0f} % "
                f"of it is TLS"
                + (f": kube-rs speaks HTTP/1.1 here (no `h2` in Cargo.lock), so each request in flight holds its own "
                   f"TLS connection, {unb['inFlight']:,} handshakes where client-go multiplexes HTTP/2 streams over a "
                   "few connections" if not http2_client() else "")
                + ". The load-driver bounds its in-flight requests (`burst`) so that it never runs in this regime.")
    out.append(cpu)
    short = [(k, t, r) for k, row in c["kinds"].items() for t, r in row.items()
             if isinstance(r, dict) and "objectsInCluster" in r and r["objectsInCluster"] < c["objects"]
             and not r.get("timedOutAfterSeconds")]
    gave_up = [(k, t, r) for k, t, r in short if r.get("errors")]
    if gave_up:
        out.append("**Creates given up.** " + "; ".join(
            f"{t} stored {r['objectsInCluster']:,} of {c['objects']:,} {k} after {r['errors']:,.0f} logged errors "
            "(timeouts and refusals it retried, some until it gave up)" for k, t, r in gave_up) + ".")
    short = [x for x in short if not x[2].get("errors")]
    if short:
        listed = ", ".join(f"{t} {k}: {r['objectsInCluster']:,} of {c['objects']:,}" for k, t, r in short)
        out.append(
            f"**Objects acknowledged but not listed.** After these runs a list of the run's objects (polled for "
            f"30 s) returned fewer than the tool had acknowledged ({listed}), with no error reported to either "
            "tool. The cause is in kine v0.17.5: a create whose insert waits out SQLite's busy timeout fails with "
            "SQLITE_BUSY and is rolled back, and `LogStructured.Create` then reads the key back, finds nothing and "
            "returns no error, so the apiserver answers 201 for an object that was never stored (its id is reused "
            "by the next insert, so kine's ids run without a gap). With a 1 s busy timeout 4,451 of 5,000 "
            "ConfigMaps sent at once were lost this way. The supervisor now sets the busy timeout (120 s) above the "
            "apiserver's request timeout (60 s), so the request's cancellation ends a long wait first and the "
            "client sees an error it retries. The load-driver also looks up any object its watch has not seen "
            "for 30 s and creates a missing one again, counted in `summary.json`'s `objectsLost`.")
    pods = c["kinds"].get("pods", {})
    if pods.get("kube-burner"):
        kinds = pods["kube-burner"].get("errorKinds", {})
        sa = sum(v for k, v in kinds.items() if "service account" in k or "serviceaccount" in k)
        pl = pods.get("load-driver")
        sched = prof_cpu(pl, "kube-scheduler")
        out.append(
            "**Pods are slower for both** than ConfigMaps: each Pod is also bound by kube-scheduler and its status "
            "written by kwok while the creates run, three to four writes per Pod on the same SQLite file"
            + (f" (in the load-driver's Pod run kube-scheduler took {sched:.0f} CPU s and kwok "
               f"{prof_cpu(pl, 'kwok') or 0:.0f} of the run's {pl['seconds']:.0f} s on 2 cores)" if sched else "") + "."
            + (f" kube-burner also creates Pods into namespaces it has just made, before the controller-manager "
               f"has made their `default` ServiceAccount: {sa:,} creates were refused for that and retried after "
               f"its 1 s backoff. The load-driver waits for the ServiceAccount before its first Pod." if sa else ""))
    return out


def explain_binding(b):
    out = []
    harness = ROOT / "results/harness-bench.json"
    hb = json.loads(harness.read_text()).get("podShim", {}).get("bindsPerSecond") if harness.exists() else None
    p99s = [x.get("bindingP99Seconds") or 0 for row in b["sizes"].values() for k, x in row.items()
            if k in ("pod-shim", "kube-scheduler")]
    if any(v > 120 for v in p99s):
        out.append("Binding latencies are Prometheus `histogram_quantile`s over the load-driver's buckets (… 30, 60, "
                   "120, 300 s): a p99 above 120 s is interpolated inside the 120–300 s bucket, so it can exceed "
                   "the run's steady-state time, and a ratio of two such values is coarse.")
    for n, row in b["sizes"].items():
        shim, ks = row["pod-shim"], row["kube-scheduler"]
        if shim.get("binderCpuSeconds") is None or ks.get("binderCpuSeconds") is None:
            continue
        n = int(n)
        w = shim.get("window", {}).get("classes", {})
        api, kine = w.get("apiserver", {}), w.get("kine", {})
        cores = (api.get("vcpu", 0) + kine.get("vcpu", 0))
        out.append(
            f"**{n:,} Pods: where ours saturates, and why.** Not in the binder: pod-shim spent "
            f"{shim['binderCpuSeconds']} CPU s on {n:,} binds ({1000 * shim['binderCpuSeconds'] / n:.2f} ms per Pod, "
            f"{w.get('pod-shim', {}).get('vcpu', 0):.2f} vCPU with 16 workers), kube-scheduler {ks['binderCpuSeconds']} CPU s "
            f"({1000 * ks['binderCpuSeconds'] / n:.2f} ms per Pod, mostly preemption: below). In the pod-shim run "
            f"the apiserver ran at {api.get('vcpu', 0):.2f} vCPU and kine at {kine.get('vcpu', 0):.2f} vCPU over the "
            f"window, {cores:.2f} of the machine's 2 cores (the rest went to the other components and to other work on the machine): the "
            f"control plane's write path is the ceiling"
            + (f" (the apiserver's profile: {prof_says(shim, 'apiserver', 5)})" if prof_says(shim, "apiserver") else "")
            + ". Per Pod the apiserver spent "
            f"{1000 * api.get('cpuSeconds', 0) / n:.0f} ms of CPU and kine {1000 * kine.get('cpuSeconds', 0) / n:.0f} ms: a "
            "create, an Unschedulable status write before its Node exists, a binding and kwok's status updates, each "
            "fanned out to five watchers and serialised by kine's single SQLite writer. "
            + (f"kube-scheduler reaches {1 / row['ratios']['podsBoundPerSecond']:.2f}× pod-shim's rate: its parked "
               "Pods go through the backoff queue (1 s doubling to 10 s) where pod-shim retries them the moment a "
               f"Node appears, and its apiserver p99 was {fmt(ks['apiserverRequestP99Seconds'])} s against "
               f"{fmt(shim['apiserverRequestP99Seconds'])} s. " if row["ratios"].get("podsBoundPerSecond") else "")
            + (f"With a backlog, Nodes already there and no other writers, pod-shim binds {hb:,.0f} Pods/s "
               "([harness-bench.md](../harness-bench.md))." if hb else "")
            + (f" The seed's pod-shim saturated its 256 binder workers above 30,000 objects (p99 102 s); here 16 "
               f"workers bound {n:,} Pods at {shim['podsBoundPerSecond']} Pods/s using "
               f"{w.get('pod-shim', {}).get('vcpu', 0):.2f} vCPU: the workers are not what limits it; the "
               "apiserver (the largest consumer) and the chain's pace of provisioning Nodes for a backlog that "
               "arrives all at once are." if n >= 30_000 else ""))
        ks_w = ks.get("window", {}).get("classes", {})
        kp = ks.get("profile", {}).get("kube-scheduler")
        if ks_w.get("kine") and kp:
            acts = kp["activities"]
            pre = [(f, v) for f, v in kp["top"] if "preemption" in f]
            out.append(
                f"**Why kube-scheduler costs so much more here: preemption.** Over its run kube-scheduler used "
                f"{ks_w.get('kube-scheduler', {}).get('vcpu', 0):.2f} vCPU ({1000 * ks['binderCpuSeconds'] / n:.0f} ms per "
                f"Pod); its profile puts {acts.get('scheduling (framework and plugins)', 0):.0f} % in the scheduling "
                f"framework and {acts.get('allocation and GC', 0):.0f} % in allocation and GC"
                + (", and its top functions are the DefaultPreemption plugin's dry run ("
                   + ", ".join(f"`{f.rsplit('/', 1)[-1]}` {v:.0f} %" for f, v in pre) + " of its samples by self time)"
                   if pre else "")
                + ". Every failed attempt of a Pod that does not fit runs PostFilter: a dry run on every Node "
                "(`DryRunPreemption` stops early only once it has enough candidates, and here there are none) "
                "that builds a victim entry for every Pod on it and compares priorities, although every Pod in "
                "this bench has the same priority and no victim can exist. With thousands of Pods parked before "
                "their Nodes exist, each retried on every Node event and at the end of its backoff, that search and "
                "the garbage it makes are most of kube-scheduler's CPU; pod-shim has no preemption and tries a "
                "parked Pod once per new Node. Each failed attempt also writes the Pod's PodScheduled=False status "
                f"(kine: {ks_w['kine']['cpuSeconds'] / n * 1000:.0f} ms of CPU per Pod against "
                f"{kine.get('cpuSeconds', 0) / n * 1000:.0f} ms in pod-shim's run; apiserver p99 "
                f"{fmt(ks['apiserverRequestP99Seconds'])} s against {fmt(shim['apiserverRequestP99Seconds'])} s). "
                "A workload whose Pods set `preemptionPolicy: Never` skips the search; the load-driver's Pods "
                "keep the default, as real workloads do.")
    rs = [(int(n), sched, x["restarts"]) for n, row in b["sizes"].items() for sched, x in row.items()
          if sched in ("pod-shim", "kube-scheduler") and x.get("restarts")]
    if rs:
        out.append("**Restarts during the runs.** " + "; ".join(
            f"{sched} at {n:,} Pods: " + ", ".join(
                f"{r['component']} exited ({r['status']}{': ' + r['firstFatal'] if r.get('firstFatal') else ''})"
                for r in restarts_)
            for n, sched, restarts_ in rs)
            + ". The supervisor restarted each and the run went on. `panic: send on closed channel` is a "
            "kube-apiserver crash seen only under load here; its stack (kept in capacity.json's 8-cluster run) "
            "ends in `go.etcd.io/etcd/client/v3.(*watchGRPCStream).broadcastResponse` (watch.go:747, v3.7.0), "
            "where the etcd client broadcasts a progress notification (watch id -1, which kine sends in answer "
            "to the apiserver's progress requests for consistent reads from its cache) to a watch substream it "
            "has already closed: an upstream race, not filed from here.")
    if "50000" not in b["sizes"]:
        out.append(
            "**50,000 Pods: not measured here.** At the rates above one 50K run takes 12–30 min per binder on this "
            "machine; `BENCH_BINDING_SIZES=50000 scripts/bench.py --only binding` runs it. The seed saw its 256 binder "
            "workers saturate above 30K objects (p99 102 s); ours use 16 workers at a few percent of a core at "
            "10K, so we expect the apiserver, not the workers, to set the 50K figure too — unverified.")
    return out


def explain_overhead(o):
    cl = o["classes"]
    hs = sorted(((k, v) for k, v in cl.items() if k in HARNESS.values()), key=lambda kv: -kv[1]["cpuSeconds"])
    top = ", ".join(f"{k} {v['cpuSeconds']} CPU s / {v['rssMeanMiB']:.0f} MiB" for k, v in hs[:3])
    api = cl.get("apiserver", {})
    cpu_ok = o["harnessCpuShareOfControlPlane"] <= 0.10
    rss_ok = o["harnessRssShareOfControlPlane"] <= 0.15
    return [
        f"**The harness is {'within' if cpu_ok and rss_ok else 'outside'} its goal** "
        f"({o['harnessCpuShareOfControlPlane'] * 100:.1f} % CPU, {o['harnessRssShareOfControlPlane'] * 100:.1f} % RSS of "
        f"the control plane it drives); its largest parts: {top}. The apiserver alone is "
        f"{api.get('cpuSeconds', 0) / max(o['totals']['cpuSeconds']['controlPlane'], 1e-6) * 100:.0f} % of the control "
        f"plane's CPU and {api.get('rssMeanMiB', 0):.0f} MiB: it serves the writes and fans every Pod change out to five "
        "watchers (controller-manager, scheduler, kwok, the SUT, the load-driver), each of which also keeps a copy.",
        f"**Against the cost models.** A loaded simulated cluster costs {o['perCluster']['vcpu']} vCPU and "
        f"{o['perCluster']['rssMiB']:.0f} MiB here, {o['ratios']['perClusterVcpuVsSeed']}× and "
        f"{o['ratios']['perClusterRssVsSeed']}× the seed's 0.4 vCPU / 0.5 GB. The vCPU figure is what the "
        f"processes got, not what they asked for: all {o['clusters']} cluster(s) together got "
        f"{o['totals']['vcpu']['controlPlane'] + o['totals']['vcpu']['harness']:.2f} of the 2 cores, with the "
        f"machine's load average at {o['machine']['loadAverageAtEnd']:.0f} at the end (the memory figure depends "
        "on that much less). Per fake Node it is "
        f"{o['ratios']['perFakeNodeVcpuVsKubemark']}× kubemark's CPU and {o['ratios']['perFakeNodeRssVsKubemark']}× "
        "its memory while carrying its own control plane; at density 100 a cluster has only "
        f"{o['perCluster']['fakeNodes']} Nodes, so the advantage grows with Nodes per cluster (a kwok Node is a few "
        "KiB of state, a hollow node a process)."
        + ("" if o["run"]["passed"] else f" The run itself failed ({o['run'].get('reason') or 'see its summary'}): "
           "see section 4."),
    ] + ([
        "**Where the harness's CPU goes** (its profile; release builds keep no frame pointers, so a Rust "
        "sample is named by its leaf function only and much of it stays unattributed): "
        + "; ".join(f"{k}: {prof_says(o, k, 3, top=2)}" for k, _ in hs[:3] if prof_says(o, k))
        + ". The control plane's: "
        + "; ".join(f"{k}: {prof_says(o, k, 3)}" for k in ("apiserver", "kine", "kube-scheduler") if prof_says(o, k))
        + "."] if o.get("profile") else [])


def memory_points(runs):
    """(objects in one cluster, MiB of control plane + harness) from every run that has both."""
    pts = []
    k = runs.get("capacity")
    if k:
        pts.append((0, k["idle"]["rssMiBPerCluster"], "idle"))
    o = runs.get("overhead")
    if o:
        pts.append((o["objectsPerCluster"], o["perCluster"]["rssMiB"], "overhead (mean)"))
    b = runs.get("binding")
    if b:
        for n, row in b["sizes"].items():
            for sched in ("pod-shim", "kube-scheduler"):
                w = row[sched].get("window", {}).get("classes", {})
                mib = sum(v["rssMeanMiB"] for c, v in w.items() if c in CONTROL_PLANE.values() or c in HARNESS.values())
                if mib:
                    pts.append((int(n), round(mib, 1), f"binding {sched} (mean)"))
    return pts


def explain_capacity(k, runs):
    out = []
    loads = [s.get("loadAverage1m") for s in k["search"] if s.get("loadAverage1m") is not None]
    used = [s.get("vcpuTotal") for s in k["search"] if s.get("vcpuTotal") is not None]
    rss = [s.get("rssMiBTotal") for s in k["search"] if s.get("rssMiBTotal") is not None]
    failed = [x for x in k["search"] if not x["passed"]]
    if failed:
        reasons = sorted({x.get("reason") or "no reason recorded" for x in failed})
        out.append(
            f"**What fails.** {len(failed)} of {len(k['search'])} loaded runs failed: " + "; ".join(reasons) + "."
            + (f" Our own processes used {min(used):.2f}–{max(used):.2f} vCPU of the two cores" if used else "")
            + (f" while the machine's 1-minute load average stood at {min(loads):.0f}–{max(loads):.0f}" if loads else "")
            + (f"; the largest run held {max(rss) / 1024:.1f} GiB (mean RSS) of {k['idle']['memTotalGiB']} GiB" if rss and k.get("idle") else "")
            + ". Where the binding tail comes from on a "
            "loaded cluster (the oldest Pods wait longest: a Pod created before its Node exists is marked "
            "unschedulable, the SUT provisions a Node, and kube-scheduler retries the Pod through its backoff and "
            "unschedulable queues while newer Pods take the fresh room) is written up with dev-5k's baseline in "
            "[results/README.md](../README.md).")
    pts = memory_points(runs)
    big = [p for p in pts if p[0] > 0]
    if k.get("idle") and big:
        idle = k["idle"]["rssMiBPerCluster"]
        slopes = [(mib - idle) * 1024 / n for n, mib, _ in big]
        slope = max(slopes)
        rule = budget_rule()
        allowed = lambda n: (rule["gibPerCluster"] * 1024 + n * rule["kibPerObject"] / 1024)
        over = [(n, mib, src) for n, mib, src in big if mib > allowed(n)]
        out.append(
            "**The runner's local budget rule** (`crates/runner/src/estimate.rs`, a cluster may plan "
            f"{rule['gibPerCluster']} GiB + {rule['kibPerObject']:.0f} KiB per object, within "
            f"{rule['memoryShare'] * 100:.0f} % of RAM) against the measurement: an idle cluster is {idle:.0f} MiB; "
            "loaded, "
            + "; ".join(f"{n:,} Pods: {mib:.0f} MiB measured, {allowed(n):.0f} MiB planned ({src})" for n, mib, src in big)
            + f". Above idle that is {min(slopes):.0f}–{slope:.0f} KiB per Pod (the smaller figure from the "
            "largest run; small runs carry the ramp's transient working set): every Pod sits in the apiserver's "
            "watch cache and in each of five watchers."
            + (" The rule under-plans " + "; ".join(f"{src} at {n:,} Pods ({mib:.0f} MiB against {allowed(n):.0f})"
                                                    for n, mib, src in over)
               + ": a scheduler that keeps retrying a large backlog holds more per Pod. Left as is: memory is not "
               "what limits loaded clusters here (CPU fails first, with a fraction of the RAM in use); a larger "
               "per-object term would also refuse larger local profiles, a trade-off not made here."
               if over else " The rule plans at least what every loaded run measured.")
            + " The idle term stands; memory binds first only for idle clusters.")
    return out


def render(out):
    runs = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json"))}
    quick = out != OUT
    loads = [r["machine"]["loadAverageAtEnd"] for r in runs.values() if "machine" in r]
    L = ["# Benchmarks: scaletest side by side with its peers" + (" (quick size)" if quick else ""), "",
         ("Written by `make bench QUICK=1`: small sizes, a few minutes per part, to check that the bench runs; "
          "the full figures are in [../README.md](../README.md)." if quick else
          "Written by `make bench` (`scripts/bench.py`); `make bench QUICK=1` writes the quick size to "
          "[quick/](quick/README.md)."),
         "Every figure is a count or a ratio of two things measured in the same invocation on the same machine "
         "(a 2-core / 24 GiB development machine); absolute times drift from run to run. The JSON records the "
         "1-minute load average at the end of each part and of each run"
         + (f" ({min(loads):.1f}–{max(loads):.1f} at the end of the parts below)" if loads else "")
         + ". No figure is a test assertion.", "",
         "Reproduce: `make bench` (full sizes: 10,000 objects for create, 10,000 Pods for binding, 5 clusters for",
         "overhead) or `make bench QUICK=1`; one part: `scripts/bench.py [--quick] --only create|binding|overhead|capacity`.",
         "Knobs: `BENCH_BINDING_SIZES` the binding sizes (10000; `50000` adds the large one, a size not run",
         "keeps its dated row), `BENCH_BIND_TIMEOUT` a binder's bound (40m), `BENCH_LD_CONCURRENCY` the",
         "load-driver's requests in flight (100), `BENCH_PEER_TIMEOUT` kube-burner's time bound (1800 s),",
         "`BENCH_PROFILE=0` no perf profiles. JSON: [create](create.json),",
         "[binding](binding.json), [overhead](overhead.json), [capacity](capacity.json).", ""]
    c = runs.get("create")
    if c and "kinds" in c:
        L += [f"## 1. Create throughput: load-driver vs kube-burner {c.get('peerVersion', '')}", "",
              f"{c['objects']:,} objects per run over {c['namespaces']} namespaces, each tool against its own fresh "
              f"simulated cluster (`--apiserver-limits unlimited`), QPS limit lifted on both sides (load-driver: "
              f"{c['loadDriverInFlight']} requests in flight; kube-burner: one goroutine per object, client-go over "
              f"HTTP/2). Rate = objects / (process start → last object acknowledged). CPU and peak RSS of the "
              f"driver process from the kernel (wait4 rusage). Measured {c['date']}{' (quick size)' if c['quick'] else ''}{before_fixes(c['date'])}.",
              "", "| objects | ours: objects/s | kube-burner: objects/s | rate ratio | ours: CPU s | kube-burner: CPU s "
              "| CPU ratio | ours: peak RSS MiB | kube-burner: peak RSS MiB |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for kind, row in c["kinds"].items():
            o, p, r = row["load-driver"], row["kube-burner"], row["ratios"]
            L.append(f"| {kind} | {fmt(o['objectsPerSecond'])} | {fmt(p['objectsPerSecond'])} | **{r['rate']}×** | "
                     f"{fmt(o['cpuSeconds'])} | {fmt(p['cpuSeconds'])} | **{r['cpu']}×** | {fmt(o['peakRssMiB'])} | "
                     f"{fmt(p['peakRssMiB'])} |")
        u = c["kinds"].get("configmaps", {}).get("load-driver-unbounded")
        if u:
            kb = c["kinds"]["configmaps"]["kube-burner"]
            L += ["", f"Same ConfigMaps, load-driver with every object in flight at once (kube-burner's concurrency): "
                      f"{fmt(u['objectsPerSecond'])} objects/s, **{u['objectsPerSecond'] / kb['objectsPerSecond']:.2f}×** "
                      f"kube-burner's rate, at {u['cpuSeconds'] / max(kb['cpuSeconds'], 1e-3):.2f}× its CPU."]
        L += [""] + paragraphs(explain_create(c) + c.get("notes", []))
    b = runs.get("binding")
    if b:
        L += ["## 2. Binding: pod-shim vs kube-scheduler", "",
              f"One simulated cluster (apiserver limits lifted), the reference SUT providing fake Nodes, the "
              f"load-driver creating the whole backlog at once; `scaletest-runner` measures. Pods bound/s = Pods / "
              f"(load gate open → every Pod bound; the runner polls every 2 s). pod-shim runs "
              f"{b['binderWorkers']} binder workers (the profile default). A binder still short of every Pod at "
              f"the run's steady-state timeout is credited with the Pods it had bound by then. Measured "
              + "; ".join(f"{int(n):,} Pods {row.get('date') or b['date']}" for n, row in b["sizes"].items())
              + f"{' (quick size)' if b['quick'] else ''}.", "",
              "| Pods | binder | Pods bound/s | binding p50 (s) | binding p99 (s) | apiserver p99 (s) | binder CPU s | apiserver CPU s |",
              "|---:|---|---:|---:|---:|---:|---:|---:|"]
        for n, row in b["sizes"].items():
            for s in ("pod-shim", "kube-scheduler"):
                x = row[s]
                rate = fmt(x["podsBoundPerSecond"]) + (
                    f" ({x['podsBoundAtTimeout']:,} of {int(n):,} bound at its {x['timedOutAfterSeconds'] / 60:.0f} min "
                    "timeout)" if x.get("timedOutAfterSeconds") else "")
                L.append(f"| {int(n):,} | {s} | {rate} | {fmt(x['bindingP50Seconds'])} | "
                         f"{fmt(x['bindingP99Seconds'])} | {fmt(x['apiserverRequestP99Seconds'])} | "
                         f"{fmt(x.get('binderCpuSeconds'))} | {fmt(x.get('apiserverCpuSeconds'))} |")
            ratio = lambda v: f"**{v}×**" if v is not None else "n/a"
            L.append(f"| {int(n):,} | **ratio** | {ratio(row['ratios']['podsBoundPerSecond'])} | | "
                     f"{ratio(row['ratios']['bindingP99'])} | | | |")
        L += [""] + paragraphs(explain_binding(b) + b.get("notes", []))
    o = runs.get("overhead")
    if o:
        t = o["totals"]
        L += ["## 3. Harness overhead at dev-5k load", "",
              f"{o['clusters']} cluster(s) × 1,000 Pods (dev-5k's per-cluster load: ramp {fmt(o.get('rampPerSecond', 50))}/s, 5 % churn every 30 s), "
              f"kube-scheduler, reference SUT; every process under the runner sampled from /proc every 0.5 s over "
              f"the loaded window (load gate → teardown, {o['windowSeconds']} s). Run verdict: "
              f"{'PASS' if o['run']['passed'] else 'FAIL'}. Measured {o['date']}{' (quick size)' if o['quick'] else ''}{before_fixes(o['date'])}.", "",
              "| process | CPU s | vCPU | mean RSS MiB |", "|---|---:|---:|---:|"]
        for k, v in sorted(o["classes"].items(), key=lambda kv: -kv[1]["cpuSeconds"]):
            side = "harness" if k in HARNESS.values() else "control plane" if k in CONTROL_PLANE.values() else "outside"
            L.append(f"| {k} ({side}) | {fmt(v['cpuSeconds'])} | {fmt(v['vcpu'])} | {fmt(v['rssMeanMiB'])} |")
        L += ["",
              f"Harness / control plane: **{o['harnessCpuShareOfControlPlane'] * 100:.1f} % CPU**, "
              f"**{o['harnessRssShareOfControlPlane'] * 100:.1f} % RSS** (goal ≤ 10 % / ≤ 15 %).", "",
              "| per simulated cluster | vCPU | RSS MiB | ratio to ours |", "|---|---:|---:|---:|",
              f"| ours, measured (control plane + harness, {o['perCluster']['fakeNodes']} fake Nodes) | "
              f"{o['perCluster']['vcpu']} | {o['perCluster']['rssMiB']} | 1 |",
              f"| seed's cost model | 0.4 | 477 | vCPU {o['ratios']['perClusterVcpuVsSeed']}×, RSS "
              f"{o['ratios']['perClusterRssVsSeed']}× of it |",
              f"| kubemark, {o['perCluster']['fakeNodes']} hollow nodes (0.09 vCPU / 220 MB each, no control plane) | "
              f"{0.09 * o['perCluster']['fakeNodes']:.2f} | {220 * o['perCluster']['fakeNodes']} | per Node ours is "
              f"{o['ratios']['perFakeNodeVcpuVsKubemark']}× the CPU, {o['ratios']['perFakeNodeRssVsKubemark']}× the RSS |",
              ""] + paragraphs(explain_overhead(o) + o.get("notes", []))
    k = runs.get("capacity")
    if k:
        L += ["## 4. Clusters per machine", "",
              f"Loaded: dev-5k's shape (ramp {fmt(k.get('rampPerSecond', 50))} Pods/s, 5 % churn every 30 s, 1 min steady, 1 min soak), every "
              f"default SLO judged. First the largest Pods per cluster one cluster passes at (1,000 first, then "
              f"smaller), then clusterCount doubled at that size until a run fails, then bisected (bounded). Measured "
              f"{k['date']}{' (quick size)' if k['quick'] else ''}{before_fixes(k['date'])}.", "",
              "| clusters | objects | verdict | binding p99 (s) | apiserver p99 (s) | vCPU used | RSS GiB |",
              "|---:|---:|---|---:|---:|---:|---:|"]
        for s in k["search"]:
            L.append(f"| {s['clusters']} | {s['clusters'] * s.get('objectsPerCluster', k['objectsPerCluster']):,} | "
                     f"{'PASS' if s['passed'] else 'FAIL'} | {fmt(s['bindingP99Seconds'])} | "
                     f"{fmt(s['apiserverRequestP99Seconds'])} | {fmt(s.get('vcpuTotal'))} | "
                     f"{fmt((s.get('rssMiBTotal') or 0) / 1024)} |")
        i = k["idle"]
        L += ["", f"Largest passing: **{k['largestPassingClusters']} cluster(s) × {k['objectsPerCluster']:,} = "
                  f"{k['largestPassingObjects']:,} Pods**" + (" (none passed: see below)" if not k['largestPassingClusters'] else "")
              + ".", "",
              f"Idle: {i['clusters']} bare clusters started side by side: {i['rssMiBPerCluster']} MiB and "
              f"{i['vcpuPerCluster']} vCPU each. Memory-bound at 80 % of {i['memTotalGiB']} GiB: "
              f"**{i['memoryBoundClusters']} idle clusters**; their idle CPU alone would fill both cores at "
              f"{i['cpuBoundClusters']}. The runner's local budget rule admits {k['budgetRule']['admitsClusters']} "
              f"such clusters ({k['budgetRule'].get('gibPerClusterAtSize', k['budgetRule']['gibPerCluster'])} GiB each at "
              f"{k['objectsPerCluster']:,} objects).", ""] + paragraphs(explain_capacity(k, runs) + k.get("notes", []))
    (out / "README.md").write_text("\n".join(L) + "\n")


PARTS = {"create": bench_create, "binding": bench_binding, "overhead": bench_overhead, "capacity": bench_capacity}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes: a few minutes per part")
    ap.add_argument("--only", default=",".join(PARTS), help="comma-separated parts: " + ", ".join(PARTS))
    ap.add_argument("--render", action="store_true", help="only regenerate results/bench/README.md from the JSON")
    a = ap.parse_args()
    out = OUT / "quick" if a.quick else OUT
    out.mkdir(parents=True, exist_ok=True)
    global PROFILE_DIR
    PROFILE_DIR = out / "profiles"
    if a.render:
        render(out)
        return
    parts = [p for p in a.only.split(",") if p]
    for p in parts:
        if p not in PARTS:
            sys.exit(f"unknown part {p}: one of {', '.join(PARTS)}")
    global KUBECTL, KUBE_BURNER
    KUBECTL = upstream_bin("kubectl", "make upstream")
    for b in ("scaletest-cluster", "scaletest-runner", "scaletest-load-driver"):
        our_bin(b)
    if "create" in parts:
        KUBE_BURNER = upstream_bin("kube-burner", "scripts/upstream.sh bench")
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))
    try:
        for p in parts:
            t0 = time.monotonic()
            r = PARTS[p](a.quick)
            prev = out / f"{p}.json"
            old = json.loads(prev.read_text()) if prev.exists() else {}
            notes = old.get("notes", [])  # hand-written findings (profiles) survive a rerun
            if p == "binding":
                # A size not measured this time (e.g. 50K) keeps its last row, dated.
                for n, row in old.get("sizes", {}).items():
                    r["sizes"].setdefault(n, {"date": old.get("date"), **row})
                r["sizes"] = dict(sorted(r["sizes"].items(), key=lambda kv: int(kv[0])))
            r.update({"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "quick": a.quick,
                      "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                                  "loadAverageAtEnd": os.getloadavg()[0]},
                      "benchSeconds": round(time.monotonic() - t0, 1), "notes": notes})
            if p in ("overhead", "capacity"):
                r["rampPerSecond"] = dev5k_ramp()
            if p == "create":
                r["peerVersion"] = Path(os.path.realpath(KUBE_BURNER)).parent.name.split("@")[-1]
            prev.write_text(json.dumps(r, indent=2) + "\n")
            log(f"{p}: wrote {prev}")
            render(out)
    except KeyboardInterrupt:
        sys.exit(130)
    finally:
        kill_all_groups()
    print((out / "README.md").read_text())


KUBECTL = KUBE_BURNER = None
PROFILE_DIR = OUT / "profiles"

if __name__ == "__main__":
    main()
