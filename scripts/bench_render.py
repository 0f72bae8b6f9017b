"""The rendering half of `make bench`: results/bench/README.md from the JSON in that
directory and nothing else. Every sentence is derived from the data of the run it
describes (a figure, or a condition on one), never carried from an earlier run.

The four parts of bench.py render in order; another measuring script adds its part by
writing <name>.json beside them and a `section_<name>(data, runs)` here returning its
Markdown lines (e.g. a per-component footprint.json: `section_footprint`). A JSON with
no section is linked at the end, never left out silently.
"""
import json
import re

import benchprof
from bench_common import CONTROL_PLANE, HARNESS, OUT, ROOT


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
    return (", before the kine fixes of 2026-11-30 (a bounded connection pool and a busy timeout above the "
            "apiserver's request timeout): not comparable with the sections "
            "measured after them" if date and date < KINE_FIXES else "")


def cores(r):
    """The CPUs of the machine a part ran on, from its JSON."""
    return (r or {}).get("machine", {}).get("cpus")


def machine_text(runs):
    """'a 2-core / 23.5 GiB machine', from what the JSON recorded ('' when nothing did)."""
    cpus = sorted({r["machine"]["cpus"] for r in runs.values() if r.get("machine", {}).get("cpus")})
    mem = sorted({m for r in runs.values()
                  for m in (r.get("machine", {}).get("memTotalGiB"), r.get("idle", {}).get("memTotalGiB")) if m})
    if not cpus:
        return ""
    size = "/".join(map(str, cpus)) + "-core" + (f" / {'/'.join(map(str, mem))} GiB" if mem else "")
    return f" (a {size} machine)"


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
        n = cores(c)
        whole = n and min(totals) >= 0.9 * n
        out.append(
            "**Where the limit is.** "
            + (f"Every create run used the whole machine (its processes' profile samples add up to "
               f"{min(totals):.1f}–{max(totals):.1f} of the {n} cores)" if whole else
               f"The create runs' processes used {min(totals):.1f}–{max(totals):.1f} "
               + (f"of the {n} cores" if n else "vCPU") + " (their profile samples)")
            + f"; the apiserver alone {min(api):.2f}–{max(api):.2f} vCPU and kine {min(kine):.2f}–{max(kine):.2f}. "
            + ("The rate is what the control plane does with the CPU the driver leaves it, not what either client "
               "can send. " if whole else "")
            + f"With the load-driver the apiserver's CPU went to "
            f"{prof_says(ours, 'apiserver', 5)}; kine's to {prof_says(ours, 'kine', 3)}. kube-burner took "
            f"{vcpu(peer, 'kube-burner') or 0:.2f} vCPU for its creates, the load-driver {vcpu(ours, 'load-driver') or 0:.2f}; "
            f"the apiserver and kine got {cp(ours):.2f} vCPU during the load-driver's run and {cp(peer):.2f} during "
            f"kube-burner's ({cp(ours) / max(cp(peer), 1e-6):.2f}×), against {ratio['rate']}× in rate"
            + (". A client cannot be much faster than another when both already leave the apiserver most of the "
               f"machine; the CPU ({ratio['cpu']}× kube-burner's) is where the load-driver's lead shows." if whole else "."))
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
    slower = all(pods.get(t, {}).get("objectsPerSecond", 0) < cm.get(t, {}).get("objectsPerSecond", 0)
                 for t in ("load-driver", "kube-burner"))
    if pods.get("kube-burner") and slower:
        kinds = pods["kube-burner"].get("errorKinds", {})
        sa = sum(v for k, v in kinds.items() if "service account" in k or "serviceaccount" in k)
        pl = pods.get("load-driver")
        sched = prof_cpu(pl, "kube-scheduler")
        out.append(
            "**Pods are slower for both** than ConfigMaps: each Pod is also bound by kube-scheduler and its status "
            "written by kwok while the creates run, three to four writes per Pod on the same SQLite file"
            + (f" (in the load-driver's Pod run kube-scheduler took {sched:.0f} CPU s and kwok "
               f"{prof_cpu(pl, 'kwok') or 0:.0f} of the run's {pl['seconds']:.0f} s on {cores(c)} cores)" if sched else "") + "."
            + (f" kube-burner also creates Pods into namespaces it has just made, before the controller-manager "
               f"has made their `default` ServiceAccount: {sa:,} creates were refused for that and retried after "
               f"its 1 s backoff. The load-driver waits for the ServiceAccount before its first Pod." if sa else ""))
    return out


