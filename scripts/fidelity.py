#!/usr/bin/env python3
"""Fidelity: the load a simulated cluster's kwok puts on its apiserver, beside a real kubelet's.

The same workload runs on (a) the real node of scripts/realnode.sh (kubelet + kube-proxy +
containerd) and (b) a simulated cluster (scaletest-cluster) in each kwok mode:
  idle    Nodes only, no Pods                     -> per Node per second
  create  P Pods per Node created, until Ready    -> per Pod
  run     every Pod Running                       -> per Node per second
  churn   half the Pods deleted and replaced      -> per Pod replaced (one lifecycle)
  delete  every Pod deleted, until gone           -> per Pod
Each apiserver runs with an audit log (level Metadata): every request carries its user
agent, so the node's own clients (kubelet + kube-proxy on the real node; kwok + the
supervisor's node agents on a simulated one) are counted apart from the controller-manager,
the scheduler and this script's kubectl. /metrics is scraped before and after each phase
too (apiserver_request_total, apiserver_longrunning_requests, apiserver_watch_events_total):
those are whole-apiserver figures, shown beside.

The real node is one Node: its per-Node rates are that Node's; a simulated cluster runs
--nodes Nodes with the same Pods per Node and its counts are divided by its Node count.

Writes results/fidelity.json and results/fidelity.md. Needs root (the real node) and
`cargo build --workspace --bins`. Holds /tmp/scaletest-realnode.lock over the real node's
whole life. Usage: scripts/fidelity.py [--sides real,fast,faithful] [--pods 20] ...
"""
import argparse, contextlib, datetime as dt, fcntl, json, os, re, signal, subprocess, sys, tempfile, time
from collections import Counter, defaultdict
from pathlib import Path

from bench_common import exit_once_on

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("SCALETEST_CACHE", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "scaletest"))
BIN = CACHE / "upstream/bin"
KUBECTL = str(BIN / "kubectl")
SUPERVISOR = ROOT / "target/debug/scaletest-cluster"
REALNODE_LOCK = "/tmp/scaletest-realnode.lock"
NAMESPACE = "fidelity"
# The perf-tests comparison's rule: a metric matches when real/simulated is within this band.
BAND = (0.66, 1.5)
# Metadata for everything; the body of each Pod status write too, to see what each step changes.
POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Request
  verbs: [patch]
  resources: [{group: "", resources: [pods/status]}]
