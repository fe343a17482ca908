#!/usr/bin/env bash
# The walkthrough from the DKP module-development docs, done with kubectl mpo against
# the local sandbox (make sandbox-up runs first). Safe to run again.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SANDBOX_DIR="${SANDBOX_DIR:-$ROOT/target/sandbox}"
# The same build directory as sandbox/scripts/up.sh (cargo's CARGO_TARGET_DIR).
TARGET_DIR="$(cd "$ROOT" && mkdir -p "${CARGO_TARGET_DIR:-target}" && cd "${CARGO_TARGET_DIR:-target}" && pwd)"
# shellcheck disable=SC1091
. "$SANDBOX_DIR/env.sh"

step() { printf '\n\033[1m# %s\033[0m\n' "$1"; }
run() { printf '$ %s\n' "$*"; "$@"; local code=$?; [[ $code -eq 0 ]] || printf '(exit %d)\n' "$code"; }

step "The plugin is on PATH through env.sh"
run kubectl mpo version

step "What the ModuleSource 'test' offers (no crane, no credentials copied by hand)"
run kubectl mpo registry modules --source test
run kubectl mpo registry tags echo
run kubectl mpo registry releases echo

step "Run the echo build main-patch-03354 (checks first, then waits for the controller)"
kubectl mpo delete echo --yes --wait >/dev/null 2>&1
run kubectl mpo create echo --tag main-patch-03354 --wait
run kubectl get mpo echo

step "Every override, with the cluster's and the registry's digest"
run kubectl mpo status

step "Why an override is not Ready, and the exact fix"
run kubectl mpo explain disabled-module

step "A new build is pushed under the same tag: the cluster is now behind"
"$TARGET_DIR/debug/mpo-sandbox" push-module --state "$SANDBOX_DIR/state.json" \
  --module echo --tag main-patch-03354 --note "demo build $(date +%s)" >/dev/null
run kubectl mpo diff echo --content

step "Renew: re-check now instead of waiting for the scan interval"
run kubectl mpo renew echo --wait
run kubectl mpo diff echo

printf '\nTry it yourself:  . %s/env.sh && kubectl mpo --help\n' "$SANDBOX_DIR"
