#!/usr/bin/env bash
# Runs all tests, printing the time of each phase at the end:
#   unit     unit and component tests of both crates (no sandbox);
#   build    the binaries and the end-to-end test binaries, once;
#   gen C    a sandbox of the default controller generation (docs/deckhouse-real.md §1):
#            the whole end-to-end suite, E2E_THREADS at a time, then the tests listed in
#            tests/e2e/serial.txt (a few at once, then those that must run alone);
#   gen B, D the same sandbox switched in place (sandbox/scripts/set-generation.sh):
#            the `generations` group (gen D with the index digest rule of §3.1);
#   gen A    MPO v1alpha1 only, so a sandbox of its own, started in the background
#            while gen C's suite runs: the `generations` group and the old-cluster tests.
# GENERATIONS="A B D" picks the other generations; sandboxes are torn down whatever the
# outcome. Arguments are passed to every end-to-end run (e.g. a test name filter).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
MPO_PREREQS_QUIET=1 scripts/prereqs.sh
MAIN_DIR="${TEST_SANDBOX_DIR:-$ROOT/target/sandbox-test}"
A_DIR="$MAIN_DIR-gen-A"
A_LOG="$MAIN_DIR.gen-A.log"
GENERATIONS="${GENERATIONS:-A B D}"
THREADS="${E2E_THREADS:-4}"
export MPO_SANDBOX_PREBUILT=1

# tests/e2e/serial.txt: `timed` tests run after the pool, TIMED_THREADS at once; `alone`
# tests run last, one by one.
TIMED_THREADS="${TIMED_THREADS:-3}"
mapfile -t TIMED < <(awk '$1 == "timed" {print $2}' tests/e2e/serial.txt)
mapfile -t ALONE < <(awk '$1 == "alone" {print $2}' tests/e2e/serial.txt)
SKIP=()
for test in "${TIMED[@]}" "${ALONE[@]}"; do SKIP+=(--skip "$test"); done

TIMES=()
STARTED=$SECONDS
status=0
# phase NAME COMMAND...: runs COMMAND, records its time and whether it failed.
phase() {
  local name=$1 start=$SECONDS code=0
  shift
  printf '\n[test] === %s\n' "$name" >&2
  "$@" || code=$?
  TIMES+=("$(printf '%-44s %5ds  %s' "$name" $((SECONDS - start)) "$([[ $code == 0 ]] && echo ok || echo "FAILED ($code)")")")
  if [[ $code != 0 ]]; then status=$code; fi
  return 0
}
has_gen() { [[ " $GENERATIONS " == *" $1 "* ]]; }

A_PID=""
cleanup() {
  [[ -n "$A_PID" ]] && kill "$A_PID" 2>/dev/null
  SANDBOX_DIR="$MAIN_DIR" sandbox/scripts/down.sh 2>/dev/null || true
  SANDBOX_DIR="$A_DIR" sandbox/scripts/down.sh 2>/dev/null || true
  printf '\n[test] phase times\n' >&2
  for line in "${TIMES[@]}"; do printf '[test]   %s\n' "$line" >&2; done
  printf '[test]   %-44s %5ds\n' total $((SECONDS - STARTED)) >&2
}
trap cleanup EXIT

build() {
  cargo build --workspace --bins
  cargo test --workspace --tests --no-run
}
e2e() { MPO_SANDBOX_DIR="$1" cargo test --workspace --test "$2" --no-fail-fast -- "${@:3}"; }

phase "unit and component tests" cargo test --workspace --lib --bins --test component
phase "build" build
((status == 0)) || exit $status

phase "sandbox up (gen C)" env SANDBOX_DIR="$MAIN_DIR" GEN=C sandbox/scripts/up.sh
((status == 0)) || exit $status
# The overrides the seeder made; the ones gen C's tests leave are deleted before the
# sandbox switches generation, so that the restarted controller (one worker on gen D)
# does not first re-check a few hundred of them.
on_main() { (source "$MAIN_DIR/env.sh" && "$@"); }
on_main kubectl get modulepulloverrides.deckhouse.io -o name >"$MAIN_DIR.seeded"
leftovers_gone() {
  local names
  names=$(on_main kubectl get modulepulloverrides.deckhouse.io -o name | grep -vxF -f "$MAIN_DIR.seeded" || true)
  [[ -z "$names" ]] || on_main xargs -n 50 kubectl delete --wait=false <<<"$names" >/dev/null
}
if has_gen A; then
  # Gen A's sandbox starts beside gen C's suite, which mostly waits on the controller;
  # its tests run at the end, on their own.
  (SANDBOX_DIR="$A_DIR" GEN=A sandbox/scripts/up.sh >"$A_LOG" 2>&1) &
  A_PID=$!
fi

phase "e2e gen C ($THREADS threads)" e2e "$MAIN_DIR" e2e --test-threads "$THREADS" --exact "${SKIP[@]}" "$@"
phase "e2e gen C (timed, $TIMED_THREADS threads)" e2e "$MAIN_DIR" e2e --test-threads "$TIMED_THREADS" --exact "${TIMED[@]}" "$@"
phase "e2e gen C (alone, one by one)" e2e "$MAIN_DIR" e2e --test-threads 1 --exact "${ALONE[@]}" "$@"

for gen in B D; do
  has_gen "$gen" || continue
  rule=child
  [[ "$gen" == D ]] && rule=index
  phase "leftovers deleted" leftovers_gone
  phase "switch to gen $gen" env SANDBOX_DIR="$MAIN_DIR" GEN="$gen" DIGEST_RULE="$rule" sandbox/scripts/set-generation.sh
  phase "e2e gen $gen (generations::)" e2e "$MAIN_DIR" e2e --test-threads "$THREADS" generations:: "$@"
done
SANDBOX_DIR="$MAIN_DIR" sandbox/scripts/down.sh

if [[ -n "$A_PID" ]]; then
  a_up() {
    local code=0
    wait "$A_PID" || code=$?
    A_PID=""
    ((code == 0)) || cat "$A_LOG" >&2
    return "$code"
  }
  phase "sandbox up (gen A, started beside gen C: the rest)" a_up
  if [[ -f "$A_DIR/state.json" ]]; then
    phase "e2e gen A (generations::)" e2e "$A_DIR" e2e --test-threads "$THREADS" generations:: "$@"
    phase "e2e gen A (old cluster)" e2e "$A_DIR" e2e_v1alpha1 --test-threads "$THREADS" "$@"
  fi
  SANDBOX_DIR="$A_DIR" sandbox/scripts/down.sh
fi
exit $status
