#!/usr/bin/env bash
# Builds the sandbox's OpenID Connect provider (sandbox/oidc: the example OP of
# github.com/zitadel/oidc/v3 at the version pinned in its go.mod) and caches the binary
# under a name derived from its sources; a second run with the same sources does nothing.
# Prints the binary's path.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SRC="$ROOT/sandbox/oidc"
CACHE_DIR="${MPO_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kubectl-mpo}"
HASH=$(cat "$SRC/go.mod" "$SRC/go.sum" "$SRC/main.go" | sha256sum | cut -c1-16)
BIN="$CACHE_DIR/oidc/$HASH/mpo-oidc"

if [[ -x "$BIN" ]]; then
  echo "$BIN"
  exit 0
fi
mkdir -p "$(dirname "$BIN")"
(
  cd "$SRC"
  CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=mod" go build -trimpath -ldflags "-s -w" -o "$BIN.tmp" .
  mv "$BIN.tmp" "$BIN"
) >&2
echo "$BIN"
