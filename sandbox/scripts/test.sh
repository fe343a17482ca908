#!/usr/bin/env bash
# Runs all tests: unit tests; the whole end-to-end suite against a sandbox of the
# default controller generation (C, target/sandbox-test); then, per other generation
# (docs/deckhouse-real.md §1), a sandbox of its own running the `generations` e2e group
# (gen A also the old-cluster tests, gen D with the index digest rule of §3.1).
# GENERATIONS="A B D" picks which; sandboxes are torn down whatever the outcome.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
MPO_PREREQS_QUIET=1 scripts/prereqs.sh
MAIN_DIR="${TEST_SANDBOX_DIR:-$ROOT/target/sandbox-test}"
GENERATIONS="${GENERATIONS:-A B D}"

cargo test --workspace --lib --bins

gen_dir() { echo "$MAIN_DIR-gen-$1"; }
cleanup() {
  SANDBOX_DIR="$MAIN_DIR" sandbox/scripts/down.sh || true
  for gen in $GENERATIONS; do
    SANDBOX_DIR="$(gen_dir "$gen")" sandbox/scripts/down.sh || true
  done
}
trap cleanup EXIT

status=0
SANDBOX_DIR="$MAIN_DIR" GEN=C sandbox/scripts/up.sh
MPO_SANDBOX_DIR="$MAIN_DIR" cargo test --workspace --test e2e --no-fail-fast -- "$@" || status=$?
SANDBOX_DIR="$MAIN_DIR" sandbox/scripts/down.sh

for gen in $GENERATIONS; do
  dir="$(gen_dir "$gen")"
  rule=child
  [[ "$gen" == D ]] && rule=index
  SANDBOX_DIR="$dir" GEN="$gen" DIGEST_RULE="$rule" sandbox/scripts/up.sh
  MPO_SANDBOX_DIR="$dir" cargo test --workspace --test e2e --no-fail-fast -- generations:: || status=$?
  if [[ "$gen" == A ]]; then
    MPO_SANDBOX_DIR="$dir" cargo test --workspace --test e2e_v1alpha1 --no-fail-fast -- "$@" || status=$?
  fi
  SANDBOX_DIR="$dir" sandbox/scripts/down.sh
done

exit $status
