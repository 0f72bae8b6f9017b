#!/usr/bin/env bash
# A real single-node Kubernetes on this machine, for the kube target where no Docker
# engine or kind exists: our pinned kine + kube-apiserver + kube-controller-manager +
# kube-scheduler, and a node of kubelet + kube-proxy (iptables) + containerd + runc +
# the CNI bridge (Debian packages), with a locally built pause image.
#   scripts/realnode.sh up [ARCHIVE...]   bring it up (ARCHIVEs: images to import, e.g.
#                                         target/images/*.oci.tar), print the kubeconfig
#   scripts/realnode.sh import ARCHIVE... ctr -n k8s.io images import into its containerd
#   scripts/realnode.sh status            components, the Node, images
#   scripts/realnode.sh down              tear everything down and put the machine back
#   scripts/realnode.sh kubeconfig        print the kubeconfig path
#   scripts/realnode.sh preflight         one line naming what this machine lacks to run a
#                                         node (exit 1), or that it can (exit 0)
#
# One real node at a time on a machine: `up` takes $SCALETEST_REALNODE_LOCK
# (/tmp/scaletest-realnode.lock; waits for it, up to SCALETEST_REALNODE_LOCK_WAIT s)
# and a holder process keeps it until `down`, unless a caller (a test, a user's
# `flock /tmp/scaletest-realnode.lock ...`) already holds it.
#
# The real setup, not test shortcuts: every component authenticates with a client
# certificate of our CA (the apiserver to the kubelet with --kubelet-client-certificate),
# the kubelet authenticates and authorizes callers by webhook (anonymous off) and
# serves a certificate of our CA, Node+RBAC authorization with NodeRestriction, and the
# apiserver advertises a routable address so the `kubernetes` Service has endpoints.
#
# Layout (nothing outside these is changed, and `down` undoes each):
#   - $SCALETEST_REALNODE_DIR (default /var/lib/scaletest-realnode): certificates,
#     kine's sqlite, containerd's root/state/socket, runc's root, the kubelet's root
#     dir and pod logs, CNI config and IPAM state, logs, pids;
#   - a network namespace `scaletest-node` holding the node (containerd, kubelet,
#     kube-proxy, the CNI bridge, the Pods, every iptables rule they make), joined to
#     the host by a veth pair: the host side `stnode0` is 10.213.0.1/24, the
#     apiserver's advertise and bind address (port 16443); the node is 10.213.0.2;
#   - Pods 10.214.0.0/24, Services 10.215.0.0/24; no DNS add-on (clusterDNS empty);
#   - global sysctls the kubelet sets (kernel.panic, kernel.panic_on_oops,
#     vm.overcommit_memory) are saved at `up` and restored at `down`; the kubelet's
#     kubepods cgroups are removed, and so are the fixed paths below (FIXED_PATHS)
#     that were absent before `up`.
# The kubeconfig (context `scaletest-realnode`) is $dir/admin.kubeconfig.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../upstream/versions.env
source "$root/upstream/versions.env"

dir=${SCALETEST_REALNODE_DIR:-/var/lib/scaletest-realnode}
cache=${SCALETEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scaletest}
NETNS=scaletest-node
HOST_IF=stnode0
NODE_IF=eth0
HOST_IP=10.213.0.1
NODE_IP=10.213.0.2
POD_CIDR=10.214.0.0/24
SERVICE_CIDR=10.215.0.0/24
SERVICE_IP=10.215.0.1
API_PORT=16443
KINE_PORT=16379
KINE_METRICS_PORT=16380
KCM_PORT=16457
SCHED_PORT=16459
NODE_NAME=scaletest-node
CONTEXT=scaletest-realnode
PAUSE_IMAGE=localhost/scaletest/pause:1
DEBIAN_PACKAGES=(containerd runc containernetworking-plugins iptables buildah)
GLOBAL_SYSCTLS=(kernel.panic kernel.panic_on_oops vm.overcommit_memory)
CNI_BIN=/usr/lib/cni
LOCK=${SCALETEST_REALNODE_LOCK:-/tmp/scaletest-realnode.lock}
# Created whatever the roots we give: CNI's result cache (/var/lib/cni), the kubelet's
# /var/log/containers links and device-plugin socket (/var/lib/kubelet/device-plugins),
# the shims' sockets (/run/containerd/s), buildah's blob-info cache (/var/lib/containers).
FIXED_PATHS=(/var/lib/cni /var/log/containers /var/lib/kubelet /run/containerd /var/lib/containers)

