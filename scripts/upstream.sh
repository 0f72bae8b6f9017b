#!/usr/bin/env bash
# Builds the pinned upstream binaries from the Go module proxy into a cache
# outside the clone, skipping any already built at its pinned version.
#   scripts/upstream.sh build        build (or reuse) everything, print the bin dir
#   scripts/upstream.sh bin-dir      print the bin dir only
#   scripts/upstream.sh karpenter    build (or reuse) Karpenter's kwok provider only (`build` includes it
#                                    unless SCALETEST_SKIP_KARPENTER=1)
#   scripts/upstream.sh bench        also build the peers `make bench` compares with (kube-burner)
#   scripts/upstream.sh node         also build kubelet and kube-proxy (scripts/realnode.sh)
#   scripts/upstream.sh prometheus-image-binary
#                                    build the kube target's Prometheus (for scripts/images.sh), print its path
# Release-binary downloads are never used: only package registries are reachable
# here and on air-gapped runners.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../upstream/versions.env
source "$root/upstream/versions.env"

cache=${SCALETEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scaletest}
store="$cache/upstream"
bin="$store/bin"

log() { printf '[upstream] %s\n' "$*" >&2; }

# build NAME VERSION PKG... : go build each package into $store/NAME@VERSION/
# from module dir $moddir (a wrapper module) or with `go install pkg@version`.
built() { [ -f "$store/$1@$2/.done" ]; }

link() { # link NAME VERSION BINARY...
  local name=$1 version=$2; shift 2
  mkdir -p "$bin"
  for b in "$@"; do ln -sfn "$store/$name@$version/$b" "$bin/$b"; done
}

