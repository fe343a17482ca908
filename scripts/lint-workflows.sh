#!/usr/bin/env bash
# `make lint`'s check of .github/workflows: actionlint (syntax, expressions, and the
# run: scripts through shellcheck) and zizmor (security: pinned actions, permissions,
# template injection, credentials left in checkouts...; the auditor persona: every
# finding), offline. Both are installed when missing, pinned, into
# ${MPO_CACHE_DIR:-~/.cache/kubectl-mpo} (actionlint from its Go module into bin/,
# zizmor from PyPI into a venv); shellcheck comes from apt-get when this user may
# install packages. zizmor's ignores are in .github/zizmor.yml, each with the reason.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CACHE="${MPO_CACHE_DIR:-$HOME/.cache/kubectl-mpo}"
BIN="$CACHE/bin"
ACTIONLINT_VERSION=v1.7.12
ZIZMOR_VERSION=1.33.1
say() { printf '[lint-workflows] %s\n' "$*" >&2; }
mkdir -p "$BIN"

if [[ ! -x "$BIN/actionlint-$ACTIONLINT_VERSION" ]]; then
  say "installing actionlint $ACTIONLINT_VERSION"
  tmp="$(mktemp -d)"
  (cd "$tmp" && GOBIN="$tmp" GOFLAGS=-mod=mod go install "github.com/rhysd/actionlint/cmd/actionlint@$ACTIONLINT_VERSION")
  mv "$tmp/actionlint" "$BIN/actionlint-$ACTIONLINT_VERSION"
  rm -rf "$tmp"
fi
if [[ ! -x "$CACHE/zizmor-$ZIZMOR_VERSION/bin/zizmor" ]]; then
  say "installing zizmor $ZIZMOR_VERSION"
  python3 -m venv "$CACHE/zizmor-$ZIZMOR_VERSION"
  "$CACHE/zizmor-$ZIZMOR_VERSION/bin/pip" install --quiet --disable-pip-version-check "zizmor==$ZIZMOR_VERSION"
fi
if ! command -v shellcheck >/dev/null; then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    say "installing shellcheck (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null 2>&1 ||
      { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck >/dev/null; }
  else
    say "shellcheck is not installed: actionlint checks the run: scripts without it (sudo apt-get install shellcheck)"
  fi
fi

"$BIN/actionlint-$ACTIONLINT_VERSION" -no-color
"$CACHE/zizmor-$ZIZMOR_VERSION/bin/zizmor" --offline --no-progress --persona auditor --config .github/zizmor.yml .github/workflows
