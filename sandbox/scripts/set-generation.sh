#!/usr/bin/env bash
# Switches a running sandbox to another Deckhouse controller generation in place, in
# about a second: the simulator settings, the deckhouse Deployment's version,
# state.json and env.sh, then a restart of the simulator alone (its worker count is
# read at start). Gen A serves MPO v1alpha1 only and needs a sandbox of its own.
#
#   GEN=B|C|D DIGEST_RULE=child|index SANDBOX_DIR=... sandbox/scripts/set-generation.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SANDBOX_DIR="${SANDBOX_DIR:-$ROOT/target/sandbox}"
SANDBOX_DIR="$(cd "$SANDBOX_DIR" && pwd)"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
TARGET_DIR="$(cd "$TARGET_DIR" && pwd)"
GEN="${GEN:?GEN=B, C or D}"
GEN="${GEN^^}"
DIGEST_RULE="${DIGEST_RULE:-child}"
PIDS="$SANDBOX_DIR/pids"
LOGS="$SANDBOX_DIR/logs"

log() { printf '[sandbox] %s\n' "$*" >&2; }
die() { printf '[sandbox] error: %s\n' "$*" >&2; exit 1; }

[[ -f "$SANDBOX_DIR/state.json" ]] || die "no sandbox in $SANDBOX_DIR"
"$TARGET_DIR/debug/mpo-sandbox" set-generation --state "$SANDBOX_DIR/state.json" \
  --generation "$GEN" --digest-rule "$DIGEST_RULE"
sed -i "s/^export MPO_SANDBOX_GEN=.*/export MPO_SANDBOX_GEN=\"$GEN\"/" "$SANDBOX_DIR/env.sh"

pid=$(cat "$PIDS/simulator.pid")
kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 50); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
kill -KILL -- "-$pid" 2>/dev/null || true
setsid "$TARGET_DIR/debug/mpo-sandbox" simulate --state "$SANDBOX_DIR/state.json" \
  >"$LOGS/simulator.log" 2>&1 </dev/null &
echo $! >"$PIDS/simulator.pid"
for _ in $(seq 1 300); do
  grep -q "simulator ready" "$LOGS/simulator.log" && break
  sleep 0.1
done
grep -q "simulator ready" "$LOGS/simulator.log" || die "the simulator did not start again (see $LOGS/simulator.log)"
log "generation $GEN (digest rule $DIGEST_RULE) in $SANDBOX_DIR"