# A crash whose stack the bench recorded and can name: (panic line, frame in its stack, what it is).
KNOWN_CRASHES = [
    ("panic: send on closed channel", "watchGRPCStream).broadcastResponse",
     "the etcd client (v3.7.0, watch.go:747) broadcasting a progress notification (watch id -1, which kine "
     "sends in answer to the apiserver's progress requests) to a watch substream it has already closed"),
]


def restart_diagnosis(restarts, runs):
    """What the recorded stacks say about these restarts' panics: only a panic whose own
    stack, or a stack recorded with the same panic line in another part, shows a known frame."""
    stacks = [(r.get("firstFatal") or "", r.get("stack") or [], part) for part, data in runs.items()
              for r in all_restarts(data)]
    said = []
    for line, frame, what in KNOWN_CRASHES:
        mine = [r for r in restarts if (r.get("firstFatal") or "").startswith(line)]
        seen = [part for fatal, stack, part in stacks if fatal.startswith(line) and any(frame in f for f in stack)]
        if mine and seen:
            said.append(f" `{line}` ({len(mine)} of {len(restarts)}): the stack recorded in {seen[0]}.json ends in "
                        f"`{frame}`, {what}.")
    return "".join(said)


def all_restarts(data):
    """Every restart a part's JSON recorded, wherever it sits."""
    if isinstance(data, dict):
        for k, v in data.items():
            if k == "restarts" and isinstance(v, list):
                yield from (r for r in v if isinstance(r, dict))
            else:
                yield from all_restarts(v)
    elif isinstance(data, list):
        for v in data:
            yield from all_restarts(v)


def explain_binding(b, runs):
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
        used = api.get("vcpu", 0) + kine.get("vcpu", 0)
        out.append(
            f"**{n:,} Pods: where ours saturates, and why.** Not in the binder: pod-shim spent "
            f"{shim['binderCpuSeconds']} CPU s on {n:,} binds ({1000 * shim['binderCpuSeconds'] / n:.2f} ms per Pod, "
            f"{w.get('pod-shim', {}).get('vcpu', 0):.2f} vCPU with {b['binderWorkers']} workers), kube-scheduler {ks['binderCpuSeconds']} CPU s "
            f"({1000 * ks['binderCpuSeconds'] / n:.2f} ms per Pod: below). In the pod-shim run "
            f"the apiserver ran at {api.get('vcpu', 0):.2f} vCPU and kine at {kine.get('vcpu', 0):.2f} vCPU over the "
            f"window, {used:.2f} of the machine's {cores(b)} cores (the rest went to the other components and to other work on the machine): the "
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
            + (f" The seed's pod-shim saturated its 256 binder workers above 30,000 objects (p99 102 s); here {b['binderWorkers']} "
               f"workers bound {n:,} Pods at {shim['podsBoundPerSecond']} Pods/s using "
               f"{w.get('pod-shim', {}).get('vcpu', 0):.2f} vCPU: the workers are not what limits it; the "
               "apiserver (the largest consumer) and the chain's pace of provisioning Nodes for a backlog that "
               "arrives all at once are." if n >= 30_000 else ""))
        ks_w = ks.get("window", {}).get("classes", {})
        kp = ks.get("profile", {}).get("kube-scheduler")
        if ks_w.get("kine") and kp:
            acts = kp["activities"]
            pre = [(f, v) for f, v in kp["top"] if "preemption" in f]
            pre_share = sum(v for _, v in pre)
            gc = acts.get("allocation and GC", 0)
            times = ks["binderCpuSeconds"] / max(shim["binderCpuSeconds"], 1e-6)
            out.append(
                f"**kube-scheduler's CPU ({times:.0f}× pod-shim's).** Over its run kube-scheduler used "
                f"{ks_w.get('kube-scheduler', {}).get('vcpu', 0):.2f} vCPU ({1000 * ks['binderCpuSeconds'] / n:.0f} ms per "
                f"Pod); its profile puts {acts.get('scheduling (framework and plugins)', 0):.0f} % in the scheduling "
                f"framework and {gc:.0f} % in allocation and GC"
                + (", and among its top functions by self time are the DefaultPreemption plugin's dry run ("
                   + ", ".join(f"`{f.rsplit('/', 1)[-1]}` {v:.0f} %" for f, v in pre) + f": {pre_share:.0f} % of its "
                   "samples in preemption's own functions)" if pre else "")
                + "."
                + (" Every failed attempt of a Pod that does not fit runs PostFilter: a dry run on every Node "
                   "(`DryRunPreemption` stops early only once it has enough candidates, and here there are none) "
                   "that builds a victim entry for every Pod on it and compares priorities, although every Pod in "
                   "this bench has the same priority and no victim can exist; pod-shim has no preemption and tries "
                   "a parked Pod once per new Node. How much of the allocation and GC share those victim entries "
                   "make, the profile does not say (leaf functions only)." if pre else "")
                + " Each failed attempt also writes the Pod's PodScheduled=False status "
                f"(kine: {ks_w['kine']['cpuSeconds'] / n * 1000:.0f} ms of CPU per Pod against "
                f"{kine.get('cpuSeconds', 0) / n * 1000:.0f} ms in pod-shim's run; apiserver p99 "
                f"{fmt(ks['apiserverRequestP99Seconds'])} s against {fmt(shim['apiserverRequestP99Seconds'])} s)."
                + (" A workload whose Pods set `preemptionPolicy: Never` skips the search; the load-driver's Pods "
                   "keep the default, as real workloads do." if pre else ""))
    rs = [(int(n), sched, x["restarts"]) for n, row in b["sizes"].items() for sched, x in row.items()
          if sched in ("pod-shim", "kube-scheduler") and x.get("restarts")]
    if rs:
        out.append("**Restarts during the runs.** " + "; ".join(
            f"{sched} at {n:,} Pods: " + ", ".join(
                f"{r['component']} exited ({r['status']}{': ' + r['firstFatal'] if r.get('firstFatal') else ''})"
                for r in restarts_)
            for n, sched, restarts_ in rs)
            + ". The supervisor restarted each and the run went on."
            + restart_diagnosis([r for _, _, x in rs for r in x], runs))
    if "50000" not in b["sizes"]:
        out.append("**50,000 Pods: not measured here.** `BENCH_BINDING_SIZES=50000 scripts/bench.py --only binding` "
                   "runs it.")
    return out