pki=$dir/pki
logs=$dir/logs
pids=$dir/pids
sock=$dir/containerd/containerd.sock

log() { printf '[realnode] %s\n' "$*" >&2; }
die() { printf '[realnode] %s\n' "$*" >&2; exit 1; }
innode() { nsenter --net="/run/netns/$NETNS" -- "$@"; }
ctr_() { ctr --address "$sock" -n k8s.io "$@"; }
kc() { "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" "$@"; }

# ---------------------------------------------------------------------------- checks

# One line naming the missing fact, when this machine cannot run a node.
preflight() {
  [ "$(id -u)" = 0 ] || die "needs root (network namespace, containerd, kubelet)"
  [ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || die "no memory cgroup: cannot run containers"
  grep -qw overlay /proc/filesystems || modprobe overlay 2>/dev/null || die "no overlayfs: cannot run containers"
  command -v nsenter >/dev/null || die "no nsenter (util-linux)"
  command -v go >/dev/null || die "no Go toolchain (kubelet, kube-proxy and the pause image are built here)"
  command -v apt-get >/dev/null || dpkg -s "${DEBIAN_PACKAGES[@]}" >/dev/null 2>&1 \
    || die "no apt-get to install ${DEBIAN_PACKAGES[*]}"
}

# ---------------------------------------------------------------------------- lock

# True when a process above this one holds $LOCK (flock(1) or a test holding it
# across up..down): taking it again here would wait for ourselves.
lock_held_by_caller() {
  [ -e "$LOCK" ] || return 1
  local ino holders p
  ino=$(stat -c %i "$LOCK")
  # /proc/locks: "1: FLOCK ADVISORY WRITE <pid> <maj>:<min>:<inode> 0 EOF"
  holders=$(awk -v ino="$ino" '$2 == "FLOCK" { n = split($6, a, ":"); if (a[n] == ino) print $5 }' /proc/locks)
  [ -n "$holders" ] || return 1
  p=$$
  while [ -n "$p" ] && [ "$p" -gt 1 ]; do
    grep -qx "$p" <<<"$holders" && return 0
    p=$(awk '/^PPid:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
  done
  return 1
}

# Takes $LOCK for the node's lifetime: a holder process (its pid in $lock_holder)
# keeps the lock's file descriptor open until `down` stops it.
lock_holder=""
take_lock() {
  if lock_held_by_caller; then log "$LOCK is held by a caller"; return; fi
  exec 9>>"$LOCK"
  if ! flock -n 9; then
    log "waiting for $LOCK: another real node is up on this machine"
    flock -w "${SCALETEST_REALNODE_LOCK_WAIT:-3600}" 9 || die "$LOCK still held after ${SCALETEST_REALNODE_LOCK_WAIT:-3600} s"
  fi
  setsid sleep infinity </dev/null >/dev/null 2>&1 &
  lock_holder=$!
  exec 9>&-
}

install_packages() {
  local missing=() p
  for p in "${DEBIAN_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return
  log "apt-get install ${missing[*]}"
  apt-get update -qq
  # policy-rc.d keeps containerd's package service from starting.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

# ---------------------------------------------------------------------------- PKI

cert() { # cert NAME CN [O] [SANS] [EKU]
  local name=$1 cn=$2 o=${3:-} sans=${4:-} eku=${5:-clientAuth}
  local subj="/CN=$cn"; [ -n "$o" ] && subj="/O=$o$subj"
  openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } >"$pki/$name.ext"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$pki/$name.ext"
}

kubeconfig() { # kubeconfig FILE CERT-NAME [SERVER]
  local server=${3:-https://$HOST_IP:$API_PORT}
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $CONTEXT
  cluster:
    server: $server
    certificate-authority: $pki/ca.crt
users:
- name: $2
  user:
    client-certificate: $pki/$2.crt
    client-key: $pki/$2.key
contexts:
- name: $CONTEXT
  context:
    cluster: $CONTEXT
    user: $2
current-context: $CONTEXT
EOF
}

make_pki() {
  mkdir -p "$pki"; chmod 700 "$pki"
  openssl genrsa -out "$pki/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=scaletest-realnode-ca" -days 30 -out "$pki/ca.crt" 2>/dev/null
  cert apiserver kube-apiserver "" \
    "IP:$HOST_IP,IP:$SERVICE_IP,IP:127.0.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost" \
    serverAuth
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert admin scaletest-realnode-admin system:masters
  cert controller-manager system:kube-controller-manager
  cert scheduler system:kube-scheduler
  cert kube-proxy system:kube-proxy
  cert kubelet "system:node:$NODE_NAME" system:nodes
  cert kubelet-serving "system:node:$NODE_NAME" system:nodes "IP:$NODE_IP,DNS:$NODE_NAME" serverAuth
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  kubeconfig "$dir/admin.kubeconfig" admin
  kubeconfig "$dir/controller-manager.kubeconfig" controller-manager
  kubeconfig "$dir/scheduler.kubeconfig" scheduler
  kubeconfig "$dir/kube-proxy.kubeconfig" kube-proxy
  kubeconfig "$dir/kubelet.kubeconfig" kubelet
}

# ---------------------------------------------------------------------------- processes

start() { # start NAME [--node] PROGRAM ARGS...: in the background, own session, logged
  local name=$1; shift
  local prefix=()
  if [ "$1" = --node ]; then prefix=(nsenter "--net=/run/netns/$NETNS" --); shift; fi
  setsid "${prefix[@]}" "$@" >"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$pids/$name"
  log "started $name (pid $!, log $logs/$name.log)"
}

wait_for() { # wait_for WHAT SECONDS COMMAND...
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then die "$what not ready within ${secs}s (logs: $logs)"; fi
    sleep 1
  done
  log "$what ready"
}

stop() { # stop NAME: SIGTERM its process group, SIGKILL after 20 s
  local f="$pids/$1" pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    log "stopped $1 (pid $pid)"
  fi
  rm -f "$f"
}

# ---------------------------------------------------------------------------- network

network_up() {
  ip netns add "$NETNS"
  ip link add "$HOST_IF" type veth peer name "$NODE_IF" netns "$NETNS"
  ip addr add "$HOST_IP/24" dev "$HOST_IF"
  ip link set "$HOST_IF" up
  innode ip addr add "$NODE_IP/24" dev "$NODE_IF"
  innode ip link set "$NODE_IF" up
  innode ip link set lo up
  innode ip route add default via "$HOST_IP"
  # Service traffic between Pods on the node's bridge goes through iptables (kube-proxy).
  modprobe br_netfilter 2>/dev/null || true
  innode sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
  innode sysctl -qw net.ipv4.ip_forward=1
}

network_down() {
  if [ -e "/run/netns/$NETNS" ]; then
    ip netns del "$NETNS" && log "network namespace $NETNS deleted (its bridge, veths and iptables rules with it)"
  fi
  ip link del "$HOST_IF" 2>/dev/null || true
}

# ---------------------------------------------------------------------------- images

pause_image() {
  local work; work=$(mktemp -d)
  (cd "$root/images/pause" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$work/pause" pause.go)
  cp "$root/images/pause/Containerfile" "$work/"
  local st="$work/storage"
  buildah --root "$st" --runroot "$st/run" --storage-driver vfs bud --quiet --timestamp 0 --pull-never \
    --isolation chroot --format oci -f "$work/Containerfile" -t "$PAUSE_IMAGE" "$work" >/dev/null
  buildah --root "$st" --runroot "$st/run" --storage-driver vfs push --quiet "$PAUSE_IMAGE" \
    "oci-archive:$dir/pause.oci.tar:$PAUSE_IMAGE"
  buildah --root "$st" --runroot "$st/run" --storage-driver vfs rm --all >/dev/null 2>&1 || true
  rm -rf "$work"
  ctr_ images import "$dir/pause.oci.tar" >/dev/null
}

import() {
  local a
  for a in "$@"; do
    [ -f "$a" ] || die "no such archive: $a"
    ctr_ images import "$a" | sed 's/^/[realnode] imported /' >&2
  done
}

# ---------------------------------------------------------------------------- up

write_configs() {
  mkdir -p "$dir/containerd" "$dir/cni/net.d" "$dir/cni/ipam" "$dir/kubelet" "$dir/pod-logs" "$dir/runc" "$dir/kine"
  cat >"$dir/containerd/config.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$dir/containerd/containerd.sock.ttrpc"
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "$dir/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # No CAP_SYS_RESOURCE here: the sandbox's -998 would fail in runc.
  restrict_oom_score_adj = true
  disable_apparmor = true
  # Pod network namespaces under our state dir, not /run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$dir/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$dir/cni/net.d"
EOF
  cat >"$dir/cni/net.d/10-scaletest.conflist" <<EOF
{
  "cniVersion": "0.4.0",
  "name": "scaletest",
  "plugins": [
    {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]],
              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$dir/cni/ipam"}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  printf 'nameserver 127.0.0.1\n' >"$dir/resolv.conf"
  cat >"$dir/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
containerRuntimeEndpoint: unix://$sock
failCgroupV1: false
cgroupDriver: cgroupfs
oomScoreAdj: 0
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization:
  mode: Webhook
podLogsDir: $dir/pod-logs
resolvConf: $dir/resolv.conf
failSwapOn: false
protectKernelDefaults: false
imageGCHighThresholdPercent: 100
evictionHard:
  memory.available: 200Mi
  nodefs.available: 2%
  imagefs.available: 2%
EOF
  cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection:
  kubeconfig: $dir/kube-proxy.kubeconfig
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
EOF
  cat >"$dir/scheduler.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $dir/scheduler.kubeconfig
leaderElection:
  leaderElect: false
EOF
}

save_machine_state() {
  local s
  : >"$dir/sysctls.saved"
  for s in "${GLOBAL_SYSCTLS[@]}"; do echo "$s=$(sysctl -n "$s")" >>"$dir/sysctls.saved"; done
  # Paths the node's programs create whatever their configured roots: removed by
  # `down` if they were not there before.
  local p
  for p in "${FIXED_PATHS[@]}"; do [ -e "$p" ] || echo "$p" >>"$dir/created-paths"; done
}

up() {
  preflight
  take_lock
  # Until the node's directory records the holder, a failure releases the lock here.
  trap '[ -z "$lock_holder" ] || kill "$lock_holder" 2>/dev/null || true' EXIT
  if [ -e "$dir" ]; then die "$dir exists: run \`$0 down\` first"; fi
  # `ip netns add` makes /run/netns a (shared) bind mount of itself: undone by `down`
  # when it was not there before.
  local fresh_run_netns=0
  [ -e /run/netns ] || fresh_run_netns=1
  install_packages
  local up_bin
  up_bin=$("$root/scripts/upstream.sh" build)
  SCALETEST_SKIP_PROMETHEUS=1 "$root/scripts/upstream.sh" node >/dev/null
  bin=$up_bin
  mkdir -p "$dir" "$logs" "$pids"
  [ -z "$lock_holder" ] || echo "$lock_holder" >"$pids/lock-holder"
  save_machine_state
  [ $fresh_run_netns = 0 ] || touch "$dir/remove-run-netns"
  # From here on, a failure leaves a half-made node: take it down again.
  up_ok=0
  trap 'if [ "$up_ok" != 1 ] && [ "${SCALETEST_REALNODE_KEEP:-}" != 1 ]; then
          log "up failed: tearing down (SCALETEST_REALNODE_KEEP=1 keeps the node for a look)"; down; fi' EXIT
  make_pki
  write_configs
  network_up

  # Control plane, in the host's network namespace. SCALETEST_REALNODE_APISERVER_ARGS:
  # extra apiserver flags, space-separated (scripts/fidelity.py turns on its audit log).
  local apiserver_extra=()
  read -ra apiserver_extra <<<"${SCALETEST_REALNODE_APISERVER_ARGS:-}"
  start kine "$bin/kine" --listen-address="127.0.0.1:$KINE_PORT" \
    --endpoint="sqlite://$dir/kine/state.db?_journal=WAL&cache=shared&_busy_timeout=120000&_txlock=immediate" \
    --metrics-bind-address="127.0.0.1:$KINE_METRICS_PORT"
  wait_for kine 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$KINE_PORT"
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$KINE_PORT" \
    --bind-address="$HOST_IP" --advertise-address="$HOST_IP" --secure-port="$API_PORT" \
    --cert-dir="$dir/apiserver" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$pki/ca.crt" \
    --kubelet-preferred-address-types=InternalIP \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true --profiling=false "${apiserver_extra[@]}"
  wait_for kube-apiserver 120 "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" get --raw /readyz
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$dir/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$dir/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$dir/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --cert-dir="$dir/controller-manager" \
    --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" --profiling=false
  start kube-scheduler "$bin/kube-scheduler" --config="$dir/scheduler.yaml" \
    --authentication-kubeconfig="$dir/scheduler.kubeconfig" \
    --authorization-kubeconfig="$dir/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT" --cert-dir="$dir/scheduler" --profiling=false

  # The node, in its network namespace.
  start containerd --node containerd --config "$dir/containerd/config.toml"
  wait_for containerd 30 ctr --address "$sock" version
  log "pause image: go build + buildah bud ($PAUSE_IMAGE)"
  pause_image
  [ $# -gt 0 ] && import "$@"
  start kubelet --node "$bin/kubelet" --config="$dir/kubelet/config.yaml" \
    --kubeconfig="$dir/kubelet.kubeconfig" --root-dir="$dir/kubelet" \
    --hostname-override="$NODE_NAME" --node-ip="$NODE_IP"
  start kube-proxy --node "$bin/kube-proxy" --config="$dir/kube-proxy.yaml"
  wait_for "node $NODE_NAME" 180 "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" \
    wait --for=condition=Ready "node/$NODE_NAME" --timeout=5s
  wait_for "kubernetes Service endpoints" 60 bash -c \
    "'$bin/kubectl' --kubeconfig '$dir/admin.kubeconfig' get endpointslices -n default -l kubernetes.io/service-name=kubernetes -o jsonpath='{.items[0].endpoints[0].addresses[0]}' | grep -qx '$HOST_IP'"
  up_ok=1
  log "up: export KUBECONFIG=$dir/admin.kubeconfig (context $CONTEXT)"
  echo "$dir/admin.kubeconfig"
}

# ---------------------------------------------------------------------------- down

unmount_under() { # every mount point under $1, deepest first
  local m
  findmnt -rn -o TARGET | awk -v p="$1" 'index($0, p) == 1' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
}

remove_kubepods_cgroups() {
  local ctl d
  for ctl in /sys/fs/cgroup/*/; do
    [ -d "$ctl/kubepods" ] || [ -d "$ctl/kubepods.slice" ] || continue
    for d in "$ctl/kubepods" "$ctl/kubepods.slice"; do
      [ -d "$d" ] || continue
      find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
  done
}

down() {
  [ -d "$dir" ] || { log "nothing to tear down ($dir absent)"; network_down; return 0; }
  bin=$("$root/scripts/upstream.sh" bin-dir)
  # Pods first, while the kubelet runs, so their sandboxes, mounts and CNI state go
  # the normal way (CRI StopPodSandbox, CNI DEL).
  if [ -f "$pids/kubelet" ] && kc get --raw /readyz >/dev/null 2>&1; then
    kc get ns -o name | grep -v -E '^namespace/(default|kube-system|kube-public|kube-node-lease)$' \
      | xargs -r "$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig" delete --wait=false >/dev/null 2>&1 || true
    kc delete pods --all -A --grace-period=5 --timeout=60s >/dev/null 2>&1 || true
  fi
  # Any sandbox left: stop and remove through containerd.
  if [ -f "$pids/containerd" ]; then
    local c
    for c in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$c" >/dev/null 2>&1 || true; done
    sleep 1
    for c in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks rm -f "$c" >/dev/null 2>&1 || true; done
    for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers rm "$c" >/dev/null 2>&1 || true; done
  fi
  local n
  for n in kube-proxy kubelet containerd kube-scheduler kube-controller-manager kube-apiserver kine; do stop "$n"; done
  # containerd-shim processes outlive containerd: they hold the sandboxes.
  pkill_shims
  unmount_under "$dir/"
  local m
  for m in $(findmnt -rn -o TARGET | grep -E '^/run/netns/cni-' || true); do umount -l "$m" 2>/dev/null || true; rm -f "$m"; done
  network_down
  remove_kubepods_cgroups
  if [ -f "$dir/sysctls.saved" ]; then
    while IFS= read -r kv; do sysctl -qw "$kv" || true; done <"$dir/sysctls.saved"
    log "restored $(tr '\n' ' ' <"$dir/sysctls.saved")"
  fi
  if [ -f "$dir/created-paths" ]; then
    local p
    while IFS= read -r p; do rm -rf "$p"; done <"$dir/created-paths"
  fi
  if [ -f "$dir/remove-run-netns" ] && [ -z "$(ls -A /run/netns 2>/dev/null)" ]; then
    umount /run/netns 2>/dev/null || true
    rmdir /run/netns 2>/dev/null || true
  fi
  local holder=""
  [ -f "$pids/lock-holder" ] && holder=$(cat "$pids/lock-holder")
  rm -rf "$dir"
  # Last: the next node may come up from here on.
  if [ -n "$holder" ] && [ "$(tr '\0' ' ' <"/proc/$holder/cmdline" 2>/dev/null)" = "sleep infinity " ]; then
    kill "$holder" && log "released $LOCK"
  fi
  log "down: nothing left ($dir removed)"
}

# The shims of our containerd: their command line names our socket's directory.
pkill_shims() {
  local p
  for p in $(pgrep -f "containerd-shim-runc-v2 .*-address $sock" || true); do
    kill -KILL "$p" 2>/dev/null || true
  done
}

status() {
  [ -d "$dir" ] || { echo "down"; return 0; }
  bin=$("$root/scripts/upstream.sh" bin-dir)
  local n
  for n in kine kube-apiserver kube-controller-manager kube-scheduler containerd kubelet kube-proxy; do
    if [ -f "$pids/$n" ] && kill -0 "$(cat "$pids/$n")" 2>/dev/null; then echo "$n: running (pid $(cat "$pids/$n"))"
    else echo "$n: NOT running (log $logs/$n.log)"; fi
  done
  kc get nodes -o wide || true
  kc get endpointslices -n default -l kubernetes.io/service-name=kubernetes || true
  ctr_ images ls -q 2>/dev/null | grep -v '^sha256:' || true
  echo "KUBECONFIG=$dir/admin.kubeconfig (context $CONTEXT)"
}

case "${1:-}" in
  up) shift; up "$@" ;;
  down) down ;;
  status) status ;;
  import) shift; import "$@" ;;
  kubeconfig) echo "$dir/admin.kubeconfig" ;;
  preflight) preflight; log "this machine can run a real node" ;;
  *) echo "usage: $0 up [ARCHIVE...] | import ARCHIVE... | status | down | kubeconfig | preflight" >&2; exit 2 ;;
esac
