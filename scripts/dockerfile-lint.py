#!/usr/bin/env python3
"""Lints the project's Dockerfiles for the rules that matter here (stdlib only).

    scripts/dockerfile-lint.py [DOCKERFILE...]   default: Dockerfile.harness images/*/Dockerfile
    scripts/dockerfile-lint.py --list-binaries   what the build produces (the allowed set)

Rules (each finding prints as FILE:LINE: RULE: message; exit 1 if any):
  pinned-base     every FROM names a tag or a digest (ARG defaults resolved), never `latest`
  non-root        the final stage sets USER to a numeric, non-zero UID (Kubernetes'
                  runAsNonRoot can only verify a numeric one)
  no-download     no curl/wget in RUN and no ADD of a URL: binaries come from
                  scripts/upstream.sh (the Go module proxy) or cargo, never a release download
  copy-from       every COPY --from names a stage defined above it
  known-binary    every file copied into a bin directory of the final stage, and the
                  ENTRYPOINT, is a binary that `cargo build --workspace --bins` or
                  scripts/upstream.sh produces: derived from the workspace's Cargo.toml
                  files and from upstream.sh, not listed here
  exec-form       ENTRYPOINT and CMD use the JSON (exec) form, so signals reach the program
  port-layout     an image whose entrypoint is scaletest-cluster with --port-base=N EXPOSEs
                  exactly N..N+k-1, k being the roles in crates/scaletest-cluster/src/ports.rs
  context         every COPY from the build context (the repository root) names a path
                  that exists and that <Dockerfile>.dockerignore (else .dockerignore) keeps
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN_DIRS = ("/usr/local/bin", "/usr/bin", "/bin", "/usr/local/sbin", "/usr/sbin", "/sbin")


# --------------------------------------------------------------------------- what the build produces


def cargo_binaries(root: str = ROOT) -> set[str]:
    """Binary targets of the workspace: [[bin]] names, src/main.rs (the package name) and src/bin/*.rs."""
    with open(os.path.join(root, "Cargo.toml"), "rb") as f:
        workspace = tomllib.load(f).get("workspace", {})
    dirs: list[str] = []
    for pattern in workspace.get("members", []):
        dirs.extend(d for d in sorted(glob.glob(os.path.join(root, pattern))) if os.path.isfile(os.path.join(d, "Cargo.toml")))
    excluded = {os.path.normpath(os.path.join(root, e)) for e in workspace.get("exclude", [])}
    bins: set[str] = set()
    for d in dirs:
        if os.path.normpath(d) in excluded:
            continue
        with open(os.path.join(d, "Cargo.toml"), "rb") as f:
            manifest = tomllib.load(f)
        package = manifest.get("package", {})
        for b in manifest.get("bin", []):
            if "name" in b:
                bins.add(b["name"])
        if package.get("autobins", True):
            if os.path.isfile(os.path.join(d, "src", "main.rs")) and "name" in package:
                bins.add(package["name"])
            for f in glob.glob(os.path.join(d, "src", "bin", "*.rs")):
                bins.add(os.path.splitext(os.path.basename(f))[0])
            for f in glob.glob(os.path.join(d, "src", "bin", "*", "main.rs")):
                bins.add(os.path.basename(os.path.dirname(f)))
    return bins


def upstream_binaries(root: str = ROOT) -> set[str]:
    """Binaries scripts/upstream.sh builds: its `bins=(...)` arrays and the BINARY of each `go_install NAME VERSION PKG BINARY` call."""
    with open(os.path.join(root, "scripts", "upstream.sh")) as f:
        text = f.read()
    bins: set[str] = set()
    for m in re.finditer(r"\bbins=\(([^)]*)\)", text):
        bins.update(shlex.split(m.group(1)))
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) == 5 and words[0] == "go_install":
            bins.add(words[4].strip("\"'"))
    return bins


def scaletest_cluster_port_count(root: str = ROOT) -> int | None:
    path = os.path.join(root, "crates", "scaletest-cluster", "src", "ports.rs")
    try:
        with open(path) as f:
            m = re.search(r"const ROLES: \[&str; (\d+)\]", f.read())
    except OSError:
        return None
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------- build context


def _glob_regex(pattern: str) -> re.Pattern:
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
            if pattern.startswith("/", i):
                out += "/?"
                i += 1
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c))
        i += 1
    return re.compile(out + "$")


def dockerignore(dockerfile: str, context: str = ROOT) -> list[tuple[bool, re.Pattern]]:
    """(exclude?, pattern) rules of the ignore file BuildKit uses for `dockerfile`."""
    for candidate in (dockerfile + ".dockerignore", os.path.join(context, ".dockerignore")):
        if os.path.isfile(candidate):
            rules = []
            with open(candidate) as f:
                for line in f:
                    line = line.strip()
                    if not line or line.startswith("#"):
                        continue
                    negate = line.startswith("!")
                    pattern = os.path.normpath(line.lstrip("!").strip("/"))
                    rules.append((not negate, _glob_regex(pattern)))
            return rules
    return []


def in_context(path: str, rules: list[tuple[bool, re.Pattern]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = os.path.normpath(path).split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for exclude, rx in rules:
        if any(rx.match(c) for c in candidates):
            excluded = exclude
    return not excluded


# --------------------------------------------------------------------------- parsing


@dataclass
class Instruction:
    line: int
    keyword: str
    rest: str

    def flags_and_args(self) -> tuple[dict[str, str], list[str]]:
        """`--from=x --chown=a src dst` -> ({from: x, chown: a}, [src, dst]); JSON form understood."""
        rest = self.rest.strip()
        flags: dict[str, str] = {}
        while rest.startswith("--"):
            word, _, rest = rest.partition(" ")
            name, _, value = word[2:].partition("=")
            flags[name] = value
            rest = rest.strip()
        if rest.startswith("["):
            try:
                return flags, [str(a) for a in json.loads(rest)]
            except ValueError:
                pass
        return flags, shlex.split(rest, posix=True) if rest else []


@dataclass
class Stage:
    index: int
    name: str | None
    base: str
    line: int
    instructions: list[Instruction] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)


def parse(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined."""
    escape = "\\"
    lines = text.splitlines()
    for line in lines:  # parser directives come first
        m = re.match(r"#\s*escape\s*=\s*(\S)", line)
        if m:
            escape = m.group(1)
        elif not re.match(r"#\s*\w+\s*=", line):
            break
    instructions: list[Instruction] = []
    buf, start = "", 0
    for n, line in enumerate(lines, 1):
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue  # comments inside a continued instruction
        if not buf:
            start = n
        if stripped.endswith(escape):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        keyword, _, rest = buf.partition(" ")
        instructions.append(Instruction(start, keyword.upper(), rest.strip()))
        buf = ""
    if buf:
        keyword, _, rest = buf.partition(" ")
        instructions.append(Instruction(start, keyword.upper(), rest.strip()))

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            _, words = ins.flags_and_args()
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(len(stages), name, words[0] if words else "", ins.line))
        elif not stages:
            if ins.keyword == "ARG":
                k, _, v = ins.rest.partition("=")
                global_args[k.strip()] = v.strip().strip("\"'")
        else:
            stages[-1].instructions.append(ins)
            if ins.keyword == "ARG":
                k, _, v = ins.rest.partition("=")
                stages[-1].args[k.strip()] = v.strip().strip("\"'")
    return global_args, stages


def substitute(value: str, args: dict[str, str]) -> str:
    """Expands $VAR, ${VAR} and ${VAR:-default} with ARG defaults."""

    def expand(m: re.Match) -> str:
        name = m.group(1) or m.group(3)
        return args.get(name) or (m.group(2) or "")

    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)", expand, value)


# --------------------------------------------------------------------------- rules


@dataclass
class Finding:
    path: str
    line: int
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.rule}: {self.message}"


def image_tag(ref: str) -> tuple[str, str | None, str | None]:
    """`repo[:tag][@digest]` -> (repo, tag, digest); a registry port is not a tag."""
    digest = None
    if "@" in ref:
        ref, digest = ref.split("@", 1)
    last = ref.rsplit("/", 1)[-1]
    if ":" in last:
        repo, tag = ref.rsplit(":", 1)
        return repo, tag, digest
    return ref, None, digest


def lint(
    path: str, text: str, allowed: set[str], port_count: int | None, ignore: list[tuple[bool, re.Pattern]] | None = None
) -> list[Finding]:
    out: list[Finding] = []
    global_args, stages = parse(text)
    if not stages:
        return [Finding(path, 1, "pinned-base", "no FROM instruction")]
    names: dict[str, int] = {}
    for st in stages:
        base = substitute(st.base, global_args)
        if base.lower() in names or base == "scratch":
            pass  # a stage defined above, or the empty image
        elif not base or "$" in base:
            out.append(Finding(path, st.line, "pinned-base", f"FROM {st.base}: cannot resolve the image (give its ARG a default)"))
        else:
            _, tag, digest = image_tag(base)
            if tag == "latest":
                out.append(Finding(path, st.line, "pinned-base", f"FROM {base}: `latest` is not a pin; name a version tag"))
            elif tag is None and digest is None:
                out.append(Finding(path, st.line, "pinned-base", f"FROM {base}: no tag; pin a version tag (or a digest)"))
        for ins in st.instructions:
            if ins.keyword == "RUN" and re.search(r"(?<![\w-])(curl|wget)(?![\w-])", ins.rest):
                out.append(Finding(path, ins.line, "no-download", "curl/wget in RUN: build binaries with scripts/upstream.sh or cargo, not from release downloads"))
            if ins.keyword == "ADD":
                _, words = ins.flags_and_args()
                if any(re.match(r"(https?|git)://|git@", w) for w in words[:-1]):
                    out.append(Finding(path, ins.line, "no-download", "ADD of a URL: build binaries with scripts/upstream.sh or cargo, not from release downloads"))
            if ins.keyword == "COPY":
                flags, words = ins.flags_and_args()
                src = flags.get("from")
                if src is None and ignore is not None:
                    for s in words[:-1]:
                        rel = os.path.normpath(s.lstrip("/"))
                        if not os.path.exists(os.path.join(ROOT, rel)):
                            out.append(Finding(path, ins.line, "context", f"COPY {s}: no such path in the build context"))
                        elif not in_context(rel, ignore):
                            out.append(Finding(path, ins.line, "context", f"COPY {s}: excluded by the .dockerignore"))
                if src is not None and src.lower() not in names and not (src.isdigit() and int(src) < st.index):
                    out.append(Finding(path, ins.line, "copy-from", f"COPY --from={src}: no stage of that name above this line"))
        if st.name:
            names[st.name.lower()] = st.index

    final = stages[-1]
    copied: set[str] = set()
    for ins in final.instructions:
        if ins.keyword not in ("COPY", "ADD"):
            continue
        _, words = ins.flags_and_args()
        if len(words) < 2:
            continue
        *sources, dest = words
        dest_dir = dest.rstrip("/") if dest.endswith("/") or len(sources) > 1 else os.path.dirname(dest)
        if dest_dir not in BIN_DIRS:
            continue
        for s in sources:
            name = os.path.basename(s.rstrip("/")) if dest.endswith("/") or len(sources) > 1 else os.path.basename(dest)
            if s.endswith("/") or any(c in s for c in "*?["):
                out.append(Finding(path, ins.line, "known-binary", f"{s} -> {dest}: copy each binary by name, so the set can be checked"))
            elif name not in allowed:
                out.append(Finding(path, ins.line, "known-binary", f"{name}: not a binary of `cargo build --workspace --bins` or scripts/upstream.sh"))
            else:
                copied.add(name)

    users = [i for i in final.instructions if i.keyword == "USER"]
    if not users:
        out.append(Finding(path, final.line, "non-root", "final stage sets no USER (runs as root)"))
    else:
        u = substitute(users[-1].rest, {**global_args, **final.args}).split(":", 1)[0].strip()
        if not u.isdigit():
            out.append(Finding(path, users[-1].line, "non-root", f"USER {u}: use a numeric UID (runAsNonRoot cannot verify a name)"))
        elif int(u) == 0:
            out.append(Finding(path, users[-1].line, "non-root", "USER 0 is root"))

    entrypoint = None
    cmd: list[str] = []
    for ins in final.instructions:
        if ins.keyword in ("ENTRYPOINT", "CMD"):
            if not ins.rest.startswith("["):
                out.append(Finding(path, ins.line, "exec-form", f"{ins.keyword} in shell form; use the JSON form"))
                continue
            _, words = ins.flags_and_args()
            if ins.keyword == "ENTRYPOINT":
                entrypoint = (ins, words)
            else:
                cmd = words
    if entrypoint and entrypoint[1]:
        prog = entrypoint[1][0]
        if os.path.basename(prog) not in copied:
            out.append(Finding(path, entrypoint[0].line, "known-binary", f"ENTRYPOINT {prog}: not a binary this Dockerfile copies into the final stage"))
        if os.path.basename(prog) == "scaletest-cluster" and port_count:
            base = next((int(a.split("=", 1)[1]) for a in entrypoint[1][1:] + cmd if a.startswith("--port-base=")), None)
            if base is None:
                out.append(Finding(path, entrypoint[0].line, "port-layout", "scaletest-cluster without --port-base=N: ports cannot be declared"))
            else:
                exposed: set[int] = set()
                for ins in final.instructions:
                    if ins.keyword == "EXPOSE":
                        for w in ins.rest.split():
                            p = w.split("/", 1)[0]
                            if "-" in p:
                                a, b = p.split("-", 1)
                                exposed.update(range(int(a), int(b) + 1))
                            elif p.isdigit():
                                exposed.add(int(p))
                want = set(range(base, base + port_count))
                if exposed != want:
                    out.append(Finding(path, final.line, "port-layout", f"EXPOSE {sorted(exposed)}: --port-base={base} listens on {base}..{base + port_count - 1}"))
    return out


def main(argv: list[str]) -> int:
    allowed = cargo_binaries() | upstream_binaries()
    if argv[1:] == ["--list-binaries"]:
        print("\n".join(sorted(allowed)))
        return 0
    files = argv[1:] or [os.path.join(ROOT, "Dockerfile.harness"), *sorted(glob.glob(os.path.join(ROOT, "images", "*", "Dockerfile")))]
    port_count = scaletest_cluster_port_count()
    findings: list[Finding] = []
    for path in files:
        with open(path) as f:
            findings.extend(lint(os.path.relpath(path), f.read(), allowed, port_count, dockerignore(path)))
    for finding in findings:
        print(finding)
    print(f"dockerfile-lint: {len(files)} file(s), {len(findings)} finding(s)", file=sys.stderr)
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