def explain_overhead(o):
    cl = o["classes"]
    hs = sorted(((k, v) for k, v in cl.items() if k in HARNESS.values()), key=lambda kv: -kv[1]["cpuSeconds"])
    top = ", ".join(f"{k} {v['cpuSeconds']} CPU s / {v['rssMeanMiB']:.0f} MiB" for k, v in hs[:3])
    api = cl.get("apiserver", {})
    seed = o["references"]["seedPerCluster"]
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
        f"{o['ratios']['perClusterRssVsSeed']}× the seed's {seed['vcpu']} vCPU / {seed['rssMiB'] * 2**20 / 1e9:.1f} GB. The vCPU figure is what the "
        f"processes got, not what they asked for: all {o['clusters']} cluster(s) together got "
        f"{o['totals']['vcpu']['controlPlane'] + o['totals']['vcpu']['harness']:.2f} of the {cores(o)} cores, with the "
        f"machine's load average at {o['machine']['loadAverageAtEnd']:.0f} at the end (the memory figure depends "
        "on that much less). Per fake Node it is "
        f"{o['ratios']['perFakeNodeVcpuVsKubemark']}× kubemark's CPU and {o['ratios']['perFakeNodeRssVsKubemark']}× "
        f"its memory while carrying its own control plane, with {o['perCluster']['fakeNodes']} Nodes per cluster "
        f"({o['objectsPerCluster']:,} Pods)."
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
            + (f" Our own processes used {min(used):.2f}–{max(used):.2f} vCPU of the {cores(k)} cores" if used else "")
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
        rule = k.get("budgetRule") or {}
        if "gibPerCluster" in rule:
            # The rule as it stood when this part ran: a fixed term plus a per-object one.
            allowed = lambda n: rule["gibPerCluster"] * 1024 + n * rule["kibPerObject"] / 1024
            said = (f"the runner's local budget rule when this part ran (a cluster planned at {rule['gibPerCluster']} GiB "
                    f"+ {rule['kibPerObject']:.0f} KiB per object, within {rule['memoryShare'] * 100:.0f} % of RAM)")
            over = [(n, mib, src) for n, mib, src in big if mib > allowed(n)]
            out.append(
                f"**{said[0].upper() + said[1:]}** against the measurement: an idle cluster is {idle:.0f} MiB; loaded, "
                + "; ".join(f"{n:,} Pods: {mib:.0f} MiB measured, {allowed(n):.0f} MiB planned ({src})" for n, mib, src in big)
                + f". Above idle that is {min(slopes):.0f}–{slope:.0f} KiB per Pod."
                + (" The rule under-plans " + "; ".join(f"{src} at {n:,} Pods ({mib:.0f} MiB against {allowed(n):.0f})"
                                                        for n, mib, src in over) + "."
                   if over else " The rule planned at least what every loaded run measured (means)."))
        elif "mibPerClusterAtSize" in rule:
            out.append(
                f"**The runner's local budget** ({rule['source']}) plans {rule['mibPerClusterAtSize']:.0f} MiB per "
                f"cluster at {k['objectsPerCluster']:,} Pods; measured: idle {idle:.0f} MiB, loaded "
                + "; ".join(f"{n:,} Pods {mib:.0f} MiB ({src})" for n, mib, src in big)
                + f", {min(slopes):.0f}–{slope:.0f} KiB per Pod above idle.")
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
         "Every figure is a count or a ratio of two things measured in the same invocation on the same machine"
         + machine_text(runs) + "; absolute times drift from run to run. The JSON records the "
         "1-minute load average at the end of each part and of each run"
         + (f" ({min(loads):.1f}–{max(loads):.1f} at the end of the parts below)" if loads else "")
         + ". No figure is a test assertion.", "",
         "Reproduce: `make bench` (full sizes: 10,000 objects for create, 10,000 Pods for binding, 5 clusters for",
         "overhead) or `make bench QUICK=1`; one part: `scripts/bench.py [--quick] --only create|binding|overhead|capacity|rule`.",
         "Knobs: `BENCH_BINDING_SIZES` the binding sizes (10000; `50000` adds the large one, a size not run",
         "keeps its dated row), `BENCH_BIND_TIMEOUT` a binder's bound (40m), `BENCH_LD_CONCURRENCY` the",
         "load-driver's requests in flight (100), `BENCH_PEER_TIMEOUT` kube-burner's time bound (1800 s),",
         "`BENCH_PROFILE=0` no perf profiles. JSON: [create](create.json),",
         "[binding](binding.json), [overhead](overhead.json), [capacity](capacity.json), [rule](rule.json).", ""]
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
        L += [""] + paragraphs(explain_create(c))
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
        L += [""] + paragraphs(explain_binding(b, runs))
    o = runs.get("overhead")
    if o:
        km = o["references"]["kubemarkPerHollowNode"]
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
              f"| seed's cost model | {o['references']['seedPerCluster']['vcpu']} | {o['references']['seedPerCluster']['rssMiB']:.0f} | vCPU {o['ratios']['perClusterVcpuVsSeed']}×, RSS "
              f"{o['ratios']['perClusterRssVsSeed']}× of it |",
              f"| kubemark, {o['perCluster']['fakeNodes']} hollow nodes ({km['vcpu']} vCPU / {km['rssMiB']} MB each, no control plane) | "
              f"{km['vcpu'] * o['perCluster']['fakeNodes']:.2f} | {km['rssMiB'] * o['perCluster']['fakeNodes']} | per Node ours is "
              f"{o['ratios']['perFakeNodeVcpuVsKubemark']}× the CPU, {o['ratios']['perFakeNodeRssVsKubemark']}× the RSS |",
              ""] + paragraphs(explain_overhead(o))
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
        rule = k.get("budgetRule") or {}
        L += ["", f"Largest passing: **{k['largestPassingClusters']} cluster(s) × {k['objectsPerCluster']:,} = "
                  f"{k['largestPassingObjects']:,} Pods**" + (" (none passed: see below)" if not k['largestPassingClusters'] else "")
              + ".", "",
              f"Idle: {i['clusters']} bare clusters started side by side: {i['rssMiBPerCluster']} MiB and "
              f"{i['vcpuPerCluster']} vCPU each. Extrapolated from that RSS (it counts every process's binary "
              "once per process; the footprint section starts the clusters instead): memory-bound at 80 % of "
              f"{i['memTotalGiB']} GiB: "
              f"**{i['memoryBoundClusters']} idle clusters**; their idle CPU alone would fill the {cores(k)} cores at "
              f"{i['cpuBoundClusters']}."
              + (f" The runner's local budget {'rule of the time ' if 'gibPerCluster' in rule else ''}admits "
                 f"{rule['admitsClusters']} clusters at {k['objectsPerCluster']:,} objects "
                 f"({rule.get('mibPerClusterAtSize') or rule['gibPerClusterAtSize'] * 1024:.0f} MiB each)."
                 if rule.get("admitsClusters") is not None else ""), ""] + paragraphs(explain_capacity(k, runs))
    L += other_parts(runs)
    (out / "README.md").write_text("\n".join(L) + "\n")


