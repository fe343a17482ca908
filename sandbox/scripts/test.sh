#!/usr/bin/env bash
# Runs all tests: unit tests; end-to-end tests against a sandbox of their own
# (target/sandbox-test); then the old-cluster tests against a sandbox that serves only
# ModulePullOverride v1alpha1. Sandboxes are torn down whatever the outcome.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
MPO_PREREQS_QUIET=1 scripts/prereqs.sh
MAIN_DIR="${TEST_SANDBOX_DIR:-$ROOT/target/sandbox-test}"
OLD_DIR="$MAIN_DIR-v1alpha1"

cargo test --workspace --lib --bins

cleanup() {
  SANDBOX_DIR="$MAIN_DIR" sandbox/scripts/down.sh || true
  SANDBOX_DIR="$OLD_DIR" sandbox/scripts/down.sh || true
}
trap cleanup EXIT

status=0
SANDBOX_DIR="$MAIN_DIR" sandbox/scripts/up.sh
MPO_SANDBOX_DIR="$MAIN_DIR" cargo test --workspace --test e2e --no-fail-fast -- "$@" || status=$?
SANDBOX_DIR="$MAIN_DIR" sandbox/scripts/down.sh

SANDBOX_DIR="$OLD_DIR" MPO_SANDBOX_MPO_VERSION=v1alpha1 sandbox/scripts/up.sh
MPO_SANDBOX_DIR="$OLD_DIR" cargo test --workspace --test e2e_v1alpha1 --no-fail-fast -- "$@" || status=$?
SANDBOX_DIR="$OLD_DIR" sandbox/scripts/down.sh

# Distribution: the release archive installs with a real krew and runs.
scripts/krew-check.sh || status=$?
exit $status