- level: Metadata
"""
# The node's own clients, by user agent prefix; everything else is "other".
NODE_AGENTS = ("kubelet/", "kube-proxy/", "kwok/", "scaletest-node-agents/")
# The pause image scripts/realnode.sh builds and imports: already present, as on a warm node.
IMAGE = "localhost/scaletest/pause:1"
PHASES = ["idle", "create", "run", "churn", "delete"]
# A Node's heartbeats (Lease renewals every 10 s, Node status every 5 min): per Node per second
# whatever its Pods, so shown over the whole run ("all"), never per Pod.
HEARTBEATS = {("update", "leases"), ("patch", "nodes/status")}


def log(msg):
    print(f"[fidelity] {msg}", file=sys.stderr, flush=True)


def now():
    return dt.datetime.now(dt.timezone.utc)


class Cluster:
    """kubectl against one apiserver."""

    def __init__(self, kubeconfig):
        self.kubeconfig = str(kubeconfig)

    def kubectl(self, *args, stdin=None, check=True):
        r = subprocess.run([KUBECTL, "--kubeconfig", self.kubeconfig, *args], input=stdin,
                           capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def metrics(self):
        return parse_metrics(self.kubectl("get", "--raw", "/metrics"))

    def pods(self):
        return json.loads(self.kubectl("get", "pods", "-n", NAMESPACE, "-o", "json"))["items"]

    def wait(self, what, cond, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(1)
        raise RuntimeError(f"{what}: not within {timeout} s")


def ready(pod):
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def pod_manifest(names):
    items = [{
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": n, "namespace": NAMESPACE, "labels": {"app": "fidelity"}},
        # dnsPolicy Default: the real node has no DNS add-on, and with ClusterFirst its kubelet
        # warns (MissingClusterDNS events) on every sync, which a cluster with DNS would not.
        "spec": {"terminationGracePeriodSeconds": 1, "dnsPolicy": "Default", "containers": [{
            "name": "app", "image": IMAGE, "imagePullPolicy": "IfNotPresent",
            "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]},
    } for n in names]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
WANTED = {"apiserver_request_total": ("verb", "resource", "subresource"),
          "apiserver_longrunning_requests": ("verb", "resource", "subresource"),
          "apiserver_watch_events_total": ("resource",)}


def parse_metrics(text):
    """{metric: {(label values...): value}} for the metrics in WANTED, summed over other labels."""
    out = {m: Counter() for m in WANTED}
    for line in text.splitlines():
        m = LINE.match(line)
        if not m or m.group(1) not in WANTED:
            continue
        labels = dict(LABEL.findall(m.group(2) or ""))
        if m.group(1) == "apiserver_watch_events_total":
            labels.setdefault("resource", labels.get("kind", "?"))
        key = tuple(labels.get(k, "") for k in WANTED[m.group(1)])
        out[m.group(1)][key] += float(m.group(3))
    return out


def ts(s):
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def agent_of(ua):
    for a in NODE_AGENTS:
        if ua.startswith(a):
            return a.rstrip("/")
    return "other"


def read_audit(path):
    """Requests as (agent, verb, resource/subresource, received, stage, done)."""
    out = []
    with open(path) as f:
        for line in f:
            try:
                e = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut at the end of the file
            ref = e.get("objectRef") or {}
            res = ref.get("resource") or e.get("requestURI", "?").split("?")[0]
            if ref.get("subresource"):
                res += "/" + ref["subresource"]
            out.append((agent_of(e.get("userAgent", "")), e["verb"], res, ts(e["requestReceivedTimestamp"]),
                        e["stage"], ts(e["stageTimestamp"])))
    return out


def count_window(events, start, end):
    """Per (agent, verb, resource): requests received in [start, end) (a watch counts when it
    opens), and watches open at `end`."""
    requests, open_watches = Counter(), Counter()
    for agent, verb, res, received, stage, done in events:
        key = f"{agent}|{verb}|{res}"
        # A watch counts when it opens (its ResponseComplete comes when it closes).
        first = "ResponseStarted" if verb == "watch" else "ResponseComplete"
        if stage == first and start <= received < end:
            requests[key] += 1
    # Open watches: opened before `end` and not completed by then.
    opened = Counter()
    for agent, verb, res, received, stage, done in events:
        if verb != "watch" or received >= end:
            continue
        key = f"{agent}|{verb}|{res}"
        if stage == "ResponseStarted":
            opened[key] += 1
        elif stage == "ResponseComplete" and done < end:
            opened[key] -= 1
    for k, v in opened.items():
        if v > 0:
            open_watches[k] = v
    return requests, open_watches


def run_workload(c, nodes, pods_per_node, args):
    """The phases on one cluster: [(phase, start, end, metrics_before, metrics_after, units)]."""
    c.kubectl("create", "namespace", NAMESPACE)
    c.wait("the default ServiceAccount", lambda: c.kubectl("get", "sa", "default", "-n", NAMESPACE, check=False), 120)
    log(f"settling {args.settle} s")
    time.sleep(args.settle)
    total = nodes * pods_per_node
    names = [f"fid-{i}" for i in range(total)]
    phases = []

    def phase(name, action, units):
        log(f"phase {name}")
        before, start = c.metrics(), now()
        action()
        end = now()
        phases.append({"phase": name, "start": start.isoformat(), "end": end.isoformat(),
                       "seconds": (end - start).total_seconds(), "units": units,
                       "metrics": diff_metrics(before, c.metrics())})

    def all_ready(expected):
        ps = c.pods()
        return len(ps) == len(expected) and {p["metadata"]["name"] for p in ps} == set(expected) \
            and all(ready(p) and not p["metadata"].get("deletionTimestamp") for p in ps)

    def create():
        c.kubectl("apply", "-f", "-", stdin=pod_manifest(names))
        c.wait("every Pod Ready", lambda: all_ready(names), args.timeout)
        time.sleep(args.tail)

    def churn():
        half = names[: total // 2]
        c.kubectl("delete", "pods", "-n", NAMESPACE, "--wait=false", *half)
        fresh = [f"fid-churn-{i}" for i in range(len(half))]
        c.kubectl("apply", "-f", "-", stdin=pod_manifest(fresh))
        names[: total // 2] = fresh
        c.wait("the churned Pods replaced", lambda: all_ready(names), args.timeout)
        time.sleep(args.tail)

    def delete():
        c.kubectl("delete", "pods", "-n", NAMESPACE, "--all", "--wait=false")
        c.wait("every Pod gone", lambda: not c.pods(), args.timeout)
        time.sleep(args.tail)

    phase("idle", lambda: time.sleep(args.idle), {"nodes": nodes})
    phase("create", create, {"pods": total})
    phase("run", lambda: time.sleep(args.run), {"nodes": nodes})
    phase("churn", churn, {"pods": total // 2})
    phase("delete", delete, {"pods": total})
    return phases


def diff_metrics(before, after):
    out = {}
    for m, values in after.items():
        if m == "apiserver_longrunning_requests":  # a gauge: its value at the phase's end
            out[m] = {"|".join(k): v for k, v in values.items() if v}
        else:
            out[m] = {"|".join(k): v - before[m].get(k, 0) for k, v in values.items() if v - before[m].get(k, 0)}
    return out


def attribute(phases, audit_log):
    events = read_audit(audit_log)
    for p in phases:
        req, watches = count_window(events, ts(p["start"]), ts(p["end"]))
        p["requests"], p["openWatches"] = dict(req), dict(watches)
    return phases


def side_real(args, work):
    policy = work / "audit-policy.yaml"
    policy.write_text(POLICY)
    audit = work / "real-audit.log"
    env = dict(os.environ, SCALETEST_REALNODE_APISERVER_ARGS=(
        f"--audit-policy-file={policy} --audit-log-path={audit} --audit-log-maxsize=0"))
    with open(REALNODE_LOCK, "w") as lock:
        log(f"waiting for {REALNODE_LOCK}")
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            log("scripts/realnode.sh up")
            out = subprocess.run([str(ROOT / "scripts/realnode.sh"), "up"], env=env, check=True,
                                 capture_output=True, text=True, timeout=900)
            c = Cluster(out.stdout.strip().splitlines()[-1])
            phases = run_workload(c, 1, args.pods, args)
        finally:
            subprocess.run([str(ROOT / "scripts/realnode.sh"), "down"], timeout=600)
    # After the apiserver stopped: every watch then has its ResponseComplete (its close).
    return attribute(phases, audit), 1


@contextlib.contextmanager
def simulated(mode, data, extra=(), binary=None):
    """A simulated cluster in kwok `mode` (scaletest-cluster), stopped on exit: (process, Cluster)."""
    cmd = [str(binary or SUPERVISOR), "--name", f"fidelity-{mode}", "--data-dir", str(data), "--kwok-mode", mode,
           *extra]
    log(" ".join(cmd))
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        ep = data / "endpoints.json"
        deadline = time.monotonic() + 300
        while not ep.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"simulated cluster did not start; logs in {data}/logs")
            time.sleep(0.5)
        yield proc, Cluster(json.loads(ep.read_text())["kubeconfig"])
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def create_nodes(c, count, pods_per_node):
    """`count` kwok Nodes, waited for until Ready. Each holds `pods_per_node` Pods, so the
    scheduler (MostAllocated) puts as many on each as the real node gets."""
    nodes = [{
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": f"fid-node-{i}", "annotations": {"kwok.x-k8s.io/node": "fake"},
                     "labels": {"type": "kwok"}},
        "status": {"allocatable": {"cpu": "32", "memory": "256Gi", "pods": str(pods_per_node)},
                   "capacity": {"cpu": "32", "memory": "256Gi", "pods": str(pods_per_node)}},
    } for i in range(count)]
    c.kubectl("apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes}))
    c.wait("the Nodes Ready", lambda: sum(
        any(x["type"] == "Ready" and x["status"] == "True" for x in n.get("status", {}).get("conditions", []))
        for n in json.loads(c.kubectl("get", "nodes", "-o", "json"))["items"]) == count, 300)


def side_sim(mode, args, work):
    policy = work / "audit-policy.yaml"
    policy.write_text(POLICY)
    audit = work / f"sim-{mode}-audit.log"
    extra = [f"--apiserver-arg=--audit-policy-file={policy}", f"--apiserver-arg=--audit-log-path={audit}",
             "--apiserver-arg=--audit-log-maxsize=0"]
    with simulated(mode, work / f"sim-{mode}", extra) as (_, c):
        create_nodes(c, args.nodes, args.pods)
        phases = run_workload(c, args.nodes, args.pods, args)
    # After the apiserver stopped: every watch then has its ResponseComplete (its close).
    return attribute(phases, audit), args.nodes


# ---------------------------------------------------------------------------- report

def normalised(phase, counts):
    """Counts per Node per second (idle, run) or per Pod (create, churn, delete)."""
    u = phase["units"]
    div = u["nodes"] * phase["seconds"] if "nodes" in u else u["pods"]
    return {k: v / div for k, v in counts.items()}


def unit_of(phase):
    return "/Node/s" if phase in ("idle", "run", "all") else "/Pod"


def node_requests(phase):
    """The node's requests but its watch opens: those are shown as open watches per Node (a
    watch reopens on its client's timeout, 5-10 min, whatever the phase)."""
    req = Counter()
    for k, v in phase["requests"].items():
        agent, verb, res = k.split("|")
        if agent != "other" and verb != "watch":
            req[(verb, res)] += v
    return req