BUILT_IN = ("create", "binding", "overhead", "capacity")


def section_rule(data, runs):
    """The footprint rule's memory points (bench.py's `rule` part), per control plane."""
    L = ["## 5. The budget rule's memory points", "",
         "What the runner's budget rule (`crates/scaletest-core/src/footprint.rs`, which a unit test checks "
         "against this JSON) plans one simulated cluster's memory from, for each `harness.controlPlane`: the RSS of "
         "every process of one cluster, control plane and harness, summed (the runner and Prometheus left out). "
         "0 Pods: bare clusters side by side, their mean. N Pods: created at once and bound by kube-scheduler onto "
         "the reference SUT's Nodes, over the run's loaded window: the mean of the sum, and each process class's "
         "peak summed (what the rule's memory limit holds: no moment's total exceeds it, the safe side when reads "
         "are 0.5 s apart; the simultaneous peak, the largest total at one read, is shown beside it). A run whose "
         "chain never settled, lost acknowledged objects, restarted a component or broke an invariant is no working "
         "cluster's footprint: its row is kept and marked, and a lean one gives way to full's row of that size. Points past the "
         "largest size here come from the binding part's kube-scheduler rows, measured the same way. "
         "`BENCH_RULE_SIZES` / `BENCH_RULE_MODES` choose; a size not run keeps its dated row.", "",
         "| control plane | Pods | mean MiB | peak MiB | simultaneous peak MiB | idle vCPU | window | load avg | the run by its default SLOs (not judged here) | measured |",
         "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for mode, rows in data.get("points", {}).items():
        for n, r in rows.items():
            run = r.get("run", {})
            verdict = ("passed" if run.get("passed") else f"failed: {(run.get('reason') or '')[:80]}") if run else ""
            if r.get("notAPoint"):
                verdict = f"**not a point** ({r['notAPoint']}); {verdict}"
            L.append(f"| {mode} | {int(n):,} | {fmt(r['meanMiB'])} | {fmt(r['peakMiB'])} "
                     f"| {fmt(r['peakTogetherMiB']) if 'peakTogetherMiB' in r else ''} | {fmt(r.get('vcpu'))} "
                     f"| {fmt(r.get('windowSeconds'), ' s') if r.get('windowSeconds') else ''} "
                     f"| {fmt(r.get('loadAverage1m')) if r.get('loadAverage1m') is not None else ''} | {verdict} "
                     f"| {r.get('date') or data.get('date')} |")
    return L


def section_footprint(data, runs):
    """scripts/footprint.py's per-component, lever-by-lever section (its own renderer)."""
    import footprint

    return footprint.markdown(data)


def other_parts(runs):
    """Sections for JSON written by other measuring scripts: `section_<name>(data, runs)`
    returns its Markdown lines (a heading first); a JSON without one is only linked."""
    L, unrendered = [], []
    for name, data in runs.items():
        if name in BUILT_IN:
            continue
        section = globals().get(f"section_{name.replace('-', '_')}")
        if section:
            L += section(data, runs) + [""]
        else:
            unrendered.append(f"[{name}]({name}.json)")
    if unrendered:
        L += ["Also measured, not rendered here: " + ", ".join(unrendered) + ".", ""]
    return L

