#!/usr/bin/env bash
# `make scaletest-images`: the kube target's images.
#   scripts/images.sh build [IMAGE...]
#                               with a Docker engine: `docker build` of Dockerfile.harness
#                               and images/sut/Dockerfile (as before); without one: the
#                               same images built daemonlessly, plus the chart's Prometheus.
#                               IMAGE: harness, sut, prometheus (the default: all three) and
#                               karpenter (Karpenter's kwok provider, for profiles/karpenter*.yaml)
#   scripts/images.sh tools     install the daemonless tools (apt): buildah, mmdebstrap,
#                               busybox-static
#   scripts/images.sh digests   print each archive's image (config) and manifest digest
#
# Daemonless (no Docker engine, no registry, no network but the package registries):
#   1. a glibc base layer from Debian bookworm packages (mmdebstrap --variant=extract),
#      with a CA bundle, /etc/passwd and busybox's sh/tar/gzip/touch added;
#   2. the workspace's release binaries (cargo build --release --locked), the pinned
#      upstream binaries (scripts/upstream.sh build) and Prometheus PROMETHEUS_VERSION
#      built from the Go module proxy (scripts/upstream.sh prometheus-image-binary);
#   3. buildah bud --timestamp 0 of images/daemonless/*.Containerfile in a private
#      storage (vfs, removed afterwards: nothing is left in /var/lib/containers);
#   4. `buildah push` to target/images/<name>.oci.tar (OCI archive:
#      `ctr -n k8s.io images import`, `kind load image-archive`) and <name>.docker.tar
#      (docker-archive: `docker load`, also taken by ctr and kind).
# Same inputs give the same digests and byte-identical archives (every timestamp is 0). The inputs include the
# Debian packages bookworm serves at build time: a point release changes the base.
#
# Environment: HARNESS_IMAGE (scaletest-harness:dev), SUT_IMAGE (scaletest-sut:dev),
# PROMETHEUS_IMAGE (scaletest-prometheus:$PROMETHEUS_VERSION), KARPENTER_IMAGE
# (scaletest-karpenter:$KARPENTER_VERSION), SCALETEST_IMAGES_DIR
# (target/images), SCALETEST_IMAGE_BUILDER (auto | docker | daemonless), DOCKER (docker).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../upstream/versions.env
source "$root/upstream/versions.env"

cache=${SCALETEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scaletest}
out=${SCALETEST_IMAGES_DIR:-$root/target/images}
HARNESS_IMAGE=${HARNESS_IMAGE:-scaletest-harness:dev}
SUT_IMAGE=${SUT_IMAGE:-scaletest-sut:dev}
PROMETHEUS_IMAGE=${PROMETHEUS_IMAGE:-scaletest-prometheus:$PROMETHEUS_VERSION}
KARPENTER_IMAGE=${KARPENTER_IMAGE:-scaletest-karpenter:$KARPENTER_VERSION}
ALL_IMAGES=(harness sut prometheus karpenter)
DEFAULT_IMAGES=(harness sut prometheus)
DOCKER=${DOCKER:-docker}
# Debian bookworm: the release whose glibc the Rust binaries are built against here.
DEBIAN_SUITE=bookworm
BASE_PACKAGES=libc6,libgcc-s1,base-files,netbase,tzdata,ca-certificates
TOOLS=(buildah mmdebstrap busybox-static)
BUSYBOX_APPLETS=(sh tar gzip touch cat ls mkdir rm)

log() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] %s\n' "$*" >&2; exit 1; }
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_tools() {
  local missing=() p
  for p in "${TOOLS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return
  log "apt-get install ${missing[*]}"
  sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# wanted NAME: whether `build` was asked for that image.
wanted() { local w; for w in "${images[@]}"; do [ "$w" = "$1" ] && return 0; done; return 1; }

have_docker() { command -v "$DOCKER" >/dev/null 2>&1 && "$DOCKER" info >/dev/null 2>&1; }

# Fully qualified, as containerd and the kubelet name an image ("scaletest-sut:dev"
# is docker.io/library/scaletest-sut:dev to both).
qualify() {
  local ref=$1 first=${1%%/*}
  if [ "$first" = "$ref" ]; then echo "docker.io/library/$ref"
  elif [[ $first == *.* || $first == *:* || $first == localhost ]]; then echo "$ref"
  else echo "docker.io/$ref"; fi
}

build_docker() {
  log "Docker engine found: docker build (BuildKit)"
  local built=()
  if wanted harness; then
    DOCKER_BUILDKIT=1 "$DOCKER" build -f "$root/Dockerfile.harness" -t "$HARNESS_IMAGE" \
      --build-arg KUBERNETES_VERSION="$KUBERNETES_VERSION" --build-arg KWOK_VERSION="$KWOK_VERSION" \
      --build-arg KINE_VERSION="$KINE_VERSION" --build-arg HELM_VERSION="$HELM_VERSION" "$root"
    built+=("$HARNESS_IMAGE")
  fi
  if wanted sut; then
    DOCKER_BUILDKIT=1 "$DOCKER" build -f "$root/images/sut/Dockerfile" -t "$SUT_IMAGE" "$root"
    built+=("$SUT_IMAGE")
  fi
  if wanted karpenter; then
    DOCKER_BUILDKIT=1 "$DOCKER" build -f "$root/images/karpenter/Dockerfile" -t "$KARPENTER_IMAGE" \
      --build-arg KARPENTER_VERSION="$KARPENTER_VERSION" "$root"
    built+=("$KARPENTER_IMAGE")
  fi
  # The chart's Prometheus is the upstream image with an engine (prom/prometheus).
  echo "Side-load into kind with:"
  echo "  kind load docker-image ${built[*]}"
}

# The base root filesystem as a tar: Debian packages extracted (no maintainer
# scripts run), then what those scripts would have made, by hand.
base_rootfs() {
  local work=$1 fs=$1/rootfs
  log "base: mmdebstrap --variant=extract $DEBIAN_SUITE ($BASE_PACKAGES)"
  SOURCE_DATE_EPOCH=0 mmdebstrap --quiet --variant=extract --mode=root --format=directory \
    --include="$BASE_PACKAGES" "$DEBIAN_SUITE" "$fs" >&2
  # Only the files a container needs: no package database, docs, manuals or locales.
  rm -rf "$fs"/var/lib/apt "$fs"/var/cache/apt "$fs"/var/lib/dpkg "$fs"/var/log/* \
    "$fs"/usr/share/doc "$fs"/usr/share/man "$fs"/usr/share/info "$fs"/usr/share/lintian \
    "$fs"/usr/share/locale "$fs"/etc/apt "$fs"/dev/* "$fs"/proc "$fs"/sys
  mkdir -p "$fs"/proc "$fs"/sys "$fs"/dev "$fs"/tmp "$fs"/etc/ssl/certs "$fs"/home/nonroot "$fs"/usr/local/bin
  chmod 1777 "$fs"/tmp
  # update-ca-certificates' result: every certificate the package ships, in a fixed order.
  find "$fs"/usr/share/ca-certificates -name '*.crt' | LC_ALL=C sort | xargs cat >"$fs"/etc/ssl/certs/ca-certificates.crt
  [ -s "$fs"/etc/ssl/certs/ca-certificates.crt ] || die "base: empty CA bundle"
  cat >"$fs"/etc/passwd <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
  cat >"$fs"/etc/group <<'GROUP'
root:x:0:
nonroot:x:65532:
nogroup:x:65534:
GROUP
  printf 'hosts: files dns\n' >"$fs"/etc/nsswitch.conf
  chown 65532:65532 "$fs"/home/nonroot
  # busybox-static: /bin/sh, and tar/gzip for the runner's `kubectl exec ... tar -czf -`.
  # (bookworm's packages in extract mode give a split /usr: /bin is a directory.)
  install -m 0755 /bin/busybox "$fs"/bin/busybox
  local a
  for a in "${BUSYBOX_APPLETS[@]}"; do
    [ -e "$fs/bin/$a" ] || [ -e "$fs/usr/bin/$a" ] || ln -s busybox "$fs/bin/$a"
  done
  tar --sort=name --mtime=@0 --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$fs" -cf "$work/base/rootfs.tar" .
  rm -rf "$fs"
}

# buildah in a private store, so nothing is left in /var/lib/containers.
bh() { buildah --root "$store" --runroot "$store/run" --storage-driver vfs "$@"; }

bud() { # bud CONTEXT CONTAINERFILE TAG [BUILD-ARG...]
  local ctx=$1 file=$2 tag=$3; shift 3
  local args=() a
  for a in "$@"; do args+=(--build-arg "$a"); done
  bh bud --quiet --timestamp 0 --pull-never --isolation chroot --format oci \
    --build-arg BASE=localhost/scaletest-base:build "${args[@]}" \
    -f "$ctx/$file" -t "$tag" "$ctx" >/dev/null
}

export_image() { # export_image LOCAL-TAG NAME REF
  local tag=$1 name=$2 ref; ref=$(qualify "$3")
  rm -f "$out/$name.oci.tar" "$out/$name.docker.tar"
  # Only the final name: a docker-archive lists every name the image has.
  bh tag "$tag" "$ref"
  bh rmi "$tag" >/dev/null
  tag=$ref
  # An OCI layout, then tarred with fixed mtimes and order: `oci-archive:` would
  # stamp the archive's own entries with the current time.
  local layout="$store/layout-$name"
  bh push --quiet "$tag" "oci:$layout:$ref"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
    --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
    -C "$layout" -cf "$out/$name.oci.tar" oci-layout index.json blobs
  rm -rf "$layout"
  bh push --quiet --format docker "$tag" "docker-archive:$out/$name.docker.tar:$ref"
  log "$name: $ref -> $out/$name.oci.tar, $out/$name.docker.tar ($(du -h "$out/$name.oci.tar" | cut -f1))"
}

build_daemonless() {
  install_tools
  # Built outside the clone, like the upstream binaries: a fresh clone (CI) reuses it.
  local target=${CARGO_TARGET_DIR:-$cache/images/target} v up prom=""
  local rel="$target/release"
  if wanted harness || wanted sut; then
    command -v cargo >/dev/null || die "cargo not found"
    log "release binaries: cargo build --release --locked --workspace --bins (CARGO_TARGET_DIR=$target)"
    # Without what cargo set for a caller (a test): build scripts track some of it (ring:
    # CARGO_MANIFEST_DIR, CARGO_PKG_NAME) and a change rebuilds most of the workspace.
    (
      for v in $(compgen -e | grep -E '^(CARGO_(PKG|MANIFEST|CRATE|BIN|PRIMARY|TARGET_TMPDIR)|OUT_DIR$)'); do unset "$v"; done
      cd "$root" && CARGO_TARGET_DIR=$target cargo build --release --locked --workspace --bins
    )
  fi
  if wanted harness || wanted karpenter; then
    up=$(SCALETEST_SKIP_PROMETHEUS=1 "$root/scripts/upstream.sh" build)
  fi
  if wanted prometheus; then prom=$("$root/scripts/upstream.sh" prometheus-image-binary); fi

  local work
  work=$(mktemp -d "${TMPDIR:-/tmp}/scaletest-images.XXXXXX")
  store="$work/storage"
  # buildah writes its blob-info cache to /var/lib/containers/cache whatever --root is:
  # removed again when this build created it.
  local own_cache=""
  [ -e /var/lib/containers ] || own_cache=/var/lib/containers
  # shellcheck disable=SC2064
  trap "buildah --root '$store' --runroot '$store/run' --storage-driver vfs rm --all >/dev/null 2>&1 || true; rm -rf '$work' $own_cache" EXIT
  mkdir -p "$work/base" "$work/harness/bin" "$work/harness/data" "$work/sut/bin" \
    "$work/prometheus/bin" "$work/prometheus/etc" "$work/prometheus/data" "$work/karpenter/bin" "$out"

  base_rootfs "$work"
  cp "$root/images/daemonless/base.Containerfile" "$work/base/"
  bh bud --quiet --timestamp 0 --pull-never --isolation chroot --format oci \
    -f "$work/base/base.Containerfile" -t localhost/scaletest-base:build "$work/base" >/dev/null

  local b
  if wanted harness; then
    for b in scaletest-cluster scaletest-node-creator scaletest-pod-shim scaletest-load-driver scaletest-sut scaletest-runner scaletest-node-agents; do
      install -m 0755 "$rel/$b" "$work/harness/bin/$b"
    done
    for b in kube-apiserver kube-controller-manager kube-scheduler kubectl kwok kine; do
      install -m 0755 "$(readlink -f "$up/$b")" "$work/harness/bin/$b"
    done
    cp "$root/images/daemonless/harness.Containerfile" "$work/harness/"
    log "harness: buildah bud"
    bud "$work/harness" harness.Containerfile localhost/scaletest-harness:build \
      "KUBERNETES_VERSION=$KUBERNETES_VERSION" "KWOK_VERSION=$KWOK_VERSION" "KINE_VERSION=$KINE_VERSION"
    export_image localhost/scaletest-harness:build scaletest-harness "$HARNESS_IMAGE"
  fi

  if wanted sut; then
    install -m 0755 "$rel/scaletest-sut" "$work/sut/bin/scaletest-sut"
    cp "$root/images/daemonless/sut.Containerfile" "$work/sut/"
    log "sut: buildah bud"
    bud "$work/sut" sut.Containerfile localhost/scaletest-sut:build
    export_image localhost/scaletest-sut:build scaletest-sut "$SUT_IMAGE"
  fi

  if wanted karpenter; then
    install -m 0755 "$(readlink -f "$up/karpenter-kwok")" "$work/karpenter/bin/karpenter-kwok"
    cp "$root/images/daemonless/karpenter.Containerfile" "$work/karpenter/"
    log "karpenter: buildah bud"
    bud "$work/karpenter" karpenter.Containerfile localhost/scaletest-karpenter:build \
      "KARPENTER_VERSION=$KARPENTER_VERSION"
    export_image localhost/scaletest-karpenter:build scaletest-karpenter "$KARPENTER_IMAGE"
  fi

  if wanted prometheus; then
    install -m 0755 "$prom" "$work/prometheus/bin/prometheus"
    # A config for `docker run` without the chart (the chart mounts its own over it).
    cat >"$work/prometheus/etc/prometheus.yml" <<'YML'
global:
  scrape_interval: 15s
scrape_configs:
  - job_name: prometheus
    static_configs:
      - targets: [localhost:9090]
YML
    cp "$root/images/daemonless/prometheus.Containerfile" "$work/prometheus/"
    log "prometheus: buildah bud"
    bud "$work/prometheus" prometheus.Containerfile localhost/scaletest-prometheus:build \
      "PROMETHEUS_VERSION=$PROMETHEUS_VERSION"
    export_image localhost/scaletest-prometheus:build scaletest-prometheus "$PROMETHEUS_IMAGE"
  fi
  digests
  cat <<EOF
Load them with one of:
  ctr -n k8s.io images import $out/scaletest-harness.oci.tar   (and the sut, prometheus archives)
  kind load image-archive $out/scaletest-harness.oci.tar --name <cluster>
  docker load -i $out/scaletest-harness.docker.tar
and name them to the runner: --image harness=$HARNESS_IMAGE --image sut=$SUT_IMAGE --image prometheus=$PROMETHEUS_IMAGE
(a profile with its own controller's image: --image sut=$KARPENTER_IMAGE for profiles/karpenter.yaml)
EOF
}

digests() {
  local f
  for f in "$out"/*.oci.tar; do
    [ -e "$f" ] || continue
    # index.json -> manifest digest; the manifest names the config (the image id).
    local manifest config
    manifest=$(tar -xOf "$f" index.json | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifests"][0]["digest"])')
    config=$(tar -xOf "$f" "blobs/sha256/${manifest#sha256:}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"])')
    printf '%s manifest %s image %s\n' "$(basename "$f" .oci.tar)" "$manifest" "$config"
  done
}

case "${1:-build}" in
  build)
    shift || true
    images=("$@")
    [ ${#images[@]} -gt 0 ] || images=("${DEFAULT_IMAGES[@]}")
    for i in "${images[@]}"; do
      [[ " ${ALL_IMAGES[*]} " == *" $i "* ]] || die "unknown image $i: expected one of ${ALL_IMAGES[*]}"
    done
    case "${SCALETEST_IMAGE_BUILDER:-auto}" in
      docker) build_docker ;;
      daemonless) build_daemonless ;;
      auto) if have_docker; then build_docker; else log "no Docker engine: building daemonlessly"; build_daemonless; fi ;;
      *) die "SCALETEST_IMAGE_BUILDER must be auto, docker or daemonless" ;;
    esac
    ;;
  tools) install_tools ;;
  digests) digests ;;
  *) echo "usage: $0 [build [IMAGE...]|tools|digests]" >&2; exit 2 ;;
esac