def node_rows(side):
    """{(phase, kind, verb, resource): value} of the node's own clients, normalised. A per-Pod
    phase has the idle phase's rate over its own length taken off (Lease renewals and the
    like are per Node, not per Pod)."""
    rows = {}
    idle = next(p for p in side["phases"] if p["phase"] == "idle")
    idle_rate = {k: v / idle["seconds"] for k, v in node_requests(idle).items()}
    beats, seconds = Counter(), 0.0
    for p in side["phases"]:
        req = node_requests(p)
        seconds += p["seconds"]
        for k in HEARTBEATS:
            beats[k] += req.pop(k, 0)
        if "pods" in p["units"]:
            req = Counter({k: max(0.0, v - idle_rate.get(k, 0) * p["seconds"]) for k, v in req.items()})
            req = Counter({k: v for k, v in req.items() if v > 0.05 * p["units"]["pods"]})
        for (verb, res), v in normalised(p, req).items():
            rows[(p["phase"], "requests", verb, res)] = v
        if p["phase"] in ("idle", "run"):
            w = Counter()
            for k, v in p["openWatches"].items():
                agent, verb, res = k.split("|")
                if agent != "other":
                    w[res] += v
            nodes = p["units"]["nodes"]
            for res, v in w.items():
                rows[(p["phase"], "open watches /Node", "watch", res)] = v / nodes
    nodes = side["phases"][0]["units"]["nodes"]
    for (verb, res), v in beats.items():
        rows[("all", "requests", verb, res)] = v / (nodes * seconds)
    return rows


