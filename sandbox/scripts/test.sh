#!/usr/bin/env bash
# Runs all tests: unit tests, then end-to-end tests against a sandbox of their own
# (target/sandbox-test), which is torn down afterwards whatever the outcome.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
export SANDBOX_DIR="${TEST_SANDBOX_DIR:-$ROOT/target/sandbox-test}"
export MPO_SANDBOX_DIR="$SANDBOX_DIR"

cargo test --workspace --lib --bins

trap 'sandbox/scripts/down.sh' EXIT
sandbox/scripts/up.sh
cargo test --workspace --tests --no-fail-fast -- "$@"
