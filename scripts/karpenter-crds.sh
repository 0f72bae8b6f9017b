#!/usr/bin/env bash
# Karpenter's CRDs under profiles/karpenter/crds/ are copies of the files in
# the module version upstream/versions.env pins (KARPENTER_VERSION), each with
# a header naming where it came from. This keeps them equal to it:
#   scripts/karpenter-crds.sh check     diff the committed copies against the pinned module (exit 1 on drift)
#   scripts/karpenter-crds.sh update    rewrite the copies from the pinned module (after moving the pin)
# The module comes through the Go module proxy (`go mod download`), like every pin.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../upstream/versions.env
source "$root/upstream/versions.env"

module=sigs.k8s.io/karpenter
v=$KARPENTER_VERSION
dest="$root/profiles/karpenter/crds"
# Paths inside the module. The kwok chart's own copies (kwok/charts/crds/) differ
# only by a validation rule reserving the karpenter.kwok.sh label domain.
files=(
  pkg/apis/crds/karpenter.sh_nodepools.yaml
  pkg/apis/crds/karpenter.sh_nodeclaims.yaml
  pkg/apis/crds/karpenter.sh_nodeoverlays.yaml
  kwok/apis/crds/karpenter.kwok.sh_kwoknodeclasses.yaml
)

moddir() {
  local dir
  # Even `go mod download` refuses a module whose go.mod asks for a newer Go.
  dir=$(GOTOOLCHAIN=$KARPENTER_GOTOOLCHAIN go mod download -json "$module@$v" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir" ] || { echo "go mod download $module@$v gave no directory" >&2; exit 1; }
  echo "$dir"
}

render() { # render MODDIR PATH: the committed form of one CRD
  printf '# Copied from %s@%s %s by scripts/karpenter-crds.sh: do not edit.\n' "$module" "$v" "$2"
  cat "$1/$2"
}

case "${1:-check}" in
  update)
    dir=$(moddir)
    mkdir -p "$dest"
    for f in "${files[@]}"; do render "$dir" "$f" >"$dest/$(basename "$f")"; done
    echo "profiles/karpenter/crds/: ${#files[@]} CRDs from $module@$v"
    ;;
  check)
    dir=$(moddir)
    rc=0
    for f in "${files[@]}"; do
      if ! diff -u "$dest/$(basename "$f")" <(render "$dir" "$f") >&2; then
        echo "profiles/karpenter/crds/$(basename "$f") differs from $module@$v $f (scripts/karpenter-crds.sh update)" >&2
        rc=1
      fi
    done
    [ "$rc" = 0 ] && echo "profiles/karpenter/crds/: equal to $module@$v"
    exit "$rc"
    ;;
  *) echo "usage: $0 [check|update]" >&2; exit 2 ;;
esac
