"""CPU profiles for scripts/bench.py: system-wide `perf record` over a bench window,
summarised per process class (where each process spent its CPU).

One profiler for every process on the machine, ours (Rust, symbols kept in release
builds) and the peers' (Go). The upstream Go binaries are built stripped (-s -w), so perf
cannot name their functions; Go keeps its own symbol table (.gopclntab) for the runtime,
and `go tool addr2line` reads it, so Go frames are named through that.

A summary per class: samples; the share spent in the kernel; the top functions by self
time; the share by activity (the first frame from the leaf up that names one: SQLite,
TLS, JSON, GC...; kernel frames count for their user-space caller); and where the main
activities were entered (their outermost frame and its caller). Go keeps frame pointers,
so its stacks are whole; our release builds do not, so a Rust sample is often its leaf only.
"""
import os
import re
import shutil
import signal
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

FREQ = 49  # Hz per CPU: ~100 samples/s on this machine, negligible overhead

# Activities, by function-name pattern, checked from the leaf frame up; the first match
# wins, so an allocation inside JSON decoding counts as allocation. The Go runtime's own
# frames (scheduler, syscall wrappers) count only when no caller names anything else, so
# a write(2) under SQLite counts as SQLite.
ACTIVITIES = [
    ("allocation and GC", re.compile(r"^internal/runtime/gc|^runtime\.(gc|mallocgc|scan|greyobject|markBits|sweep|bgsweep|"
                                     r"bgscavenge|mark|heapBits|tryDeferToSpanScan|scanblock|wbBuf|newobject|"
                                     r"growslice|makeslice|memclrNoHeapPointers|mProf|nextFreeFast|\(\*mcache\)|"
                                     r"\(\*mheap\)|\(\*mspan\)|\(\*gcWork\)|\(\*mcentral\))|"
                                     r"^(__libc_)?(malloc|free|realloc|calloc|cfree)$|^(_int_|malloc_|unlink_chunk)|"
                                     r"^(je_|mi_|__rust_alloc|__rust_dealloc|alloc::alloc|__rustc::__r[dg]l_)")),
    ("SQLite", re.compile(r"^modernc\.org/(sqlite|libc)")),
    # Go's assembly (p256*) and ring's (BoringSSL-derived) primitives carry no package name.
    ("TLS and crypto", re.compile(r"^(crypto/|vendor/golang\.org/x/crypto|golang\.org/x/crypto|aws_lc|ring_core|"
                                  r"__ecp_nistz256|p256|_?x25519|sha(256|512)_block|aes|gcm_|ChaCha20|poly1305)|"
                                  r"^<*(rustls|ring)::")),
    ("encode/decode (JSON, protobuf, YAML)", re.compile(
        r"^(encoding/json|sigs\.k8s\.io/(json|yaml|structured-merge-diff)|k8s\.io/apimachinery/pkg/(runtime|util/json|"
        r"apis/meta/v1/unstructured)|k8s\.io/api/|github\.com/gogo/protobuf|google\.golang\.org/protobuf|"
        r"github\.com/json-iterator|gopkg\.in/yaml|go\.yaml\.in)|^<*(serde|k8s_openapi|unsafe_libyaml)")),
    ("watch fan-out (apiserver cacher)", re.compile(r"^k8s\.io/apiserver/pkg/storage/cacher")),
    ("scheduling (framework and plugins)", re.compile(r"^k8s\.io/kubernetes/pkg/scheduler")),
    ("HTTP/2, HTTP and gRPC", re.compile(r"^(net/http|golang\.org/x/net/http2|vendor/golang\.org/x/net/http2|"
                                          r"google\.golang\.org/grpc)|^<*(hyper|h2|http)::")),
]
ACTIVITY_RX = dict(ACTIVITIES)
KERNEL = "kernel (caller unknown)"
FALLBACK = ("runtime (Go scheduler, tokio, syscalls)",
            re.compile(r"^(runtime\.|internal/runtime|syscall\.|internal/poll)|^<*(tokio|mio)::"))


def available():
    return shutil.which("perf") is not None and shutil.which("go") is not None