def whole_rows(side):
    rows = {}
    for p in side["phases"]:
        for m, label in (("apiserver_request_total", "requests"), ("apiserver_watch_events_total", "watch events")):
            for k, v in normalised(p, p["metrics"][m]).items():
                rows[(p["phase"], label, k)] = v
        if p["phase"] == "idle":
            for k, v in p["metrics"]["apiserver_longrunning_requests"].items():
                rows[(p["phase"], "longrunning (gauge)", k)] = v
    return rows


def ratio(real, sim):
    if real == 0 and sim == 0:
        return None
    if real == 0:
        return "inf"
    return sim / real


def fmt(v):
    if v is None:
        return "–"
    if v == "inf":
        return "∞"
    return f"{v:.3g}"


def compare(sides, rows_of):
    real = rows_of(sides["real"]) if "real" in sides else {}
    sims = {m: rows_of(sides[m]) for m in ("fast", "faithful") if m in sides}
    order = PHASES + ["all"]
    keys = sorted(set(real) | {k for r in sims.values() for k in r}, key=lambda k: (order.index(k[0]), k[1:]))
    table = []
    for k in keys:
        r = real.get(k, 0.0)
        row = {"key": list(k), "real": r}
        for m, rows in sims.items():
            s = rows.get(k, 0.0)
            q = ratio(r, s)
            row[m] = s
            row[f"{m}Ratio"] = q
            row[f"{m}Matches"] = q is not None and q != "inf" and BAND[0] <= q <= BAND[1]
        table.append(row)
    return table


