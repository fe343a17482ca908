#!/usr/bin/env bash
# Installs the plugin with a real krew (built from its Go module, cached) from the
# locally built archive into a throw-away KREW_ROOT, and runs it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${MPO_CACHE_DIR:-$HOME/.cache/kubectl-mpo}/bin"
if [[ ! -x "$BIN/krew" ]]; then
  mkdir -p "$BIN"
  (cd "$(mktemp -d)" && GOBIN="$BIN" GOFLAGS=-mod=mod go install sigs.k8s.io/krew/cmd/krew@v0.4.3)
fi
mapfile -t built < <(MPO_DIST_URI="file://$ROOT/dist/placeholder" scripts/dist.sh)
archive="${built[0]}"
export KREW_ROOT
KREW_ROOT="$(mktemp -d)"
trap 'rm -rf "$KREW_ROOT"' EXIT
"$BIN/krew" install --manifest=dist/mpo.yaml --archive="$archive" >/dev/null
"$KREW_ROOT/bin/kubectl-mpo" version
test -x "$KREW_ROOT/store/mpo/"*/kubectl_complete-mpo
echo "krew install ok"