build_kubernetes() {
  local v=$KUBERNETES_VERSION out="$store/kubernetes@$KUBERNETES_VERSION"
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  if built kubernetes "$v"; then log "kubernetes $v: cached"; else
    log "kubernetes $v: building ${bins[*]} (cold: ~8-11 min on 2 cores)"
    local minor=${v#v1.}; minor=${minor%%.*}
    local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    local ld="" p
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor"
      ld+=" -X $p.gitTreeState=clean -X $p.gitCommit=module-proxy -X $p.buildDate=$date"
    done
    mkdir -p "$out"
    (cd "$root/upstream/k8s" && for b in "${bins[@]}"; do
        log "  go build $b"
        CGO_ENABLED=0 go build -trimpath -ldflags "-s -w$ld" -o "$out/$b" "k8s.io/kubernetes/cmd/$b"
      done)
    touch "$out/.done"
  fi
  link kubernetes "$v" "${bins[@]}"
}

build_kubernetes_node() {
  # kubelet and kube-proxy, for scripts/realnode.sh only (a real node here). Same
  # wrapper module and version flags as the control plane; kept apart so that
  # `make upstream` does not build them.
  local v=$KUBERNETES_VERSION out="$store/kubernetes-node@$KUBERNETES_VERSION"
  local bins=(kubelet kube-proxy)
  if built kubernetes-node "$v"; then log "kubelet, kube-proxy $v: cached"; else
    log "kubernetes $v: building ${bins[*]} (warm build cache: ~2 min)"
    local minor=${v#v1.}; minor=${minor%%.*}
    local date; date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
    local ld="" p
    for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
      ld+=" -X $p.gitVersion=$v -X $p.gitMajor=1 -X $p.gitMinor=$minor"
      ld+=" -X $p.gitTreeState=clean -X $p.gitCommit=module-proxy -X $p.buildDate=$date"
    done
    mkdir -p "$out"
    (cd "$root/upstream/k8s" && for b in "${bins[@]}"; do
        log "  go build $b"
        CGO_ENABLED=0 go build -trimpath -ldflags "-s -w$ld" -o "$out/$b" "k8s.io/kubernetes/cmd/$b"
      done)
    touch "$out/.done"
  fi
  link kubernetes-node "$v" "${bins[@]}"
}

go_install() { # go_install NAME VERSION MODULE_PKG BINARY
  local name=$1 v=$2 pkg=$3 b=$4 out="$store/$1@$2"
  if built "$name" "$v"; then log "$name $v: cached"; else
    log "$name $v: go install $pkg@$v"
    mkdir -p "$out"
    CGO_ENABLED=0 GOBIN="$out" go install -trimpath -ldflags "-s -w" "$pkg@$v"
    touch "$out/.done"
  fi
  link "$name" "$v" "$b"
}

build_kube_burner() {
  # Its go.mod has a replace directive, so `go install pkg@version` refuses it:
  # fetch the module through the proxy and `go build` inside it instead.
  local v=$KUBE_BURNER_VERSION out="$store/kube-burner@$KUBE_BURNER_VERSION"
  if built kube-burner "$v"; then log "kube-burner $v: cached"; else
    log "kube-burner $v: go build from github.com/kube-burner/kube-burner@$v"
    local dir
    dir=$(go mod download -json "github.com/kube-burner/kube-burner@$v" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -d "$dir" ] || { echo "go mod download github.com/kube-burner/kube-burner@$v gave no directory" >&2; exit 1; }
    mkdir -p "$out"
    (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath \
      -ldflags "-s -w -X github.com/cloud-bulldozer/go-commons/version.Version=$v -X github.com/cloud-bulldozer/go-commons/version.GitCommit=module-proxy" \
      -o "$out/kube-burner" ./cmd/kube-burner)
    touch "$out/.done"
  fi
  link kube-burner "$v" kube-burner
}

build_karpenter() {
  # Karpenter's kwok provider: the main package is named kwok, installed here as
  # karpenter-kwok so it does not shadow kwok itself. Its go.mod asks for a newer
  # Go than the machine's, so the pinned toolchain is used (GOTOOLCHAIN).
  local v=$KARPENTER_VERSION out="$store/karpenter@$KARPENTER_VERSION"
  if built karpenter "$v"; then log "karpenter $v: cached"; else
    log "karpenter $v: go install sigs.k8s.io/karpenter/kwok@$v with $KARPENTER_GOTOOLCHAIN"
    mkdir -p "$out"
    GOTOOLCHAIN=$KARPENTER_GOTOOLCHAIN CGO_ENABLED=0 GOBIN="$out" go install -trimpath \
      -ldflags "-s -w -X sigs.k8s.io/karpenter/pkg/operator.Version=$v" "sigs.k8s.io/karpenter/kwok@$v"
    mv -f "$out/kwok" "$out/karpenter-kwok"
    touch "$out/.done"
  fi
  link karpenter "$v" karpenter-kwok
}

build_prometheus() {
  # The kube target's Prometheus (scripts/images.sh). Its go.mod has replace lines,
  # so `go install pkg@version` refuses it: build inside the downloaded module copy.
  # No `builtinassets` tag: the web UI's assets need npm; the API, the TSDB admin
  # snapshot and kubernetes_sd_configs are all there.
  local v=$PROMETHEUS_VERSION mv=$PROMETHEUS_MODULE_VERSION out="$store/prometheus@$PROMETHEUS_VERSION"
  if built prometheus "$v"; then log "prometheus $v: cached"; else
    log "prometheus $v: go build from github.com/prometheus/prometheus@$mv (cold: ~3 min on 2 cores)"
    local dir
    dir=$(go mod download -json "github.com/prometheus/prometheus@$mv" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
    [ -d "$dir" ] || { echo "go mod download github.com/prometheus/prometheus@$mv gave no directory" >&2; exit 1; }
    local cv=github.com/prometheus/common/version
    mkdir -p "$out"
    (cd "$dir" && CGO_ENABLED=0 go build -trimpath -tags netgo \
      -ldflags "-s -w -X $cv.Version=${v#v} -X $cv.Revision=module-proxy -X $cv.Branch=HEAD -X $cv.BuildUser=scaletest -X $cv.BuildDate=19700101-00:00:00" \
      -o "$out/prometheus" ./cmd/prometheus)
    touch "$out/.done"
  fi
  # Not linked into bin/: local runs use the Debian package's prometheus.
}

install_prometheus() {
  if command -v prometheus >/dev/null 2>&1; then log "prometheus: $(command -v prometheus)"; return; fi
  log "prometheus: apt-get install $PROMETHEUS_DEBIAN_PACKAGE"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  # policy-rc.d keeps the package's service from starting (and taking :9090).
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "$PROMETHEUS_DEBIAN_PACKAGE" >/dev/null
  $sudo rm -f /usr/sbin/policy-rc.d
}

install_perf() {
  # bench profiles every process with perf (scripts/benchprof.py).
  if command -v perf >/dev/null 2>&1; then log "perf: $(command -v perf)"; return; fi
  log "perf: apt-get install $PERF_DEBIAN_PACKAGE"
  local sudo=""; [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$PERF_DEBIAN_PACKAGE" >/dev/null
}

need_go() {
  command -v go >/dev/null 2>&1 || { echo "go not found: install Go >= 1.26 (https://go.dev/doc/install)" >&2; exit 1; }
}

case "${1:-build}" in
  bin-dir) echo "$bin" ;;
  build)
    need_go
    build_kubernetes
    go_install kwok "$KWOK_VERSION" sigs.k8s.io/kwok/cmd/kwok kwok
    go_install kine "$KINE_VERSION" github.com/k3s-io/kine kine
    go_install helm "$HELM_VERSION" helm.sh/helm/v3/cmd/helm helm
    if [ "${SCALETEST_SKIP_KARPENTER:-}" != 1 ]; then build_karpenter; fi
    if [ "${SCALETEST_SKIP_PROMETHEUS:-}" != 1 ]; then install_prometheus; fi
    echo "$bin"
    ;;
  bench)
    need_go
    build_kube_burner
    install_perf
    echo "$bin"
    ;;
  karpenter) need_go; build_karpenter; echo "$bin" ;;
  prometheus) install_prometheus ;;
  node) need_go; build_kubernetes_node; echo "$bin" ;;
  prometheus-image-binary) need_go; build_prometheus; echo "$store/prometheus@$PROMETHEUS_VERSION/prometheus" ;;
  *) echo "usage: $0 [build|bin-dir|bench|karpenter|node|prometheus|prometheus-image-binary]" >&2; exit 2 ;;
esac
