#!/usr/bin/env bash
# The release archive installs with a real krew: krew and its manifest validator are
# built from their Go modules (cached), the rendered manifest is validated, the plugin
# is installed into a throw-away KREW_ROOT and run through kubectl.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
BIN="${MPO_CACHE_DIR:-$HOME/.cache/kubectl-mpo}/bin"
KREW_VERSION=v0.4.3
for tool in krew validate-krew-manifest; do
  if [[ ! -x "$BIN/$tool" ]]; then
    mkdir -p "$BIN"
    (cd "$(mktemp -d)" && GOBIN="$BIN" GOFLAGS=-mod=mod go install "sigs.k8s.io/krew/cmd/$tool@$KREW_VERSION")
  fi
done
mapfile -t built < <(MPO_DIST_URI="file://$ROOT/dist/local-archive.tar.gz" scripts/dist.sh)
archive="${built[0]}"
"$BIN/validate-krew-manifest" -manifest dist/mpo.yaml -skip-install
export KREW_ROOT
KREW_ROOT="$(mktemp -d)"
trap 'rm -rf "$KREW_ROOT"' EXIT
"$BIN/krew" install --manifest=dist/mpo.yaml --archive="$archive" >/dev/null 2>&1
export PATH="$KREW_ROOT/bin:$PATH"
kubectl plugin list 2>/dev/null | grep -q "$KREW_ROOT/bin/kubectl-mpo" || { echo "kubectl plugin list does not find kubectl-mpo" >&2; exit 1; }
kubectl mpo version --client | grep -q "^kubectl-mpo " || { echo "kubectl mpo version failed" >&2; exit 1; }
test -x "$KREW_ROOT/store/mpo/"*/kubectl_complete-mpo
# The one step krew cannot do: the completion helper on PATH, next to the plugin.
kubectl mpo completion --install-helper >/dev/null
test -x "$KREW_ROOT/bin/kubectl_complete-mpo"
kubectl __complete mpo vers 2>/dev/null | cut -f1 | grep -qx version || { echo "kubectl __complete mpo does not complete" >&2; exit 1; }
echo "krew install ok: $(kubectl mpo version --client)"