def markdown(result, reasons):
    sides = result["sides"]
    modes = [m for m in ("fast", "faithful") if m in sides]
    out = ["# Fidelity: a simulated cluster's apiserver load vs a real kubelet's", "",
           f"Generated by `make fidelity` (scripts/fidelity.py) on {result['date']}. Workload: "
           f"{result['args']['pods']} Pods per Node; simulated clusters run {result['args']['nodes']} Nodes, "
           f"the real node is one. Phases: idle {result['args']['idle']} s, create (until every Pod is Ready "
           f"+ {result['args']['tail']} s), run {result['args']['run']} s, churn (half the Pods deleted and "
           f"replaced), delete (until gone + {result['args']['tail']} s).", "",
           "**How figures are normalised.** idle and run: per Node per second; create, delete: per Pod; "
           "churn: per Pod replaced (one delete + one create); a Node's heartbeats (Lease renewals, Node "
           "status) per Node per second over the whole run (phase `all`); a per-Pod figure has the idle phase's rate "
           "over the phase's length taken off, and is left out under 0.05 per Pod. The real node is a single Node, so its per-Node "
           "rate is that Node's own; a simulated cluster's counts are divided by its Node count (its Nodes "
           "are independent, so its per-Node rate is the same at any scale; a real cluster's kubelets are "
           "independent too, which is what lets one real Node stand for N). Open watches are those open at "
           "the end of the phase, per Node; a watch reopening (on its client's 5-10 min timeout) is not "
           "counted as a request.", "",
           "**Whose requests.** Both apiservers run with an audit log (level Metadata); a request counts "
           "toward the node when its user agent is the kubelet's or kube-proxy's (real) or kwok's or the "
           "supervisor's node agents' (simulated). The controller-manager, the scheduler and this script's "
           "kubectl are left out; they run on both sides, the same pinned binaries. The whole-apiserver "
           "figures from /metrics are in the second table (they include those clients: the controller-"
           "manager's flags differ between the two setups, see scripts/realnode.sh and "
           "crates/scaletest-cluster/src/components.rs).", "",
           f"A row matches when simulated/real is within [{BAND[0]}, {BAND[1]}] (the perf-tests rule). "
           "A fast row at 0 is a request or watch fast mode does not make at all.", "",
           "**Set-up choices.** The Pods use `dnsPolicy: Default`: the real node has no DNS add-on, and "
           "with ClusterFirst its kubelet writes a MissingClusterDNS warning event on every sync, which a "
           "cluster with DNS would not. Node status is written every 5 min, so a 120 s idle window "
           "rarely shows it: the `all` row counts it over the whole run (~10 min), where one write more or "
           "less moves the figure by a third.", ""]
    summary = []
    for m in modes:
        rows = [r for r in result["node"] if r.get(f"{m}Ratio") is not None]
        ok = sum(r[f"{m}Matches"] for r in rows)
        summary.append(f"- **{m}**: {ok} of {len(rows)} rows match ({100 * ok / max(1, len(rows)):.0f} %).")
    out += ["## Summary", ""] + summary + [""]
    out += ["## The node's own requests and watches", "",
            "| phase | what | verb | resource | real | " + " | ".join(f"{m} | {m}/real" for m in modes) + " | note |",
            "|---|---|---|---|---:|" + "---:|---:|" * len(modes) + "---|"]
    for r in result["node"]:
        phase, what, verb, res = r["key"]
        cells = []
        for m in modes:
            flag = "" if r.get(f"{m}Ratio") is None or r[f"{m}Matches"] else " ⚠"
            cells += [fmt(r[m]), fmt(r[f"{m}Ratio"]) + flag]
        note = reasons.get(f"{phase}|{what}|{verb}|{res}", "")
        out.append(f"| {phase} | {what}{' ' + unit_of(phase) if what == 'requests' else ''} | {verb} | {res} | "
                   f"{fmt(r['real'])} | " + " | ".join(cells) + f" | {note} |")
    out += ["", "## Whole apiserver (/metrics deltas, every client)", "",
            "| phase | metric | labels | real | " + " | ".join(f"{m} | {m}/real" for m in modes) + " |",
            "|---|---|---|---:|" + "---:|---:|" * len(modes)]
    for r in result["whole"]:
        phase, what, labels = r["key"]
        cells = []
        for m in modes:
            cells += [fmt(r[m]), fmt(r[f"{m}Ratio"])]
        out.append(f"| {phase} | {what} | {labels.replace('|', ' ')} | {fmt(r['real'])} | " + " | ".join(cells) + " |")
    out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------- cost

