#!/usr/bin/env bash
# Stops exactly the processes the sandbox started (PIDs recorded by up.sh) and removes
# its state directory.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SANDBOX_DIR="${SANDBOX_DIR:-$ROOT/target/sandbox}"
PIDS="$SANDBOX_DIR/pids"

if [[ -d "$PIDS" ]]; then
  for file in "$PIDS"/*.pid; do
    [[ -f "$file" ]] || continue
    pid=$(cat "$file")
    # Each process was started with setsid, so its PID is its process group.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  done
  for _ in $(seq 1 50); do
    running=0
    for file in "$PIDS"/*.pid; do
      [[ -f "$file" ]] && kill -0 "$(cat "$file")" 2>/dev/null && running=1
    done
    ((running)) || break
    sleep 0.1
  done
  for file in "$PIDS"/*.pid; do
    [[ -f "$file" ]] || continue
    pid=$(cat "$file")
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  done
fi
rm -rf "$SANDBOX_DIR"
echo "[sandbox] down: $SANDBOX_DIR removed" >&2
