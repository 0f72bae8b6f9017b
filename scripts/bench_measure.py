"""The measuring half of `make bench` (scripts/bench.py runs it): each part starts real
simulated clusters, runs its tools and returns the figures as a dict that bench.py writes
to results/bench/<part>.json. Nothing here writes prose: bench_render.py does, from the
JSON alone.
"""
import json
import math
import os
import platform
import re
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
from bench_common import CLASSES, CONTROL_PLANE, HARNESS, OTHER, ROOT


TARGET = Path(os.environ.get("SCALETEST_TARGET_DIR", ROOT / "target/release"))
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
DENSITY = 100
POD_CPU, POD_MEMORY = "100m", "128Mi"
IMAGE = "registry.invalid/scaletest:fake"  # the load-driver's; kwok never pulls it
NAMESPACES = 10


# bench.py sets it: a part that measures row by row calls it with what it has so far.
CHECKPOINT = None

# Every process group this script started, torn down on any exit path.
_groups = set()


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def machine():
    """The machine a part ran on, for the rendered prose (no size is assumed there)."""
    mem = next((int(l.split()[1]) for l in open("/proc/meminfo") if l.startswith("MemTotal:")), 0)
    return {"cpus": os.cpu_count(), "memTotalGiB": round(mem / 2**20, 1), "kernel": platform.release(),
            "loadAverageAtEnd": os.getloadavg()[0]}


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
        """{class: {cpuSeconds, vcpu, rssMeanMiB, rssPeakMiB}} between two marks, and the
        largest RSS the cluster's own processes (all but OTHER's) held at one sample: a
        memory cgroup around them all sees that, not each class's peak summed."""
        (t0, c0), (t1, c1) = self.marks[start], self.marks[end]
        secs = max(t1 - t0, 1e-6)
        samples = [r for t, r in self.rss_samples if t0 <= t <= t1] or [self.rss_samples[-1][1]]
        out = {}
        for cls in sorted(set(c1) | {k for s in samples for k in s}):
            cpu = c1.get(cls, 0.0) - c0.get(cls, 0.0)
            series = [s.get(cls, 0) / 2**20 for s in samples]
            out[cls] = {"cpuSeconds": round(cpu, 2), "vcpu": round(cpu / secs, 3),
                        "rssMeanMiB": round(sum(series) / len(series), 1), "rssPeakMiB": round(max(series), 1)}
        together = max(sum(v for c, v in smp.items() if c not in OTHER.values()) for smp in samples) / 2**20
        return {"seconds": round(secs, 1), "classes": out, "rssPeakTogetherMiB": round(together, 1)}


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


def burst_profile(name, n, scheduler, soak, steady_timeout):
    """One cluster whose `n` Pods are created at once, nothing holding the load back (client
    QPS and the apiserver's in-flight limits lifted): the binding and rule parts."""
    prof = base_profile(name, 1, n, scheduler, [{"burst": {"count": n}}], soak, steady_timeout, qps=1_000_000,
                        burst=100)
    prof["loadProfile"]["namespaces"] = NAMESPACES
    prof["harness"]["apiserverLimits"] = "unlimited"
    return prof


def brief_summary(r):
    m = r["summary"]["metrics"]
    return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in {
        "passed": r["summary"]["passed"], "reason": r["summary"].get("reason"),
        "bindingP50Seconds": m.get("bindingLatencyP50Seconds"), "bindingP99Seconds": m.get("bindingLatencyP99Seconds"),
        "apiserverRequestP99Seconds": m.get("apiserverRequestP99Seconds"), "objectsActive": m.get("objectsActive"),
        "nodesCreated": m.get("nodesCreated"), "steadyStateSeconds": r["summary"].get("phases", {}).get("steadyState"),
        "componentRestarts": m.get("componentRestarts"), "objectsLost": m.get("objectsLost"),
        "restarts": r.get("restarts") or None,
        "invariantsBroken": sorted({f"{c['name']} {i['name']}" for c in r["summary"].get("clusters", [])
                                    for i in c.get("invariants", []) if not i["held"]}) or None,
    }.items()}


def not_a_point(run):
    """Why a loaded run's memory is not a working cluster's (None when it is): the chain
    never settled, lost acknowledged objects or restarted a component. Its SLOs may fail:
    a burst is not meant to meet them."""
    why = [w for w, bad in (
        ("no steady state", not run.get("steadyStateSeconds")),
        (f"{run.get('objectsLost'):.0f} acknowledged objects lost", (run.get("objectsLost") or 0) > 0),
        (f"{run.get('componentRestarts'):.0f} component restarts", (run.get("componentRestarts") or 0) > 0),
        ("invariants broken: " + ", ".join(run.get("invariantsBroken") or []), run.get("invariantsBroken")),
    ) if bad]
    return "; ".join(why) or None


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
                prof = burst_profile(f"bench-bind-{sched}-{n}", n, sched, "10s", steady_timeout)
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