HEAVY_LOCK = "/tmp/scaletest-heavy.lock"
TICKS = os.sysconf("SC_CLK_TCK")


def cluster_processes(proc, data):
    """{component: pid} of one supervisor and its children (each names the data dir)."""
    found = {"scaletest-cluster": proc.pid}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == proc.pid:
            continue
        try:
            argv = (d / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and str(data).encode() in b" ".join(argv):
            found[os.path.basename(argv[0].decode())] = int(d.name)
    return found


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cost_of(mode, args, work):
    """CPU (cores, over a steady window) and RSS per component of one cluster with
    --cost-nodes Nodes and --pods Pods per Node, all Running."""
    data = work / f"cost-{mode}"
    binary = Path(os.environ.get("SCALETEST_CLUSTER_BIN", ROOT / "target/release/scaletest-cluster"))
    with simulated(mode, data, binary=binary) as (proc, c):
        create_nodes(c, args.cost_nodes, args.pods)
        c.kubectl("create", "namespace", NAMESPACE)
        c.wait("the default ServiceAccount", lambda: c.kubectl("get", "sa", "default", "-n", NAMESPACE, check=False), 120)
        names = [f"fid-{i}" for i in range(args.cost_nodes * args.pods)]
        c.kubectl("apply", "-f", "-", stdin=pod_manifest(names))
        c.wait("every Pod Running", lambda: sum(ready(p) for p in c.pods()) == len(names), args.timeout)
        time.sleep(args.settle)
        pids = cluster_processes(proc, data)
        with open(HEAVY_LOCK, "w") as lock:
            log(f"waiting for {HEAVY_LOCK}")
            fcntl.flock(lock, fcntl.LOCK_EX)
            before = {n: cpu_seconds(p) for n, p in pids.items()}
            t0 = time.monotonic()
            time.sleep(args.cost_seconds)
            cpu = {n: (cpu_seconds(p) - before[n]) / (time.monotonic() - t0) for n, p in pids.items()}
            rss = {n: rss_mib(p) for n, p in pids.items()}
    return {"cpuCores": cpu, "rssMiB": rss}


def cost(args):
    out = {"date": now().strftime("%Y-%m-%d %H:%M UTC"), "nodes": args.cost_nodes, "podsPerNode": args.pods,
           "windowSeconds": args.cost_seconds, "modes": {}}
    with tempfile.TemporaryDirectory(prefix="scaletest-fidelity-cost-") as tmp:
        for mode in ("fast", "faithful"):
            out["modes"][mode] = cost_of(mode, args, Path(tmp))
    bench = args.output / "bench"
    bench.mkdir(parents=True, exist_ok=True)
    (bench / "fidelity-cost.json").write_text(json.dumps(out, indent=1) + "\n")
    fast, faithful = out["modes"]["fast"], out["modes"]["faithful"]
    names = sorted(set(fast["cpuCores"]) | set(faithful["cpuCores"]))
    md = ["# What kwok.mode faithful costs per simulated cluster", "",
          f"Measured by `scripts/fidelity.py --cost` on {out['date']} (release build, 2-core machine, holding "
          f"{HEAVY_LOCK}): one simulated cluster with {args.cost_nodes} kwok Nodes and {args.pods} Running Pods "
          f"per Node, CPU averaged over {args.cost_seconds:.0f} s of steady state (no Pod changes: what the "
          "watches and the periodic writes cost), RSS at its end.", "",
          "| component | fast CPU (cores) | faithful CPU (cores) | fast RSS (MiB) | faithful RSS (MiB) |",
          "|---|---:|---:|---:|---:|"]
    for n in names + ["total"]:
        get = (lambda m, k: sum(m[k].values())) if n == "total" else (lambda m, k: m[k].get(n, 0.0))
        md.append(f"| {n} | {get(fast, 'cpuCores'):.3f} | {get(faithful, 'cpuCores'):.3f} | "
                  f"{get(fast, 'rssMiB'):.0f} | {get(faithful, 'rssMiB'):.0f} |")
    d_cpu = sum(faithful["cpuCores"].values()) - sum(fast["cpuCores"].values())
    d_rss = sum(faithful["rssMiB"].values()) - sum(fast["rssMiB"].values())
    md += ["", f"Extra per cluster in faithful mode: **{d_cpu:+.3f} cores, {d_rss:+.0f} MiB** "
           f"({1000 * d_cpu / args.cost_nodes:+.2f} millicores and {d_rss / args.cost_nodes:+.2f} MiB per Node).", ""]
    (bench / "fidelity-cost.md").write_text("\n".join(md))
    log(f"wrote {bench / 'fidelity-cost.md'}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sides", default="real,fast,faithful")
    ap.add_argument("--pods", type=int, default=20, help="Pods per Node")
    ap.add_argument("--nodes", type=int, default=4, help="Nodes of a simulated cluster")
    ap.add_argument("--idle", type=float, default=120)
    ap.add_argument("--run", type=float, default=120)
    ap.add_argument("--settle", type=float, default=20, help="seconds after startup before the idle phase")
    ap.add_argument("--tail", type=float, default=15, help="seconds kept after a phase's goal is reached")
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--output", type=Path, default=ROOT / "results")
    ap.add_argument("--reasons", type=Path, default=ROOT / "results/fidelity-reasons.json",
                    help="why a row does not match, by phase|what|verb|resource")
    ap.add_argument("--reuse", action="store_true", help="keep sides already in fidelity.json; run only the missing")
    ap.add_argument("--cost", action="store_true",
                    help="instead: CPU and memory of one cluster in each mode into results/bench/fidelity-cost.md")
    ap.add_argument("--cost-nodes", type=int, default=50)
    ap.add_argument("--cost-seconds", type=float, default=60)
    args = ap.parse_args()
    # SIGTERM unwinds like Ctrl-C, so every cluster and the real node are taken down.
    exit_once_on((signal.SIGTERM,), 143)
    if args.cost:
        return cost(args)
    out_json = args.output / "fidelity.json"
    sides = {}
    if args.reuse and out_json.exists():
        sides = json.loads(out_json.read_text())["sides"]
    with tempfile.TemporaryDirectory(prefix="scaletest-fidelity-") as tmp:
        work = Path(os.environ.get("FIDELITY_WORKDIR", tmp))
        for side in args.sides.split(","):
            if side in sides:
                continue
            if side == "real":
                phases, nodes = side_real(args, work)
            elif side in ("fast", "faithful"):
                phases, nodes = side_sim(side, args, work)
            else:
                sys.exit(f"--sides: unknown side {side!r} (expected real, fast, faithful)")
            sides[side] = {"nodes": nodes, "phases": phases}
            write(args, sides, out_json)
    write(args, sides, out_json)


def write(args, sides, out_json):
    reasons = json.loads(args.reasons.read_text()) if args.reasons.exists() else {}
    result = {"date": now().strftime("%Y-%m-%d %H:%M UTC"),
              "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "band": BAND, "sides": sides,
              "node": compare(sides, node_rows), "whole": compare(sides, whole_rows)}
    args.output.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    (args.output / "fidelity.md").write_text(markdown(result, reasons))
    log(f"wrote {out_json} and {args.output / 'fidelity.md'}")


if __name__ == "__main__":
    main()