class Recorder:
    """`perf record -a -g` from start() until stop(); does nothing when perf (or go) is
    missing or BENCH_PROFILE=0."""

    def __init__(self, path):
        self.path = Path(path)
        self.proc = None

    def start(self):
        if not available() or os.environ.get("BENCH_PROFILE", "1") == "0":
            return self
        self.proc = subprocess.Popen(["perf", "record", "-F", str(FREQ), "-g", "-a", "-q", "-o", str(self.path)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        return self

    def stop(self):
        if self.proc is None:
            return False
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return False
        return self.path.exists()


def _load_base(dso):
    """The vaddr - file offset of an ELF's first LOAD segment (perf prints unresolved
    frames as file-relative addresses)."""
    out = subprocess.run(["readelf", "-lW", dso], capture_output=True, text=True).stdout
    for line in out.splitlines():
        f = line.split()
        if f and f[0] == "LOAD":
            return int(f[2], 16) - int(f[1], 16)
    return 0


def _go_symbols(dso, addrs):
    """{addr: function} through the binary's own pclntab; {} if it is not a Go binary."""
    base = _load_base(dso)
    ordered = sorted(addrs)
    r = subprocess.run(["go", "tool", "addr2line", dso], input="".join(f"0x{a + base:x}\n" for a in ordered),
                       capture_output=True, text=True)
    lines = r.stdout.splitlines()
    if r.returncode != 0 or len(lines) != 2 * len(ordered):
        return {}
    return {a: lines[2 * i] for i, a in enumerate(ordered) if lines[2 * i] != "?"}


def _samples(perf_data):
    """Yields (pid, [(addr, symbol, dso)] leaf first) for every sample."""
    p = subprocess.Popen(["perf", "script", "-i", str(perf_data), "-F", "pid,ip,sym,dso"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, errors="replace")
    pid, frames = None, []
    for line in p.stdout:
        if not line.strip():
            if pid is not None:
                yield pid, frames
            pid, frames = None, []
        elif not line.startswith("\t"):  # a sample's header: the pid, right-aligned
            pid = int(line.split()[0].split("/")[0])
        else:
            m = re.match(r"\s*([0-9a-f]+) (.*) \((.*)\)$", line.rstrip("\n"))
            if m:
                frames.append((int(m.group(1), 16), m.group(2), m.group(3)))
    if pid is not None:
        yield pid, frames
    p.wait()


def _clean(sym):
    sym = re.sub(r"\+0x[0-9a-f]+$", "", sym)
    return re.sub(r"::h[0-9a-f]{16}$", "", sym)


def summarize(perf_data, classify, top=12):
    """{class: {samples, top: [[function, % of the class]], activities: {activity: %}}}.

    classify(pid) -> class name or None (not ours: not summarised)."""
    cls_of = {}

    def cls(pid):
        if pid not in cls_of:
            cls_of[pid] = classify(pid)
        return cls_of[pid]

    # Two passes over `perf script` rather than holding an hour's samples in memory.
    unknown = defaultdict(set)
    for pid, frames in _samples(perf_data):
        if cls(pid):
            for a, s, d in frames:
                if s == "[unknown]" and d.startswith("/"):
                    unknown[d].add(a)
    names = {}
    for dso, addrs in unknown.items():
        for a, s in _go_symbols(dso, addrs).items():
            names[(dso, a)] = s
    self_time, acts, total, kernel = defaultdict(Counter), defaultdict(Counter), Counter(), Counter()
    entries = defaultdict(lambda: defaultdict(Counter))
    for pid, frames in _samples(perf_data):
        c = cls(pid)
        if not c or not frames:
            continue
        syms = [names.get((d, a), _clean(s)) for a, s, d in frames]
        total[c] += 1
        leaf_dso = frames[0][2]
        self_time[c][syms[0] if leaf_dso != "[kernel.kallsyms]" else "[kernel] " + syms[0]] += 1
        kernel[c] += leaf_dso == "[kernel.kallsyms]"
        act = entry = None
        for i, sym in enumerate(syms):
            act = next((name for name, rx in ACTIVITIES if rx.search(sym)), None)
            if act:
                # Where the activity was entered: its outermost frame of this run of
                # frames and that frame's caller (TLS handshake or record writes?).
                rx = ACTIVITY_RX[act]
                j = i
                while j + 1 < len(syms) and rx.search(syms[j + 1]):
                    j += 1
                entry = syms[j] + (" ← " + syms[j + 1] if j + 1 < len(syms) else "")
                break
        if act is None and any(FALLBACK[1].search(s) for s in syms):
            act = FALLBACK[0]
        if act is None and leaf_dso == "[kernel.kallsyms]":
            act = KERNEL  # no user frame says why (Rust without frame pointers)
        acts[c][act or "other"] += 1
        if entry:
            entries[c][act][entry] += 1
    out = {}
    for k, n in sorted(total.items(), key=lambda kv: -kv[1]):
        out[k] = {"samples": n, "kernelPct": round(100 * kernel[k] / n, 1),
                  "top": [[s, round(100 * c / n, 1)] for s, c in self_time[k].most_common(top)],
                  "activities": {a: round(100 * c / n, 1) for a, c in acts[k].most_common()},
                  "entries": {a: [[e, round(100 * c / n, 1)] for e, c in entries[k][a].most_common(3)]
                              for a, _ in acts[k].most_common(4) if entries[k].get(a)}}
    return out


def text_report(title, summary):
    """A plain-text rendering for results/bench/profiles/."""
    lines = [f"# {title}", f"# perf record -F {FREQ} -g -a; % of each process class's samples", ""]
    for cls, s in summary.items():
        lines.append(f"{cls}: {s['samples']} samples, {s['kernelPct']}% in the kernel")
        lines.append("  by activity: " + ", ".join(f"{a} {p}%" for a, p in s["activities"].items()))
        for sym, pct in s["top"]:
            lines.append(f"  {pct:5.1f}%  {sym}")
        for act, es in s.get("entries", {}).items():
            lines.append(f"  {act}, entered through:")
            lines.extend(f"    {pct:5.1f}%  {e}" for e, pct in es)
        lines.append("")
    return "\n".join(lines)