def idle_clusters(count, settle, *args):
    """Starts `count` bare clusters (`args`: scaletest-cluster's flags) one after another;
    RSS and CPU of all of them idle."""
    with tempfile.TemporaryDirectory(prefix="scaletest-bench-") as tmp:
        clusters = []
        try:
            for i in range(count):
                clusters.append(Cluster(tmp, f"idle-{i}", *args))
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


def budget_rule(objects, mem_total_gib):
    """What the runner's local budget (crates/scaletest-core/src/footprint.rs) plans for one
    cluster of dev-5k's shape at `objects` Pods, asked of the runner itself."""
    with tempfile.TemporaryDirectory(prefix="scaletest-bench-") as tmp:
        prof = dev5k_like("bench-budget", 1, objects)
        path = Path(tmp) / "bench-budget.yaml"
        path.write_text(json.dumps(prof))  # JSON is YAML
        out = subprocess.run([str(our_bin("scaletest-runner")), "estimate", "--profile", str(path)],
                             capture_output=True, text=True).stdout
    m = re.search(r"per cluster .*?, ([0-9]+) MiB;", out)
    if not m:
        return None
    mib = float(m.group(1))
    return {"source": "crates/scaletest-core/src/footprint.rs", "mibPerClusterAtSize": mib, "memoryShare": 0.8,
            "admitsClusters": int(0.8 * mem_total_gib * 1024 // mib)}


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
    # What the runner's local budget admits at this size (Prometheus's share left out).
    res["budgetRule"] = budget_rule(objects, idle["memTotalGiB"])
    return res


# ---------------------------------------------------------------- 5. the footprint rule's points

def rule_sizes(quick):
    if os.environ.get("BENCH_RULE_SIZES"):
        return [int(x) for x in os.environ["BENCH_RULE_SIZES"].split(",") if x]
    # The rule's larger points come from the binding part; more sizes only when asked.
    return [1000]


def rule_modes():
    return [m for m in os.environ.get("BENCH_RULE_MODES", "lean,full").split(",") if m]


def bench_rule(quick):
    """The memory points of the runner's budget rule (crates/scaletest-core/src/footprint.rs),
    for each control plane (`harness.controlPlane`): one cluster's every process, control
    plane and harness (the runner and Prometheus left out), summed. Idle: bare clusters side
    by side, the mean. Loaded: N Pods created at once, bound by kube-scheduler onto the
    reference SUT's Nodes, over the run's loaded window (load gate to teardown): the mean of
    the sum and the sum of each class's peak (a limit must hold every process at its peak)."""
    res = {"benchmark": "rule", "points": {}}
    for mode in rule_modes():
        log(f"rule: idle {mode} clusters")
        idle = idle_clusters(2, 20 if quick else 30, "--control-plane", mode)
        rows = {"0": {"meanMiB": idle["rssMiBPerCluster"], "peakMiB": idle["rssMiBPerCluster"],
                      "vcpu": idle["vcpuPerCluster"], "clusters": idle["clusters"]}}
        res["points"][mode] = rows
        if CHECKPOINT:
            CHECKPOINT(res)
        for n in rule_sizes(quick):
            with tempfile.TemporaryDirectory(prefix="scaletest-bench-") as tmp:
                log(f"rule: {n} Pods in one {mode} cluster (kube-scheduler, reference SUT)")
                prof = burst_profile(f"bench-rule-{mode}-{n}", n, "kube-scheduler", "30s", "40m")
                prof["harness"]["controlPlane"] = mode
                r = runner_run(tmp, prof, timeout=int(go_duration("40m")) + 1200)
            if "loaded" not in r:
                raise RuntimeError(f"rule: {mode} {n}: the runner never opened the load gate")
            mine = {c: v for c, v in r["loaded"]["classes"].items() if c not in OTHER.values()}
            rows[str(n)] = {"meanMiB": round(sum(v["rssMeanMiB"] for v in mine.values()), 1),
                            "peakMiB": round(sum(v["rssPeakMiB"] for v in mine.values()), 1),
                            "peakTogetherMiB": r["loaded"]["rssPeakTogetherMiB"],
                            "windowSeconds": r["loaded"]["seconds"], "classes": mine, "run": brief_summary(r),
                            "notAPoint": not_a_point(brief_summary(r)),
                            "loadAverage1m": round(os.getloadavg()[0], 1)}
            log(f"  {mode} {n}: mean {rows[str(n)]['meanMiB']} MiB, peak {rows[str(n)]['peakMiB']} MiB "
                f"(together {rows[str(n)]['peakTogetherMiB']})")
            if CHECKPOINT:
                CHECKPOINT(res)
    return res


# ---------------------------------------------------------------- the table

PARTS = {"create": bench_create, "binding": bench_binding, "overhead": bench_overhead, "capacity": bench_capacity,
         "rule": bench_rule}

# Set by bench.py before a part runs.
KUBECTL = KUBE_BURNER = None
PROFILE_DIR = None
